// The de-identified sample tree still hangs together: every reference between
// CT, RTSTRUCT, RTPLAN and RTDOSE resolves in the output, and the geometry and
// dose values are byte-identical to the input.

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { anonymizeTree } from "../helpers/cli.js";
import {
  allTextValues,
  itemsAt,
  itemsOf,
  pairWrittenFiles,
  TAGS,
  textOf,
  valueBytes,
  type DataSet,
  type FilePair,
} from "../helpers/dicom.js";
import { decryptKey, makeTestTree, readPlanted, type TestTree } from "../helpers/tree.js";

interface Course {
  name: string;
  ct: FilePair[];
  structureSet: FilePair;
  plan: FilePair;
  dose: FilePair;
}

/** Asserts that two items contain the same tags with byte-identical values, recursing into sequences. */
function expectSameContent(before: DataSet, after: DataSet, where: string): void {
  expect(Object.keys(after.elements).sort(), where).toEqual(Object.keys(before.elements).sort());
  for (const [tag, element] of Object.entries(before.elements)) {
    if (element.items) {
      const beforeItems = itemsOf(before, tag);
      const afterItems = itemsOf(after, tag);
      expect(afterItems, `${where} ${tag}`).toHaveLength(beforeItems.length);
      beforeItems.forEach((item, index) => expectSameContent(item, afterItems[index], `${where} ${tag}[${index}]`));
    } else {
      expect(valueBytes(after, tag)?.equals(valueBytes(before, tag)!), `${where} ${tag}`).toBe(true);
    }
  }
}

