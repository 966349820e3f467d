/**
 * Reads the facts about one DICOM file that a scan reports: its kind
 * (modality, SOP class) and its study and series. It also reads the risks
 * that decide how the file can be shared: private elements, burned-in
 * text, a missing Patient ID, a character set deidkit cannot decode.
 */
import { codecForSpecificCharacterSet } from "../dicom/charset.js";
import { canonicalTerm } from "../dicom/charset/terms.js";
import { findElement, type Item } from "../dicom/dataset.js";
import { openDicom } from "../dicom/file-io.js";
import type { ReadLimits } from "../dicom/reader.js";
import { isPrivateCreatorTag, isPrivateTag, TAG, tagElement, tagGroup } from "../dicom/tags.js";

export interface DicomFacts {
  /** Raw values, kept in memory for counting. report.ts prints none of them unchecked. */
  sopClassUid: string;
  modality: string;
  studyUid: string;
  seriesUid: string;
  hasPatientId: boolean;
  hasSopInstanceUid: boolean;
  burnedInAnnotation: boolean;
  /**
   * Specific Character Set (0008,0005) in its defined spelling ("" for the
   * default repertoire), or undefined when deidkit cannot decode it.
   */
  characterSet: string | undefined;
  /** Private data elements (creators not counted) by private creator; "" for elements without one. */
  privateElements: Map<string, number>;
}

const BURNED_IN_ANNOTATION = 0x00280301;

function stringValue(item: Item, tag: number): string {
  const bytes = findElement(item, tag)?.bytes;
  return bytes ? bytes.toString("latin1").replace(/[\0 ]+$/, "").trim() : "";
}

function characterSetOf(value: string): string | undefined {
  try {
    codecForSpecificCharacterSet(value || undefined);
  } catch {
    return undefined;
  }
  const terms = value.split("\\").map((term) => canonicalTerm(term.trim()) ?? "?");
  return terms.join("\\");
}

/** Counts the private data elements of an item and of every item nested in it. */
function countPrivate(item: Item, counts: Map<string, number>): void {
  const creators = new Map<number, string>();
  for (const element of item.elements) {
    if (isPrivateCreatorTag(element.tag)) {
      const creator = element.bytes ? element.bytes.toString("latin1").replace(/[\0 ]+$/, "").trim() : "";
      creators.set((tagGroup(element.tag) << 8) | tagElement(element.tag), creator);
    }
  }
  for (const element of item.elements) {
    if (isPrivateTag(element.tag) && !isPrivateCreatorTag(element.tag)) {
      const block = (tagGroup(element.tag) << 8) | (tagElement(element.tag) >>> 8);
      const creator = creators.get(block) ?? "";
      counts.set(creator, (counts.get(creator) ?? 0) + 1);
    }
    for (const child of element.items ?? []) countPrivate(child, counts);
  }
}

/** Parses the file at `path` and returns its facts; throws what openDicom throws. */
export async function readDicomFacts(path: string, limits: ReadLimits, maxInflatedBytes: number): Promise<DicomFacts> {
  const opened = await openDicom(path, { limits, maxInflatedBytes });
  try {
    const dataset = opened.dataset;
    const privateElements = new Map<string, number>();
    countPrivate(dataset, privateElements);
    return {
      sopClassUid: stringValue(dataset, TAG.SOPClassUID) || stringValue(opened.meta, TAG.MediaStorageSOPClassUID),
      modality: stringValue(dataset, TAG.Modality),
      studyUid: stringValue(dataset, TAG.StudyInstanceUID),
      seriesUid: stringValue(dataset, TAG.SeriesInstanceUID),
      hasPatientId: stringValue(dataset, TAG.PatientID).length > 0,
      hasSopInstanceUid: stringValue(dataset, TAG.SOPInstanceUID).length > 0,
      burnedInAnnotation: stringValue(dataset, BURNED_IN_ANNOTATION).toUpperCase() === "YES",
      characterSet: characterSetOf(stringValue(dataset, TAG.SpecificCharacterSet)),
      privateElements,
    };
  } finally {
    opened.close();
  }
}
