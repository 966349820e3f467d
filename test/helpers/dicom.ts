// Reads de-identified output with dicom-parser, a reader independent of
// src/dicom, so a defect in deidkit's own reader cannot hide one in its writer.

import { readFileSync } from "node:fs";
import { join } from "node:path";

import dicomParser from "dicom-parser";

export type DataSet = dicomParser.DataSet;

/** The tags the tests read, in dicom-parser notation: "x" and 8 lower-case hex digits. */
export const TAGS = {
  MediaStorageSOPInstanceUID: "x00020003",
  SOPClassUID: "x00080016",
  SOPInstanceUID: "x00080018",
  StudyDate: "x00080020",
  SeriesDate: "x00080021",
  ContentDate: "x00080023",
  Modality: "x00080060",
  ReferencedSOPClassUID: "x00081150",
  ReferencedSOPInstanceUID: "x00081155",
  PatientName: "x00100010",
  PatientID: "x00100020",
  PatientAge: "x00101010",
  StudyInstanceUID: "x0020000d",
  SeriesInstanceUID: "x0020000e",
  InstanceNumber: "x00200013",
  FrameOfReferenceUID: "x00200052",
  ReferencedFrameOfReferenceSequence: "x30060010",
  RTReferencedStudySequence: "x30060012",
  RTReferencedSeriesSequence: "x30060014",
  ContourImageSequence: "x30060016",
  StructureSetROISequence: "x30060020",
  ReferencedFrameOfReferenceUID: "x30060024",
  ROIName: "x30060026",
  ROIContourSequence: "x30060039",
  ContourSequence: "x30060040",
  ContourData: "x30060050",
  RTROIObservationsSequence: "x30060080",
  ROIObservationLabel: "x30060085",
  GridFrameOffsetVector: "x3004000c",
  DoseGridScaling: "x3004000e",
  BeamSequence: "x300a00b0",
  ControlPointSequence: "x300a0111",
  ReferencedRTPlanSequence: "x300c0002",
  ReferencedStructureSetSequence: "x300c0060",
  PixelData: "x7fe00010",
} as const;

export function parseDicomFile(path: string): DataSet {
  return dicomParser.parseDicom(new Uint8Array(readFileSync(path)));
}

/** Returns a string value with its padding removed, or undefined when the element is absent. */
export function textOf(dataSet: DataSet, tag: string): string | undefined {
  if (!(tag in dataSet.elements)) return undefined;
  return (dataSet.string(tag) ?? "").replace(/[\0 ]+$/, "");
}

/** Returns the items of a sequence, or [] when it is absent or empty. */
export function itemsOf(dataSet: DataSet, tag: string): DataSet[] {
  const element = dataSet.elements[tag];
  return (element?.items ?? []).map((item) => item.dataSet as DataSet);
}

/** Returns the raw value bytes of an element, or undefined when it is absent. */
export function valueBytes(dataSet: DataSet, tag: string): Buffer | undefined {
  const element = dataSet.elements[tag];
  if (!element) return undefined;
  return Buffer.from(dataSet.byteArray.buffer, dataSet.byteArray.byteOffset + element.dataOffset, element.length);
}

/** Follows a path of sequence tags and returns every item at its end. */
export function itemsAt(dataSet: DataSet, path: readonly string[]): DataSet[] {
  let level = [dataSet];
  for (const tag of path) level = level.flatMap((item) => itemsOf(item, tag));
  return level;
}

/** Collects the values of `tag` at every depth of the data set, in document order. */
export function allTextValues(dataSet: DataSet, tag: string): string[] {
  const values: string[] = [];
  const visit = (current: DataSet): void => {
    for (const [name, element] of Object.entries(current.elements)) {
      if (name === tag) values.push(textOf(current, tag) ?? "");
      for (const item of element.items ?? []) visit(item.dataSet as DataSet);
    }
  };
  visit(dataSet);
  return values;
}

export interface FilePair {
  /** Input and output paths relative to their roots. */
  input: string;
  output: string;
  before: DataSet;
  after: DataSet;
}

/** Parses every written file of a run next to its input, using the file list of the decrypted key. */
export function pairWrittenFiles(
  inputRoot: string,
  outputRoot: string,
  files: ReadonlyArray<{ input: string; output: string; status: string }>,
): FilePair[] {
  return files
    .filter((file) => file.status === "written")
    .map((file) => ({
      input: file.input,
      output: file.output,
      before: parseDicomFile(join(inputRoot, ...file.input.split("/"))),
      after: parseDicomFile(join(outputRoot, ...file.output.split("/"))),
    }));
}
