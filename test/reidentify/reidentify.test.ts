// Anonymizes fixtures/sample with the fixed secret, re-identifies the output
// and compares the result with the original input, read by pydicom.

import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { shiftDa } from "../../src/deid/dates.js";
import { writeIdentityFiles } from "../../src/keyfile/index.js";
import { anonymizeTree, runDeidkit, type AnonymizeRun, type CliRun } from "../helpers/cli.js";
import { decryptKey, isPart10, listFiles, makeTestTree, readTreeFiles, type TestTree } from "../helpers/tree.js";
import type { KeyPayload } from "../../src/run/key-payload.js";

const PYTHON = "/usr/bin/python3";

/** Prints, per DICOM file, every UI, DA and DT value and Patient ID and Name, keyed by element path. */
const DUMP_SCRIPT = `
import json, os, sys, pydicom
def walk(ds, prefix, out):
    for el in ds:
        key = prefix + "%08X" % int(el.tag)
        if el.VR == "SQ":
            for i, item in enumerate(el.value):
                walk(item, "%s[%d]." % (key, i), out)
        elif el.VR in ("UI", "DA", "DT") or el.keyword in ("PatientID", "PatientName"):
            out[key] = str(el.value)
result = {}
root = sys.argv[1]
for folder, _, names in os.walk(root):
    for name in names:
        path = os.path.join(folder, name)
        with open(path, "rb") as handle:
            handle.seek(128)
            if handle.read(4) != b"DICM":
                continue
        ds = pydicom.dcmread(path)
        values = {}
        walk(ds, "", values)
        values["meta.MediaStorageSOPInstanceUID"] = str(ds.file_meta.MediaStorageSOPInstanceUID)
        values["meta.TransferSyntaxUID"] = str(ds.file_meta.TransferSyntaxUID)
        result[os.path.relpath(path, root).replace(os.sep, "/")] = values
print(json.dumps(result))
`;

type DicomDump = Record<string, Record<string, string>>;

function dumpDicom(root: string): DicomDump {
  return JSON.parse(execFileSync(PYTHON, ["-c", DUMP_SCRIPT, root], { encoding: "utf8", maxBuffer: 64 << 20 })) as DicomDump;
}

async function treeDigest(root: string): Promise<string> {
  const hash = createHash("sha256");
  for (const file of await readTreeFiles(root)) hash.update(file.relativePath).update("\0").update(file.bytes);
  return hash.digest("hex");
}

const SOP_INSTANCE_UID = "00080018";
const STUDY_INSTANCE_UID = "0020000D";
const SERIES_INSTANCE_UID = "0020000E";
const FRAME_OF_REFERENCE_UID = "00200052";
const REFERENCED_SOP_INSTANCE_UID = "00081155";

