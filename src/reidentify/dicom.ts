/**
 * Restores one de-identified DICOM file: Patient ID and Name, every UID the
 * key records, the dates anonymize shifted, and pseudonyms in text. It
 * follows the decisions of deid/apply.ts element by element, because only
 * the dates that anonymize shifted may be shifted back.
 */
import { closeSync, fsyncSync, openSync } from "node:fs";
import { chmod } from "node:fs/promises";

import { codecForSpecificCharacterSet, type CharsetCodec } from "../dicom/charset.js";
import { findElement, removeElement, vrOf, type Element, type Item } from "../dicom/dataset.js";
import { emitDeflated, emitParts, openDicom } from "../dicom/file-io.js";
import { isPrivateCreatorTag, isPrivateTag, TAG } from "../dicom/tags.js";
import { writeDataset, writePart10 } from "../dicom/writer.js";
import { QuarantineReason } from "../deid/apply.js";
import { shiftDa, shiftDt } from "../deid/dates.js";
import { decodeText, setText, splitValues } from "../deid/values.js";
import { ruleFor, type Rule } from "../profile/profile.js";
import type { DicomPassOptions } from "../run/dicom-file.js";
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from "../version.js";
import { NAME_NOT_IN_KEY, type KeyPatient, type ReverseKey } from "./key-index.js";

/** Treatment of the unlisted elements of an item by anonymize (the Mode of deid/apply.ts). */
type Mode = "normal" | "clean" | "dummy";

const TEXT_VRS = new Set(["LO", "SH", "ST", "LT", "UT", "UC", "PN"]);

/** Attributes in which anonymize records its de-identification (run/method.ts), removed on restore. */
const METHOD_TAGS = [
  TAG.PatientIdentityRemoved,
  TAG.DeidentificationMethod,
  TAG.DeidentificationMethodCodeSequence,
  TAG.LongitudinalTemporalInformationModified,
];

export interface RestoreCounts {
  ids: number;
  names: number;
  uids: number;
  dates: number;
  texts: number;
}

export function emptyRestoreCounts(): RestoreCounts {
  return { ids: 0, names: 0, uids: 0, dates: 0, texts: 0 };
}

class Restorer {
  constructor(
    private readonly key: ReverseKey,
    private readonly patient: KeyPatient,
    readonly counts: RestoreCounts,
  ) {}

  private values(element: Element, codec: CharsetCodec): string[] {
    if (!element.bytes || element.bytes.length === 0) return [];
    return splitValues(decodeText(element.bytes, vrOf(element), codec), vrOf(element));
  }

  /** Replaces each value by `restore(value)`; writes the element only when a value changed. */
  private rewrite(element: Element, codec: CharsetCodec, restore: (value: string) => string | undefined): number {
    let changed = 0;
    const values = this.values(element, codec).map((value) => {
      const restored = restore(value);
      if (restored === undefined || restored === value) return value;
      changed++;
      return restored;
    });
    if (changed > 0) setText(element, values, codec);
    return changed;
  }

  private restorePatientId(element: Element, codec: CharsetCodec): void {
    this.counts.ids += this.rewrite(element, codec, (value) => this.key.patientOf(value)?.originalId);
  }

  private restorePatientName(element: Element, codec: CharsetCodec): void {
    this.counts.names += this.rewrite(element, codec, (value) => {
      const patient = this.key.patientOf(value);
      return patient ? (patient.originalName ?? NAME_NOT_IN_KEY) : undefined;
    });
  }

  private restoreUids(element: Element, codec: CharsetCodec): void {
    this.counts.uids += this.rewrite(element, codec, (value) => this.key.originalUid(value));
  }

  private restoreText(element: Element, codec: CharsetCodec): void {
    this.counts.texts += this.rewrite(element, codec, (value) => this.key.cleaner.clean(value).text);
  }

  private unshiftDates(element: Element, codec: CharsetCodec): void {
    const shift = vrOf(element) === "DA" ? shiftDa : shiftDt;
    this.counts.dates += this.rewrite(element, codec, (value) => shift(value.trim(), -this.patient.shiftDays));
  }

  /** Mode of the items of a sequence, as ItemProcessor.processElements chose it. */
  private itemMode(rule: Rule | undefined, mode: Mode): Mode {
    if (!rule) return mode;
    if (rule.code === "X/Z" || rule.action === "D") return "dummy";
    if (rule.action === "C") return "clean";
    return "normal";
  }

  /** Returns whether anonymize shifted a DA or DT element: it shifted only C actions and unlisted dates outside dummy items. */
  private wasShifted(rule: Rule | undefined, mode: Mode): boolean {
    if (!this.key.shiftDates) return false;
    if (rule) return rule.action === "C";
    return mode !== "dummy";
  }

  /**
   * Restores a safe private attribute, which anonymize cleaned as a C action cleans.
   * NOTE: a value stored as UN (implicit VR input) is read back as UN and left as it is, so its dates stay shifted.
   */
  private restorePrivate(element: Element, codec: CharsetCodec): void {
    if (element.items) {
      for (const item of element.items) this.processItem(item, "clean", codec);
      return;
    }
    const vr = vrOf(element);
    if (vr === "UI") this.restoreUids(element, codec);
    else if ((vr === "DA" || vr === "DT") && this.key.shiftDates) this.unshiftDates(element, codec);
    else if (TEXT_VRS.has(vr)) this.restoreText(element, codec);
  }

