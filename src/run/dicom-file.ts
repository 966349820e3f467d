/**
 * One DICOM file through both passes: learning its identifiers, then
 * writing its de-identified copy under a temporary name.
 */
import { closeSync, openSync } from "node:fs";

import { codecForSpecificCharacterSet } from "../dicom/charset.js";
import { findElement, type Element, type Item } from "../dicom/dataset.js";
import { emitDeflated, emitParts, openDicom, type OpenedDicom } from "../dicom/file-io.js";
import type { ReadLimits } from "../dicom/reader.js";
import type { FileSource } from "../dicom/source.js";
import { TAG } from "../dicom/tags.js";
import { writeDataset, writePart10 } from "../dicom/writer.js";
import { applyProfile, emptyCounts, QuarantineReason, type ActionCounts } from "../deid/apply.js";
import type { TextCleaner } from "../deid/cleaner.js";
import { collectIdentifiers, patientKeyOf } from "../deid/collect.js";
import type { IdentifierRegistry, Patient } from "../deid/identifiers.js";
import type { CompiledProfile } from "../profile/profile.js";
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from "../version.js";
import { recordMethod } from "./method.js";

export interface DicomPassOptions {
  limits: ReadLimits;
  maxInflatedBytes: number;
}

function stringValue(element: Element | undefined): string {
  return element?.bytes ? element.bytes.toString("latin1").replace(/[\0 ]+$/, "").trim() : "";
}

function flagIsYes(dataset: Item, tag: number): boolean {
  return stringValue(findElement(dataset, tag))
    .split("\\")
    .some((value) => value.trim().toUpperCase() === "YES");
}

/**
 * Burned-in text and recognisable faces cannot be removed without the Clean
 * Pixel Data and Clean Recognizable Visual Features Options, which deidkit
 * does not offer, so such files are left out.
 */
function checkBurnedInAnnotation(dataset: Item): void {
  if (flagIsYes(dataset, 0x00280301)) {
    throw new QuarantineReason("BURNED_IN_ANNOTATION", "Burned In Annotation (0028,0301) is YES: the pixels may show identifiers");
  }
  if (flagIsYes(dataset, 0x00280302)) {
    throw new QuarantineReason("RECOGNIZABLE_VISUAL_FEATURES", "Recognizable Visual Features (0028,0302) is YES: the pixels may show a face");
  }
}

/** Pass 1: registers the file's patient and identifiers. Takes over `source` when one is given. */
export async function learnDicomFile(
  path: string,
  registry: IdentifierRegistry,
  profile: CompiledProfile,
  options: DicomPassOptions,
  source?: FileSource,
): Promise<{ patientKey: string }> {
  const opened = await openDicom(path, options, source);
  try {
    collectIdentifiers(opened.dataset, registry, profile.options);
    return { patientKey: patientKeyOf(opened.dataset) };
  } finally {
    opened.close();
  }
}

export interface DeidentifyContext {
  profile: CompiledProfile;
  cleaner: TextCleaner;
  shiftDates: boolean;
  patientFor(key: string): Patient;
  mapUid(uid: string): string;
}

export interface DicomFileResult {
  counts: ActionCounts;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  bytesWritten: number;
}

function uidElement(tag: number, uid: string): Element {
  const bytes = Buffer.from(uid.length % 2 ? `${uid}\0` : uid, "latin1");
  return { tag, vr: "UI", undefinedLength: false, bytes };
}

/** Builds a new file meta group (PS3.10 7.1) for the de-identified data set. */
function buildMeta(opened: OpenedDicom, sopClassUid: string, sopInstanceUid: string): Element[] {
  const version = { tag: TAG.FileMetaInformationVersion, vr: "OB", undefinedLength: false, bytes: Buffer.from([0, 1]) };
  const versionName = Buffer.from(IMPLEMENTATION_VERSION_NAME.length % 2 ? `${IMPLEMENTATION_VERSION_NAME} ` : IMPLEMENTATION_VERSION_NAME, "latin1");
  return [
    version,
    uidElement(TAG.MediaStorageSOPClassUID, sopClassUid),
    uidElement(TAG.MediaStorageSOPInstanceUID, sopInstanceUid),
    uidElement(TAG.TransferSyntaxUID, opened.transferSyntax.uid),
    uidElement(TAG.ImplementationClassUID, IMPLEMENTATION_CLASS_UID),
    { tag: TAG.ImplementationVersionName, vr: "SH", undefinedLength: false, bytes: versionName },
  ];
}

/** Pass 2: writes the de-identified copy of `path` to `targetPath`, which must not exist. */
export async function deidentifyDicomFile(
  path: string,
  targetPath: string,
  context: DeidentifyContext,
  options: DicomPassOptions,
): Promise<DicomFileResult> {
  const opened = await openDicom(path, options);
  try {
    const dataset = opened.dataset;
    checkBurnedInAnnotation(dataset);
    const patient = context.patientFor(patientKeyOf(dataset));
    const counts = emptyCounts();
    const metaClass = stringValue(findElement(opened.meta, TAG.MediaStorageSOPClassUID));
    applyProfile(dataset, { ...context, patient, counts });
    const codec = codecForSpecificCharacterSet(findElement(dataset, TAG.SpecificCharacterSet)?.bytes?.toString("latin1"));
    recordMethod(dataset, context.profile.options, codec);

    const sopClassUid = stringValue(findElement(dataset, TAG.SOPClassUID)) || metaClass;
    const sopInstanceUid = stringValue(findElement(dataset, TAG.SOPInstanceUID));
    if (!sopClassUid || !sopInstanceUid) {
      throw new QuarantineReason("MISSING_SOP_UIDS", "SOP Class UID or SOP Instance UID is missing, so no valid file meta can be written");
    }
    const meta = buildMeta(opened, sopClassUid, sopInstanceUid);
    let bytesWritten = 0;
    if (opened.transferSyntax.deflated) {
      await emitDeflated(writePart10(meta, undefined), writeDataset(dataset), targetPath);
    } else {
      // No fsync: like the other formats' outputs, the copy goes to the page
      // cache. Syncing every file made the run wait for the disk, at about
      // 40% of a run's time on the benchmark machine.
      const fd = openSync(targetPath, "wx", 0o644);
      try {
        bytesWritten = emitParts(writePart10(meta, dataset), fd);
      } finally {
        closeSync(fd);
      }
    }
    return { counts, sopClassUid, sopInstanceUid, transferSyntaxUid: opened.transferSyntax.uid, bytesWritten };
  } finally {
    opened.close();
  }
}
