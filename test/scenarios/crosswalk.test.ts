// --map: a study's own crosswalk of original Patient ID to pseudonym wins
// over the derived pseudonym, everywhere the pseudonym is written.

import { writeFile } from "node:fs/promises";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { derivePatientId } from "../../src/pseudonym/derive.js";
import type { KeyPayload } from "../../src/run/key-payload.js";
import { anonymizeTree, type AnonymizeRun } from "../helpers/cli.js";
import { pairWrittenFiles, TAGS, textOf, type FilePair } from "../helpers/dicom.js";
import { decryptKey, listEntries, makeTestTree, readTreeFiles, TEST_SECRET, type TestTree } from "../helpers/tree.js";

const MAPPED = "STUDY-0001";

describe("--map crosswalk", () => {
  let tree: TestTree;
  let run: AnonymizeRun;
  let payload: KeyPayload;
  let pairs: FilePair[];

  beforeAll(async () => {
    tree = await makeTestTree({ include: ["12345678/C1_2019", "AB-0042"], dicomOnly: true });
    const crosswalk = tree.at("crosswalk.csv");
    await writeFile(crosswalk, `original_id,pseudonym\n12345678,${MAPPED}\n`);
    run = await anonymizeTree(tree, "output", ["--map", crosswalk]);
    payload = await decryptKey(run.keyPath, tree.identityPath);
    pairs = pairWrittenFiles(tree.input, run.output, payload.files);
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  test("writes the mapped pseudonym for the mapped patient", () => {
    expect(run.code, run.stderr).toBe(0);
    const mapped = pairs.filter((pair) => textOf(pair.before, TAGS.PatientID) === "12345678");
    expect(mapped.length).toBeGreaterThan(0);
    for (const pair of mapped) {
      expect(textOf(pair.after, TAGS.PatientID), pair.output).toBe(MAPPED);
      expect(textOf(pair.after, TAGS.PatientName), pair.output).toBe(MAPPED);
      expect(pair.output.startsWith(`${MAPPED}/`), pair.output).toBe(true);
    }
  });

  test("derives the pseudonym of an unmapped patient", () => {
    const unmapped = pairs.filter((pair) => textOf(pair.before, TAGS.PatientID) === "AB-0042");
    expect(unmapped.length).toBeGreaterThan(0);
    for (const pair of unmapped) {
      expect(textOf(pair.after, TAGS.PatientID), pair.output).toBe(derivePatientId(TEST_SECRET, "AB-0042"));
    }
  });

  test("never writes the derived pseudonym of the mapped patient", async () => {
    const derived = derivePatientId(TEST_SECRET, "12345678");
    for (const file of await readTreeFiles(run.output)) {
      expect(file.relativePath).not.toContain(derived);
      expect(file.bytes.includes(derived), file.relativePath).toBe(false);
    }
  });

  test("replaces the ID in free text with the mapped pseudonym", async () => {
    const files = await readTreeFiles(run.output);
    const withMapped = files.filter((file) => file.bytes.toString("latin1").includes(`MRN ${MAPPED}`));
    expect(withMapped.length).toBeGreaterThan(0);
  });

  test("marks the patient as mapped in the key", () => {
    const patient = payload.patients.find((candidate) => candidate.originalId === "12345678");
    expect(patient?.pseudonymId).toBe(MAPPED);
    expect(patient?.mapped).toBe(true);
    expect(payload.patients.find((candidate) => candidate.originalId === "AB-0042")?.mapped).toBe(false);
  });
});

describe("--map crosswalk collision", () => {
  let tree: TestTree;

  beforeAll(async () => {
    tree = await makeTestTree({ include: ["12345678/C1_2019", "AB-0042"], dicomOnly: true });
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  test("fails when a mapped pseudonym equals another patient's", async () => {
    // AB-0042 is not mapped, so it gets the derived pseudonym that the map gives 12345678 as well.
    const crosswalk = tree.at("colliding.csv");
    await writeFile(crosswalk, `12345678,${derivePatientId(TEST_SECRET, "AB-0042")}\n`);
    const run = await anonymizeTree(tree, "collided", ["--map", crosswalk]);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/deidkit: error: two patients would get the same pseudonym/);
    expect(run.stderr).not.toContain(derivePatientId(TEST_SECRET, "AB-0042"));
    expect(run.stderr).not.toContain("12345678");
    expect(await listEntries(tree.dir)).not.toContain("collided/");
    expect((await listEntries(tree.dir)).filter((path) => path.startsWith("collided"))).toEqual([]);
  });
});
