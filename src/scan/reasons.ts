/**
 * Fixed descriptions of the reason codes for files left out. Scan output
 * prints these in place of the per-file messages, because a message can
 * quote a value read from the file (an unsupported character set term).
 */
const DESCRIPTIONS: Readonly<Record<string, string>> = {
  UNSUPPORTED_FORMAT: "neither DICOM nor a format deidkit has rules for",
  DICOM_INVALID: "damaged DICOM stream",
  DICOM_UNSUPPORTED: "DICOM encoding deidkit cannot read, such as an unknown character set",
  LIMIT_EXCEEDED: "a length, depth or count above a limit",
  BURNED_IN_ANNOTATION: "Burned In Annotation is YES: the pixels may show identifiers",
  MISSING_SOP_UIDS: "no SOP Class or SOP Instance UID",
  SYMLINK: "symbolic link, never followed",
  SPECIAL_FILE: "FIFO, socket or device",
  IO: "the file could not be read",
};

/** Returns the description of a reason code, or "" for codes of format handlers not listed here. */
export function describeReason(reason: string): string {
  return DESCRIPTIONS[reason] ?? "";
}