  private restoreElement(element: Element, mode: Mode, codec: CharsetCodec): void {
    const tag = element.tag;
    if (isPrivateTag(tag)) {
      if (!isPrivateCreatorTag(tag)) this.restorePrivate(element, codec);
      return;
    }
    if (tag === TAG.PatientID) return this.restorePatientId(element, codec);
    if (tag === TAG.PatientName) return this.restorePatientName(element, codec);
    const rule = ruleFor(this.key.profile, tag);
    if (element.items) {
      const itemMode = this.itemMode(rule, mode);
      for (const item of element.items) this.processItem(item, itemMode, codec);
      return;
    }
    const vr = vrOf(element);
    // Only UIDs that anonymize wrote are in the key, so every UI value can be looked up.
    if (vr === "UI") this.restoreUids(element, codec);
    else if (vr === "DA" || vr === "DT") {
      if (this.wasShifted(rule, mode)) this.unshiftDates(element, codec);
    } else if (TEXT_VRS.has(vr)) this.restoreText(element, codec);
  }

  processItem(item: Item, mode: Mode, inherited: CharsetCodec): void {
    const specificCharacterSet = item.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
    const codec = specificCharacterSet?.bytes ? codecForSpecificCharacterSet(specificCharacterSet.bytes.toString("latin1")) : inherited;
    for (const element of item.elements) this.restoreElement(element, mode, codec);
  }
}

function rawText(item: Item, tag: number): string {
  const element = findElement(item, tag);
  return element?.bytes ? element.bytes.toString("latin1").replace(/[\0 ]+$/, "").trim() : "";
}

/** Finds the file's patient by its pseudonymous Patient ID, or by Patient's Name when the ID is missing. */
function patientOfDataset(dataset: Item, key: ReverseKey): KeyPatient | undefined {
  const id = rawText(dataset, TAG.PatientID);
  if (id) return key.patientOf(id);
  const name = rawText(dataset, TAG.PatientName);
  return name ? key.patientOf(name) : undefined;
}

function uidElement(tag: number, uid: string): Element {
  const bytes = Buffer.from(uid.length % 2 ? `${uid}\0` : uid, "latin1");
  return { tag, vr: "UI", undefinedLength: false, bytes };
}

/** Builds the file meta group (PS3.10 7.1) for the restored data set, as run/dicom-file.ts does for a de-identified one. */
function buildMeta(sopClassUid: string, sopInstanceUid: string, transferSyntaxUid: string): Element[] {
  const versionName = IMPLEMENTATION_VERSION_NAME.length % 2 ? `${IMPLEMENTATION_VERSION_NAME} ` : IMPLEMENTATION_VERSION_NAME;
  return [
    { tag: TAG.FileMetaInformationVersion, vr: "OB", undefinedLength: false, bytes: Buffer.from([0, 1]) },
    uidElement(TAG.MediaStorageSOPClassUID, sopClassUid),
    uidElement(TAG.MediaStorageSOPInstanceUID, sopInstanceUid),
    uidElement(TAG.TransferSyntaxUID, transferSyntaxUid),
    uidElement(TAG.ImplementationClassUID, IMPLEMENTATION_CLASS_UID),
    { tag: TAG.ImplementationVersionName, vr: "SH", undefinedLength: false, bytes: Buffer.from(versionName, "latin1") },
  ];
}

/**
 * Writes the restored copy of the DICOM file `path` to `targetPath` (mode
 * 0600, which must not exist), in the file's own transfer syntax, copying
 * bulk values from the input in chunks.
 */
export async function restoreDicomFile(path: string, targetPath: string, key: ReverseKey, options: DicomPassOptions): Promise<RestoreCounts> {
  const opened = await openDicom(path, options);
  try {
    const dataset = opened.dataset;
    const patient = patientOfDataset(dataset, key);
    if (!patient) {
      throw new QuarantineReason("PATIENT_NOT_IN_KEY", "the file's Patient ID was not found among the key's pseudonyms, so the file may come from another run");
    }
    const restorer = new Restorer(key, patient, emptyRestoreCounts());
    const codec = codecForSpecificCharacterSet(findElement(dataset, TAG.SpecificCharacterSet)?.bytes?.toString("latin1"));
    restorer.processItem(dataset, "normal", codec);
    for (const tag of METHOD_TAGS) removeElement(dataset, tag);

    const sopClassUid = rawText(dataset, TAG.SOPClassUID) || rawText(opened.meta, TAG.MediaStorageSOPClassUID);
    const sopInstanceUid = rawText(dataset, TAG.SOPInstanceUID);
    if (!sopClassUid || !sopInstanceUid) {
      throw new QuarantineReason("MISSING_SOP_UIDS", "SOP Class UID or SOP Instance UID is missing, so no valid file meta can be written");
    }
    const meta = buildMeta(sopClassUid, sopInstanceUid, opened.transferSyntax.uid);
    if (opened.transferSyntax.deflated) {
      await emitDeflated(writePart10(meta, undefined), writeDataset(dataset), targetPath);
      await chmod(targetPath, 0o600);
    } else {
      const fd = openSync(targetPath, "wx", 0o600);
      try {
        emitParts(writePart10(meta, dataset), fd);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    return restorer.counts;
  } finally {
    opened.close();
  }
}