describe("references in the de-identified sample tree", () => {
  let tree: TestTree;
  let courses: Course[];
  let ctUidMap: Map<string, string>;

  beforeAll(async () => {
    tree = await makeTestTree({ dicomOnly: true });
    const run = await anonymizeTree(tree, "output");
    expect(run.code, run.stderr).toBe(0);
    const payload = await decryptKey(run.keyPath, tree.identityPath);
    const pairs = pairWrittenFiles(tree.input, run.output, payload.files);
    const names = [...new Set(pairs.map((pair) => pair.input.split("/").slice(0, 2).join("/")))];
    courses = names.map((name) => {
      const inCourse = pairs.filter((pair) => pair.input.startsWith(`${name}/`));
      const byModality = (modality: string): FilePair[] => inCourse.filter((pair) => textOf(pair.before, TAGS.Modality) === modality);
      return {
        name,
        ct: byModality("CT"),
        structureSet: byModality("RTSTRUCT")[0],
        plan: byModality("RTPLAN")[0],
        dose: byModality("RTDOSE")[0],
      };
    });
    ctUidMap = new Map(
      courses.flatMap((course) => course.ct.map((pair) => [textOf(pair.before, TAGS.SOPInstanceUID)!, textOf(pair.after, TAGS.SOPInstanceUID)!])),
    );
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  test("finds three courses with all four modalities", () => {
    expect(courses.map((course) => course.name).sort()).toEqual(["12345678/C1_2019", "12345678/C2_2021", "AB-0042/Course_2"]);
    for (const course of courses) {
      expect(course.ct, course.name).toHaveLength(4);
      expect(course.structureSet, course.name).toBeDefined();
      expect(course.plan, course.name).toBeDefined();
      expect(course.dose, course.name).toBeDefined();
    }
  });

  test("contour image references resolve to the output CT instances", () => {
    for (const course of courses) {
      const ctUids = new Set(course.ct.map((pair) => textOf(pair.after, TAGS.SOPInstanceUID)));
      const path = [TAGS.ReferencedFrameOfReferenceSequence, TAGS.RTReferencedStudySequence, TAGS.RTReferencedSeriesSequence, TAGS.ContourImageSequence];
      const referenced = itemsAt(course.structureSet.after, path).map((item) => textOf(item, TAGS.ReferencedSOPInstanceUID));
      expect(new Set(referenced), course.name).toEqual(ctUids);
    }
  });

  test("each contour references its own slice", () => {
    for (const course of courses) {
      const path = [TAGS.ROIContourSequence, TAGS.ContourSequence, TAGS.ContourImageSequence];
      const before = itemsAt(course.structureSet.before, path).map((item) => textOf(item, TAGS.ReferencedSOPInstanceUID)!);
      const after = itemsAt(course.structureSet.after, path).map((item) => textOf(item, TAGS.ReferencedSOPInstanceUID)!);
      expect(after.length, course.name).toBeGreaterThan(0);
      expect(after, course.name).toEqual(before.map((uid) => ctUidMap.get(uid)));
    }
  });

  test("the referenced study and series are the output CT's", () => {
    for (const course of courses) {
      const ct = course.ct[0].after;
      const studies = itemsAt(course.structureSet.after, [TAGS.ReferencedFrameOfReferenceSequence, TAGS.RTReferencedStudySequence]);
      expect(studies.map((item) => textOf(item, TAGS.ReferencedSOPInstanceUID)), course.name).toEqual([textOf(ct, TAGS.StudyInstanceUID)]);
      const series = itemsAt(studies[0], [TAGS.RTReferencedSeriesSequence]);
      expect(series.map((item) => textOf(item, TAGS.SeriesInstanceUID)), course.name).toEqual([textOf(ct, TAGS.SeriesInstanceUID)]);
    }
  });

  test("the plan references the output structure set", () => {
    for (const course of courses) {
      const references = itemsOf(course.plan.after, TAGS.ReferencedStructureSetSequence);
      expect(references, course.name).toHaveLength(1);
      expect(textOf(references[0], TAGS.ReferencedSOPInstanceUID), course.name).toBe(textOf(course.structureSet.after, TAGS.SOPInstanceUID));
      expect(textOf(references[0], TAGS.ReferencedSOPClassUID), course.name).toBe(textOf(course.structureSet.after, TAGS.SOPClassUID));
    }
  });

  test("the dose references the output plan", () => {
    for (const course of courses) {
      const references = itemsOf(course.dose.after, TAGS.ReferencedRTPlanSequence);
      expect(references, course.name).toHaveLength(1);
      expect(textOf(references[0], TAGS.ReferencedSOPInstanceUID), course.name).toBe(textOf(course.plan.after, TAGS.SOPInstanceUID));
    }
  });

  test("one frame of reference per course, used everywhere", () => {
    const frames = new Set<string>();
    for (const course of courses) {
      const frame = textOf(course.ct[0].after, TAGS.FrameOfReferenceUID)!;
      expect(frame).toMatch(/^2\.25\.\d+$/);
      frames.add(frame);
      for (const pair of [...course.ct, course.structureSet, course.plan, course.dose]) {
        expect(textOf(pair.after, TAGS.FrameOfReferenceUID), pair.output).toBe(frame);
      }
      const structureSet = course.structureSet.after;
      expect(allTextValues(structureSet, TAGS.ReferencedFrameOfReferenceUID).every((uid) => uid === frame), course.name).toBe(true);
      const referenced = itemsOf(structureSet, TAGS.ReferencedFrameOfReferenceSequence).map((item) => textOf(item, TAGS.FrameOfReferenceUID));
      expect(referenced, course.name).toEqual([frame]);
    }
    expect(frames.size).toBe(courses.length);
  });

  test("ROI names are kept, with names cleaned out", async () => {
    const planted = await readPlanted();
    for (const course of courses) {
      const read = (dataSet: DataSet): string[] => itemsOf(dataSet, TAGS.StructureSetROISequence).map((item) => textOf(item, TAGS.ROIName)!);
      const before = read(course.structureSet.before);
      const after = read(course.structureSet.after);
      expect(after, course.name).toHaveLength(before.length);
      before.forEach((name, index) => {
        expect(after[index], `${course.name} ${name}`).not.toBe("");
        if (planted.identifiers.roiNames.includes(name)) {
          expect(after[index]).toMatch(/^PAT-[0-9A-Z]{10}_marker$/);
        } else {
          expect(after[index]).toBe(name);
        }
      });
    }
  });

  test("contour data is byte-identical", () => {
    for (const course of courses) {
      const path = [TAGS.ROIContourSequence, TAGS.ContourSequence];
      const before = itemsAt(course.structureSet.before, path);
      const after = itemsAt(course.structureSet.after, path);
      expect(after.length, course.name).toBe(before.length);
      before.forEach((contour, index) => {
        const bytes = valueBytes(contour, TAGS.ContourData)!;
        expect(bytes.length).toBeGreaterThan(0);
        expect(valueBytes(after[index], TAGS.ContourData)!.equals(bytes), `${course.name} contour ${index}`).toBe(true);
      });
    }
  });

  test("dose scaling, frame offsets and dose pixels are byte-identical", () => {
    for (const course of courses) {
      for (const tag of [TAGS.DoseGridScaling, TAGS.GridFrameOffsetVector, TAGS.PixelData]) {
        const before = valueBytes(course.dose.before, tag)!;
        expect(before.length, `${course.name} ${tag}`).toBeGreaterThan(0);
        expect(valueBytes(course.dose.after, tag)!.equals(before), `${course.name} ${tag}`).toBe(true);
      }
    }
  });

  test("beam limiting devices and control points are byte-identical", () => {
    for (const course of courses) {
      const beamsBefore = itemsOf(course.plan.before, TAGS.BeamSequence);
      const beamsAfter = itemsOf(course.plan.after, TAGS.BeamSequence);
      expect(beamsBefore.length, course.name).toBe(2);
      expect(beamsAfter.length, course.name).toBe(beamsBefore.length);
      beamsBefore.forEach((beam, index) => {
        const where = `${course.name} beam ${index + 1}`;
        for (const tag of [TAGS.ControlPointSequence, "x300a00b6"]) {
          const before = itemsOf(beam, tag);
          const after = itemsOf(beamsAfter[index], tag);
          expect(before.length, `${where} ${tag}`).toBeGreaterThan(0);
          expect(after.length, `${where} ${tag}`).toBe(before.length);
          before.forEach((item, itemIndex) => expectSameContent(item, after[itemIndex], `${where} ${tag}[${itemIndex}]`));
        }
        // Source-Axis Distance, Beam Number and Number Of Control Points.
        for (const tag of ["x300a00b4", "x300a00c0", "x300a0110"]) {
          expect(valueBytes(beamsAfter[index], tag)?.equals(valueBytes(beam, tag)!), `${where} ${tag}`).toBe(true);
        }
      });
    }
  });

  test("CT pixel data is byte-identical", () => {
    for (const course of courses) {
      for (const pair of course.ct) {
        expect(valueBytes(pair.after, TAGS.PixelData)!.equals(valueBytes(pair.before, TAGS.PixelData)!), pair.output).toBe(true);
      }
    }
  });
});
