// Checks verify without a key: each DICOM rule it can check alone, on a
// copy of an anonymized output edited after anonymization with pydicom.

import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { anonymizeTree, runDeidkit, type AnonymizeRun } from "../helpers/cli.js";
import { makeTestTree, type TestTree } from "../helpers/tree.js";
import { copyOutput, editDicom, findFile } from "./verify-helpers.js";

interface Finding {
  file: string;
  place: string;
  category: string;
  severity: string;
}

interface VerifyJson {
  mode: string;
  findings: Finding[];
  errors: number;
  warnings: number;
}

const CT = /^PAT-[0-9A-Z]{10}\/C1_2019\/CT\/CT\..*\.dcm$/;

interface RuleCase {
  name: string;
  profile: "research" | "basic";
  statements: string;
  category: string;
  place: string;
  severity: "error" | "warning";
}

const CASES: RuleCase[] = [
  {
    name: "removed attribute re-added",
    profile: "research",
    statements: 'ds.PatientAddress = "1 Any Street"',
    category: "attribute-not-removed",
    place: "(0010,1040)",
    severity: "error",
  },
  {
    name: "private tag not on the safe list",
    profile: "research",
    statements: 'block = ds.private_block(0x0041, "DEIDKIT TEST", create=True)\nblock.add_new(0x01, "LO", "value")',
    category: "private-not-safe",
    place: "(0041,1001)",
    severity: "error",
  },
  {
    name: "name that is no pseudonym",
    profile: "research",
    statements: 'ds.PatientName = "SOMEONE^ELSE"',
    category: "name-not-pseudonym",
    place: "(0010,0010)",
    severity: "warning",
  },
  {
    name: "burned-in annotation",
    profile: "research",
    statements: 'ds.BurnedInAnnotation = "YES"',
    category: "burned-in-annotation",
    place: "(0028,0301)",
    severity: "error",
  },
  {
    name: "real date where dates were removed",
    profile: "basic",
    statements: 'assert ds.LongitudinalTemporalInformationModified == "REMOVED"\nds.StudyDate = "20190412"',
    category: "date-not-removed",
    place: "(0008,0020)",
    severity: "error",
  },
];

describe("verify without a key", () => {
  let tree: TestTree;
  const runs = new Map<string, AnonymizeRun>();

  beforeAll(async () => {
    tree = await makeTestTree({ dicomOnly: true });
    for (const profile of ["research", "basic"]) {
      const run = await anonymizeTree(tree, `output-${profile}`, ["--profile", profile]);
      expect(run.code, run.stderr).toBe(0);
      runs.set(profile, run);
    }
  }, 60_000);

  afterAll(async () => {
    await tree.cleanup();
  });

  test.each(["research", "basic"])("clean %s output passes", async (profile) => {
    const result = await runDeidkit(["verify", runs.get(profile)!.output, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as VerifyJson;
    expect(report.mode).toBe("rules");
    expect(report.findings).toEqual([]);
  });

  test.each(CASES)("reports $name", async (ruleCase) => {
    const folder = tree.at(`case-${CASES.indexOf(ruleCase)}`);
    await copyOutput(runs.get(ruleCase.profile)!.output, folder);
    const file = await findFile(folder, CT);
    editDicom(join(folder, file), ruleCase.statements);

    const result = await runDeidkit(["verify", folder, "--json"]);
    expect(result.code, result.stderr).toBe(ruleCase.severity === "error" ? 1 : 0);
    const report = JSON.parse(result.stdout) as VerifyJson;
    expect(report.findings).toContainEqual(expect.objectContaining({ file, place: ruleCase.place, category: ruleCase.category, severity: ruleCase.severity }));
    // Only the edited file has findings.
    expect(new Set(report.findings.map((finding) => finding.file))).toEqual(new Set([file]));
  });
});