describe("reidentify on the sample tree", () => {
  let tree: TestTree;
  let anonymized: AnonymizeRun;
  let restored: CliRun;
  let payload: KeyPayload;
  let digestBefore: string;
  let original: DicomDump;
  let back: DicomDump;

  beforeAll(async () => {
    tree = await makeTestTree();
    anonymized = await anonymizeTree(tree, "out");
    expect(anonymized.code, anonymized.stderr).toBe(0);
    payload = await decryptKey(anonymized.keyPath, tree.identityPath);
    digestBefore = await treeDigest(anonymized.output);
    restored = await runDeidkit(["reidentify", anonymized.output, tree.at("back"), "--key", anonymized.keyPath, "--identity", tree.identityPath]);
    original = dumpDicom(tree.input);
    back = dumpDicom(tree.at("back"));
  }, 120_000);

  afterAll(async () => {
    await tree?.cleanup();
  });

  test("exits 0 and warns that the result is identifiable", () => {
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stderr).toContain("original patient identifiers");
  });

  test("never prints an original identifier", () => {
    for (const patient of payload.patients) expect(restored.stderr + restored.stdout).not.toContain(patient.originalId);
  });

  test("restores every input path", async () => {
    expect(await listFiles(tree.at("back"))).toEqual(await listFiles(tree.input));
  });

  test("leaves INPUT unchanged", async () => {
    expect(await treeDigest(anonymized.output)).toBe(digestBefore);
  });

  test("creates folders 0700 and files 0600", async () => {
    expect((await stat(tree.at("back"))).mode & 0o777).toBe(0o700);
    expect((await stat(tree.at("back", "12345678", "C1_2019"))).mode & 0o777).toBe(0o700);
    for (const path of await listFiles(tree.at("back"))) {
      expect((await stat(join(tree.at("back"), path))).mode & 0o777, path).toBe(0o600);
    }
  });

  test("restores Patient ID and Patient's Name", () => {
    expect(Object.keys(back).length).toBeGreaterThan(20);
    for (const [path, values] of Object.entries(back)) {
      expect(values["00100020"], path).toBe(original[path]["00100020"]);
      expect(values["00100010"], path).toBe(original[path]["00100010"]);
    }
  });

  test("restores UIDs at every nesting level", () => {
    let nested = 0;
    for (const [path, values] of Object.entries(back)) {
      for (const tag of [SOP_INSTANCE_UID, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, FRAME_OF_REFERENCE_UID]) {
        if (original[path][tag] !== undefined) expect(values[tag], `${path} ${tag}`).toBe(original[path][tag]);
      }
      for (const [key, value] of Object.entries(values)) {
        if (key.startsWith("meta.") || !key.includes("[")) continue;
        if (/^\d{8}$/.test(value) && !key.endsWith(REFERENCED_SOP_INSTANCE_UID)) continue;
        if (original[path][key] === undefined) continue;
        expect(value, `${path} ${key}`).toBe(original[path][key]);
        if (key.endsWith(REFERENCED_SOP_INSTANCE_UID)) nested++;
      }
    }
    expect(nested).toBeGreaterThan(5);
  });

  test("shifts dates back to the originals", () => {
    let dates = 0;
    for (const [path, values] of Object.entries(back)) {
      for (const [key, value] of Object.entries(values)) {
        if (!/^\d{8}$/.test(value) || !/^(00080020|00080021|00080022|00080023|00080012|300A0006|300E0004)$/.test(key.slice(-8))) continue;
        expect(value, `${path} ${key}`).toBe(original[path][key]);
        dates++;
      }
    }
    expect(dates).toBeGreaterThan(40);
  });

  test("rebuilds the meta from the restored SOP Instance UID", () => {
    for (const [path, values] of Object.entries(back)) {
      expect(values["meta.MediaStorageSOPInstanceUID"], path).toBe(values[SOP_INSTANCE_UID]);
      expect(values["meta.TransferSyntaxUID"], path).toBe(original[path]["meta.TransferSyntaxUID"]);
    }
  });

  test("RT references resolve within the restored tree", () => {
    const instances = new Set(Object.values(back).map((values) => values[SOP_INSTANCE_UID]));
    const originalInstances = new Set(Object.values(original).map((values) => values[SOP_INSTANCE_UID]));
    let resolved = 0;
    for (const [path, values] of Object.entries(back)) {
      for (const [key, value] of Object.entries(values)) {
        if (!key.endsWith(REFERENCED_SOP_INSTANCE_UID) || !originalInstances.has(original[path][key])) continue;
        expect(instances.has(value), `${path} ${key}`).toBe(true);
        resolved++;
      }
    }
    expect(resolved).toBeGreaterThan(5);
  });

  test("dcmdump reads every restored DICOM file", async () => {
    for (const path of Object.keys(back)) {
      const run = spawnSync("dcmdump", ["-q", join(tree.at("back"), path)], { encoding: "utf8" });
      expect(run.status, `${path}: ${run.stderr}`).toBe(0);
    }
  });

  test("restores IDs and learnt dates in text files", async () => {
    const notes = await readFile(tree.at("back", "12345678", "C1_2019", "notes.txt"), "utf8");
    expect(notes).toContain("(MRN 12345678)");
    expect(notes).toContain("Plan approved 2019-04-19");
  });

  test("rejects an OUTPUT that exists with exit 2", async () => {
    const run = await runDeidkit(["reidentify", anonymized.output, tree.at("back"), "--key", anonymized.keyPath, "--identity", tree.identityPath]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("OUTPUT already exists");
  });

  test("rejects a wrong identity with exit 3", async () => {
    await mkdir(tree.at("other-keys"));
    const other = await writeIdentityFiles(tree.at("other-keys"));
    const run = await runDeidkit(["reidentify", anonymized.output, tree.at("wrong"), "--key", anonymized.keyPath, "--identity", other.identityPath]);
    expect(run.code).toBe(3);
    expect(existsSync(tree.at("wrong"))).toBe(false);
  });

  test("restores one file given as INPUT", async () => {
    const input = join(anonymized.output, payload.files.find((file) => file.input === "12345678/C1_2019/notes.txt")!.output);
    const run = await runDeidkit(["reidentify", input, tree.at("one-notes.txt"), "--key", anonymized.keyPath, "--identity", tree.identityPath]);
    expect(run.code, run.stderr).toBe(0);
    expect(await readFile(tree.at("one-notes.txt"), "utf8")).toContain("(MRN 12345678)");
    expect((await stat(tree.at("one-notes.txt"))).mode & 0o777).toBe(0o600);
  });

  test("--value restores a pseudonym", async () => {
    const patient = payload.patients.find((candidate) => candidate.originalId === "12345678")!;
    const run = await runDeidkit(["reidentify", "--value", patient.pseudonymId, "--key", anonymized.keyPath, "--identity", tree.identityPath]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe("12345678\n");
  });

  test("--value restores a UID", async () => {
    const uid = payload.uids.find((candidate) => candidate.original === "1.2.826.0.1.3680043.10.1234.1.1.5.1")!;
    const run = await runDeidkit(["reidentify", "--value", uid.replacement, "--key", anonymized.keyPath, "--identity", tree.identityPath]);
    expect(run.stdout).toBe("1.2.826.0.1.3680043.10.1234.1.1.5.1\n");
  });

  test("--value shifts a date back only with its patient", async () => {
    const patient = payload.patients.find((candidate) => candidate.originalId === "12345678")!;
    const shifted = shiftDa("20190412", patient.shiftDays)!;
    const outputDate = `${shifted.slice(0, 4)}-${shifted.slice(4, 6)}-${shifted.slice(6)}`;
    const args = ["--key", anonymized.keyPath, "--identity", tree.identityPath];
    const withPatient = await runDeidkit(["reidentify", "--value", `${patient.pseudonymId} ${outputDate}`, ...args]);
    expect(withPatient.stdout).toBe("12345678 2019-04-12\n");
    const alone = await runDeidkit(["reidentify", "--value", `seen ${outputDate}`, ...args]);
    expect(alone.stdout).toBe(`seen ${outputDate}\n`);
    expect(alone.stderr).toContain("names no patient of the key");
  });
});

describe("reidentify of non-DICOM formats", () => {
  test("restores IDs, UIDs and shifted dates in JSON and CSV", async () => {
    const tree = await makeTestTree({ include: ["12345678/C1_2019"], dicomOnly: true });
    try {
      const folder = join(tree.input, "12345678", "C1_2019");
      const json = { patient_id: "12345678", plan_date: "2019-04-18", plan_uid: "1.2.826.0.1.3680043.10.1234.1.1.5.1", dose: 60 };
      await writeFile(join(folder, "result.json"), `${JSON.stringify(json, null, 2)}\n`);
      await writeFile(join(folder, "dvh.csv"), "patient_id,review_date,structure\n12345678,2019-04-19,PTV_60\n");
      const run = await anonymizeTree(tree, "out");
      expect(run.code, run.stderr).toBe(0);
      const back = await runDeidkit(["reidentify", run.output, tree.at("back"), "--key", run.keyPath, "--identity", tree.identityPath]);
      expect(back.code, back.stderr).toBe(0);
      const restoredJson = JSON.parse(await readFile(tree.at("back", "12345678", "C1_2019", "result.json"), "utf8")) as typeof json;
      expect(restoredJson).toEqual(json);
      const csv = await readFile(tree.at("back", "12345678", "C1_2019", "dvh.csv"), "utf8");
      expect(csv).toBe("patient_id,review_date,structure\n12345678,2019-04-19,PTV_60\n");
      const written = await readTreeFiles(tree.at("back"));
      expect(written.filter((file) => isPart10(file.bytes)).length).toBeGreaterThan(3);
    } finally {
      await tree.cleanup();
    }
  }, 60_000);
});
