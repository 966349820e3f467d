/**
 * The interface of a non-DICOM format: how deidkit recognises a file, learns
 * identifiers from it in the first pass and writes its de-identified copy in
 * the second. Each format lives in its own module in this folder.
 */
import type { TextCleaner } from "../deid/cleaner.js";
import type { IdentifierRegistry, Patient } from "../deid/identifiers.js";

export interface LearnContext {
  registry: IdentifierRegistry;
  /** Path relative to the input root, "/"-separated. */
  relativePath: string;
  /**
   * Learns a file found inside this one (an archive member extracted to
   * `path`) with the rules for its own kind, DICOM included. `relativePath`
   * names it for format detection, e.g. "upload.zip/CT/1.dcm".
   */
  learnNested(path: string, relativePath: string): Promise<void>;
  /**
   * Folder in which to create the private folder for extracted members and
   * data sets; the system's temporary folder when not set. A run sets one
   * of its own so that an interrupt removes what was extracted.
   */
  scratchParent?: string;
}

export interface WriteContext {
  /** Replaces every identifier known for the run, and UIDs, in any string. */
  cleaner: TextCleaner;
  /** Looks up (or derives) the patient of an original Patient ID. */
  patientFor(originalId: string): Patient;
  /** The patient whose folder contains the file, when a path component is a known Patient ID. */
  patient: Patient | undefined;
  /** Dates are shifted by the patient's shift (Retain Longitudinal Temporal Information with Modified Dates). */
  shiftDates: boolean;
  relativePath: string;
  /**
   * Writes the de-identified copy of a file found inside this one to
   * `targetPath` with the rules for its own kind. Throws QuarantineReason or
   * DeidError when that member cannot be de-identified.
   */
  writeNested(path: string, relativePath: string, targetPath: string): Promise<void>;
  /** As LearnContext.scratchParent. */
  scratchParent?: string;
}

export interface FormatWriteResult {
  /** Number of values replaced or removed. */
  replacements: number;
}

export interface FormatHandler {
  /** Short name used in the report, e.g. "json". */
  readonly name: string;
  /** True when this handler de-identifies the file, judged by its name and first bytes. */
  matches(relativePath: string, head: Buffer): boolean;
  /** Pass 1: adds the identifiers the file contains to the registry. */
  learn?(path: string, context: LearnContext): Promise<void>;
  /**
   * Pass 2: writes the de-identified copy to `targetPath`, which must be
   * created exclusively. Throws QuarantineReason or a DeidError to leave
   * the file out of the output.
   */
  write(path: string, targetPath: string, context: WriteContext): Promise<FormatWriteResult>;
}
