/**
 * Errors raised by the character set codecs. Messages name the declared
 * terms, the VR and character positions, never the text itself, because the
 * text may identify a patient.
 */
import { DeidError } from "../../errors.js";

const QUARANTINE_HINT = "The file will be quarantined";

/** Returns `terms` as written in (0008,0005), for messages. */
export function describeTerms(terms: readonly string[]): string {
  if (terms.length === 0) return "the default repertoire (no Specific Character Set)";
  return `Specific Character Set "${terms.join("\\")}"`;
}

/**
 * Describes an unrecognised term without quoting it: a file can put any text
 * into (0008,0005), a patient's name included, and messages reach the report.
 */
export function quoteTerm(term: string): string {
  return `(a ${term.length}-character term, not shown)`;
}

export function unsupportedTermError(term: string, supported: readonly string[]): DeidError {
  return new DeidError(
    "DICOM_UNSUPPORTED",
    `Specific Character Set (0008,0005) contains the unsupported term ${quoteTerm(term)}`,
    {
      hint:
        `${QUARANTINE_HINT}, because its text values cannot be decoded reliably. ` +
        `Supported terms: ${supported.join(", ")}.`,
    },
  );
}

export function noCodeExtensionsError(term: string): DeidError {
  return new DeidError(
    "DICOM_UNSUPPORTED",
    // The term is a recognised one here, so quoting it reveals nothing read from the file.
    `Specific Character Set (0008,0005) combines ${JSON.stringify(term)} with other terms, ` +
      "but that character set does not allow code extensions",
    { hint: `${QUARANTINE_HINT}, because its text values cannot be decoded reliably.` },
  );
}

export function unencodableCharacterError(
  terms: readonly string[],
  vr: string,
  index: number,
): DeidError {
  return new DeidError(
    "DICOM_UNSUPPORTED",
    `Character at index ${index} of the ${vr} value cannot be encoded in ${describeTerms(terms)}`,
    {
      hint:
        `${QUARANTINE_HINT} unless the replacement text uses only characters ` +
        "of the declared character set.",
    },
  );
}

export function escapeCharacterError(
  terms: readonly string[],
  vr: string,
  index: number,
): DeidError {
  return new DeidError(
    "DICOM_UNSUPPORTED",
    `Character at index ${index} of the ${vr} value is the control character ESC (0x1B), ` +
      `which cannot be encoded in ${describeTerms(terms)} because ESC starts ISO 2022 escape sequences`,
    { hint: `${QUARANTINE_HINT} unless the replacement text contains no ESC character.` },
  );
}

export function unknownEscapeSequenceError(
  terms: readonly string[],
  vr: string,
  offset: number,
): DeidError {
  return new DeidError(
    "DICOM_UNSUPPORTED",
    `The ${vr} value declared as ${describeTerms(terms)} contains an unknown ` +
      `ISO 2022 escape sequence at byte ${offset}`,
    { hint: `${QUARANTINE_HINT}, because its text values cannot be decoded reliably.` },
  );
}
