// One patient with two studies (courses C1_2019 and C2_2021): both studies get
// the same pseudonym and the same date shift, but keep distinct study UIDs.

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { pairWrittenFiles, TAGS, textOf, type FilePair } from "../helpers/dicom.js";
import { anonymizeTree, type AnonymizeRun } from "../helpers/cli.js";
import { decryptKey, makeTestTree, type TestTree } from "../helpers/tree.js";
import type { KeyPayload } from "../../src/run/key-payload.js";

function daysBetween(first: string, second: string): number {
  const toTime = (da: string): number => Date.UTC(Number(da.slice(0, 4)), Number(da.slice(4, 6)) - 1, Number(da.slice(6, 8)));
  return (toTime(second) - toTime(first)) / 86_400_000;
}

function studyOf(pair: FilePair): string {
  return pair.input.split("/")[1];
}

describe("one patient, two studies", () => {
  let tree: TestTree;
  let run: AnonymizeRun;
  let payload: KeyPayload;
  let pairs: FilePair[];

  beforeAll(async () => {
    tree = await makeTestTree({ include: ["12345678"], dicomOnly: true });
    run = await anonymizeTree(tree, "output");
    payload = await decryptKey(run.keyPath, tree.identityPath);
    pairs = pairWrittenFiles(tree.input, run.output, payload.files);
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  test("writes every DICOM file of both studies", () => {
    expect(run.code, run.stderr).toBe(0);
    expect(pairs).toHaveLength(14);
    expect(new Set(pairs.map(studyOf))).toEqual(new Set(["C1_2019", "C2_2021"]));
  });

  test("records one patient in the key", () => {
    expect(payload.patients).toHaveLength(1);
    expect(payload.patients[0].originalId).toBe("12345678");
  });

  test("gives both studies the same pseudonym", () => {
    const pseudonym = payload.patients[0].pseudonymId;
    expect(pseudonym).toMatch(/^PAT-[0-9A-Z]{10}$/);
    for (const pair of pairs) {
      expect(textOf(pair.after, TAGS.PatientID), pair.output).toBe(pseudonym);
      expect(textOf(pair.after, TAGS.PatientName), pair.output).toBe(pseudonym);
      expect(pair.output.split("/")[0], pair.output).toBe(pseudonym);
    }
  });

  test("shifts every date of both studies by the same days", () => {
    const shifts = new Set<number>();
    for (const pair of pairs) {
      for (const tag of [TAGS.StudyDate, TAGS.SeriesDate]) {
        const before = textOf(pair.before, tag)!;
        const after = textOf(pair.after, tag)!;
        expect(after, `${pair.output} ${tag}`).toMatch(/^\d{8}$/);
        shifts.add(daysBetween(before, after));
      }
    }
    expect([...shifts]).toEqual([payload.patients[0].shiftDays]);
    expect(payload.patients[0].shiftDays).toBeLessThan(0);
  });

  test("keeps the two study UIDs distinct and new", () => {
    const byStudy = new Map<string, Set<string>>();
    for (const pair of pairs) {
      const uid = textOf(pair.after, TAGS.StudyInstanceUID)!;
      expect(uid, pair.output).toMatch(/^2\.25\.\d+$/);
      expect(uid).not.toBe(textOf(pair.before, TAGS.StudyInstanceUID));
      const set = byStudy.get(studyOf(pair)) ?? new Set<string>();
      set.add(uid);
      byStudy.set(studyOf(pair), set);
    }
    const c1 = [...byStudy.get("C1_2019")!];
    const c2 = [...byStudy.get("C2_2021")!];
    expect(c1).toHaveLength(1);
    expect(c2).toHaveLength(1);
    expect(c1[0]).not.toBe(c2[0]);
  });

  test("keeps the two frames of reference distinct", () => {
    const frames = new Map<string, Set<string>>();
    for (const pair of pairs) {
      const set = frames.get(studyOf(pair)) ?? new Set<string>();
      set.add(textOf(pair.after, TAGS.FrameOfReferenceUID)!);
      frames.set(studyOf(pair), set);
    }
    expect(frames.get("C1_2019")!.size).toBe(1);
    expect(frames.get("C2_2021")!.size).toBe(1);
    expect([...frames.get("C1_2019")!][0]).not.toBe([...frames.get("C2_2021")!][0]);
  });
});
