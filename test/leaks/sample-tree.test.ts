// Anonymizes the sample tree with each profile and searches everything the
// run produced (output bytes and paths, key file, report, terminal output)
// for every identifier planted in the tree.

import { readFile } from "node:fs/promises";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { anonymizeTree, expectExitMatchesReport } from "../helpers/cli.js";
import { isPart10, makeTestTree, readPlanted, readTreeFiles, type Planted, type TestTree } from "../helpers/tree.js";

/** One searchable text: where it came from and its content. */
interface Haystack {
  where: string;
  text: string;
  /** Encrypted bytes, where short identifiers can appear by chance. */
  ciphertext?: boolean;
}

/**
 * Matches an identifier as a whole word, ignoring case: a letter or digit
 * right before or after it means a longer word, so the decoy 512345678
 * does not count as the ID 12345678.
 */
function wholeWord(identifier: string): RegExp {
  const escaped = identifier.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "iu");
}

/**
 * Below this length an identifier is not looked for in the key file: its
 * bytes are ciphertext, in which a three-letter name such as "Doe" turns up
 * by chance in a few runs in a hundred.
 */
const MIN_LENGTH_IN_CIPHERTEXT = 6;

function findLeaks(haystacks: readonly Haystack[], identifiers: readonly string[]): string[] {
  const leaks: string[] = [];
  for (const identifier of identifiers) {
    const pattern = wholeWord(identifier);
    for (const haystack of haystacks) {
      if (haystack.ciphertext && identifier.length < MIN_LENGTH_IN_CIPHERTEXT) continue;
      if (pattern.test(haystack.text)) leaks.push(`${identifier} in ${haystack.where}`);
    }
  }
  return leaks;
}

async function collectHaystacks(tree: TestTree, profile: string): Promise<Haystack[]> {
  const run = await anonymizeTree(tree, `output-${profile}`, ["--profile", profile]);
  const leftOut = await expectExitMatchesReport(run);
  const haystacks: Haystack[] = [
    { where: "stdout", text: run.stdout },
    { where: "stderr", text: run.stderr },
    { where: "report", text: await readFile(run.reportPath, "utf8") },
  ];
  const keyBytes = await readFile(run.keyPath);
  haystacks.push({ where: "key file (latin1)", text: keyBytes.toString("latin1"), ciphertext: true });
  const files = await readTreeFiles(run.output);
  // Every input file is either written or listed as left out, and all 21 DICOM files are written.
  expect(files.length + leftOut).toBe(25);
  expect(files.filter((file) => isPart10(file.bytes))).toHaveLength(21);
  for (const file of files) {
    haystacks.push({ where: `path ${file.relativePath}`, text: file.relativePath });
    haystacks.push({ where: `${file.relativePath} (latin1)`, text: file.bytes.toString("latin1") });
    haystacks.push({ where: `${file.relativePath} (utf8)`, text: file.bytes.toString("utf8") });
  }
  return haystacks;
}

describe.each([
  { profile: "research", keptCategories: ["patientAges"] },
  { profile: "basic", keptCategories: [] as string[] },
])("sample tree under $profile", ({ profile, keptCategories }) => {
  let tree: TestTree;
  let planted: Planted;
  let haystacks: Haystack[];

  beforeAll(async () => {
    planted = await readPlanted();
    tree = await makeTestTree();
    haystacks = await collectHaystacks(tree, profile);
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  test("the planted list has the expected categories", () => {
    expect(Object.keys(planted.identifiers).length).toBeGreaterThanOrEqual(20);
    expect(planted.identifiers.patientIds).toContain("12345678");
  });

  test("the search finds an identifier that is there", () => {
    // Guards the matcher itself: the input tree contains every patient ID.
    const inputPaths = [{ where: "input", text: "12345678/C1_2019/CT/Doe_Jane_CT_4.dcm" }];
    expect(findLeaks(inputPaths, ["12345678", "Doe_Jane", "DOE"])).toHaveLength(3);
    expect(findLeaks([{ where: "decoy", text: "ExposureInuAs 512345678" }], ["12345678"])).toEqual([]);
  });

  const categories = [
    "patientNames", "familyNames", "patientIds", "issuersOfPatientId", "birthDates", "patientAges",
    "accessionNumbers", "studyIds", "requestIds", "staffNames", "addresses", "phoneNumbers", "institutions",
    "stations", "deviceSerialNumbers", "dates", "dateTimes", "descriptions", "roiNames", "fileNames", "uids",
  ];

  test("covers every planted category", () => {
    expect(new Set(categories)).toEqual(new Set(Object.keys(planted.identifiers)));
  });

  test.each(categories.filter((category) => !keptCategories.includes(category)))("no %s survive", (category) => {
    const identifiers = planted.identifiers[category];
    expect(identifiers.length).toBeGreaterThan(0);
    expect(findLeaks(haystacks, identifiers)).toEqual([]);
  });

  test.each(keptCategories)("%s are kept on purpose", (category) => {
    const dicomViews = haystacks.filter((haystack) => haystack.where.endsWith("(latin1)") && !haystack.where.startsWith("key"));
    for (const identifier of planted.identifiers[category]) {
      expect(findLeaks(dicomViews, [identifier]).length, identifier).toBeGreaterThan(0);
    }
  });

  test("the decoys survive in the files that held them", () => {
    for (const decoy of planted.decoys) {
      const holders = haystacks.filter((haystack) => haystack.where.endsWith("(latin1)") && haystack.text.includes(decoy));
      // Exposure In uAs of patient 12345678's eight CT slices.
      expect(holders.map((holder) => holder.where), decoy).toHaveLength(8);
    }
  });
});
