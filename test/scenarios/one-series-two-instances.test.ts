// One series with two instances: both keep one new Series Instance UID and
// get distinct new SOP Instance UIDs that match their file meta.

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { pairWrittenFiles, TAGS, textOf, type FilePair } from "../helpers/dicom.js";
import { anonymizeTree, type AnonymizeRun } from "../helpers/cli.js";
import { decryptKey, makeTestTree, type TestTree } from "../helpers/tree.js";

const SLICES = [
  "12345678/C1_2019/CT/CT.1.2.826.0.1.3680043.10.1234.1.1.3.1.dcm",
  "12345678/C1_2019/CT/CT.1.2.826.0.1.3680043.10.1234.1.1.3.2.dcm",
];

describe("one series, two instances", () => {
  let tree: TestTree;
  let run: AnonymizeRun;
  let pairs: FilePair[];

  beforeAll(async () => {
    tree = await makeTestTree({ include: SLICES });
    run = await anonymizeTree(tree, "output");
    const payload = await decryptKey(run.keyPath, tree.identityPath);
    pairs = pairWrittenFiles(tree.input, run.output, payload.files);
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  test("writes both instances", () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toMatch(/error|warning/);
    expect(pairs.map((pair) => pair.input).sort()).toEqual(SLICES);
  });

  test("gives both instances one new series UID", () => {
    const before = new Set(pairs.map((pair) => textOf(pair.before, TAGS.SeriesInstanceUID)));
    const after = new Set(pairs.map((pair) => textOf(pair.after, TAGS.SeriesInstanceUID)));
    expect(before.size).toBe(1);
    expect(after.size).toBe(1);
    expect([...after][0]).toMatch(/^2\.25\.\d+$/);
    expect([...after][0]).not.toBe([...before][0]);
  });

  test("gives both instances one study and one frame of reference", () => {
    expect(new Set(pairs.map((pair) => textOf(pair.after, TAGS.StudyInstanceUID))).size).toBe(1);
    expect(new Set(pairs.map((pair) => textOf(pair.after, TAGS.FrameOfReferenceUID))).size).toBe(1);
  });

  test("gives the instances distinct new SOP Instance UIDs", () => {
    const uids = pairs.map((pair) => textOf(pair.after, TAGS.SOPInstanceUID)!);
    expect(new Set(uids).size).toBe(2);
    for (const pair of pairs) {
      expect(textOf(pair.after, TAGS.SOPInstanceUID)).not.toBe(textOf(pair.before, TAGS.SOPInstanceUID));
      expect(textOf(pair.after, TAGS.MediaStorageSOPInstanceUID), pair.output).toBe(textOf(pair.after, TAGS.SOPInstanceUID));
    }
  });

  test("keeps the instance numbers", () => {
    for (const pair of pairs) {
      expect(textOf(pair.after, TAGS.InstanceNumber), pair.output).toBe(textOf(pair.before, TAGS.InstanceNumber));
    }
  });
});
