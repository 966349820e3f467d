// Two patients in one run: each gets their own pseudonym and date shift, and
// neither patient's pseudonym or shift leaks into the other's files.

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { pairWrittenFiles, TAGS, textOf, type FilePair } from "../helpers/dicom.js";
import { anonymizeTree, type AnonymizeRun } from "../helpers/cli.js";
import { decryptKey, makeTestTree, type TestTree } from "../helpers/tree.js";
import type { KeyPayload } from "../../src/run/key-payload.js";

function daysBetween(first: string, second: string): number {
  const toTime = (da: string): number => Date.UTC(Number(da.slice(0, 4)), Number(da.slice(4, 6)) - 1, Number(da.slice(6, 8)));
  return (toTime(second) - toTime(first)) / 86_400_000;
}

describe("two patients", () => {
  let tree: TestTree;
  let run: AnonymizeRun;
  let payload: KeyPayload;
  let pairs: FilePair[];

  beforeAll(async () => {
    tree = await makeTestTree({ include: ["12345678/C1_2019", "AB-0042"], dicomOnly: true });
    run = await anonymizeTree(tree, "output");
    payload = await decryptKey(run.keyPath, tree.identityPath);
    pairs = pairWrittenFiles(tree.input, run.output, payload.files);
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  function patientOf(originalId: string): KeyPayload["patients"][number] {
    const patient = payload.patients.find((candidate) => candidate.originalId === originalId);
    expect(patient, originalId).toBeDefined();
    return patient!;
  }

  test("records both patients in the key", () => {
    expect(run.code, run.stderr).toBe(0);
    expect(payload.patients.map((patient) => patient.originalId).sort()).toEqual(["12345678", "AB-0042"]);
  });

  test("gives the patients different pseudonyms", () => {
    expect(patientOf("12345678").pseudonymId).not.toBe(patientOf("AB-0042").pseudonymId);
  });

  test("gives the patients different date shifts", () => {
    expect(patientOf("12345678").shiftDays).not.toBe(patientOf("AB-0042").shiftDays);
  });

  test("writes each patient's pseudonym and shift into their own files only", () => {
    for (const pair of pairs) {
      const originalId = textOf(pair.before, TAGS.PatientID)!;
      const patient = patientOf(originalId);
      expect(textOf(pair.after, TAGS.PatientID), pair.output).toBe(patient.pseudonymId);
      expect(pair.output.startsWith(`${patient.pseudonymId}/`), pair.output).toBe(true);
      const shift = daysBetween(textOf(pair.before, TAGS.StudyDate)!, textOf(pair.after, TAGS.StudyDate)!);
      expect(shift, pair.output).toBe(patient.shiftDays);
    }
    const seen = new Set(pairs.map((pair) => textOf(pair.before, TAGS.PatientID)));
    expect(seen).toEqual(new Set(["12345678", "AB-0042"]));
  });

  test("keeps the two output folders apart", () => {
    const top = new Set(pairs.map((pair) => pair.output.split("/")[0]));
    expect(top).toEqual(new Set([patientOf("12345678").pseudonymId, patientOf("AB-0042").pseudonymId]));
  });
});
