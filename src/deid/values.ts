/** Reading and writing the string values of elements (PS3.5 section 6.2). */
import type { CharsetCodec } from "../dicom/charset.js";
import { CHARSET_SENSITIVE_VRS } from "../dicom/charset.js";
import { vrOf, type Element } from "../dicom/dataset.js";
import { MAX_VALUE_LENGTH, paddingByte, STRING_VRS } from "../dicom/vr.js";
import { LimitError } from "../errors.js";

/** VRs that hold one value which may itself contain backslashes (PS3.5 section 6.4). */
const SINGLE_VALUED_VRS = new Set(["LT", "ST", "UT", "UR"]);

/** Decodes an element's value bytes to text, with padding removed. */
export function decodeText(bytes: Buffer, vr: string, codec: CharsetCodec): string {
  const text = CHARSET_SENSITIVE_VRS.has(vr) ? codec.decode(bytes, vr) : bytes.toString("latin1");
  return text.replace(/[\0 ]+$/, "");
}

/** Splits a decoded value into its values; single-valued text VRs give one value. */
export function splitValues(text: string, vr: string): string[] {
  if (SINGLE_VALUED_VRS.has(vr)) return [text];
  return text.split("\\");
}

export function joinValues(values: readonly string[]): string {
  return values.join("\\");
}

/**
 * Truncates each value to the VR's maximum length (PS3.5 Table 6.2-1), so a
 * replacement can never make an element invalid. Lengths count characters,
 * which equal bytes for the ASCII replacements deidkit writes.
 */
function fitValue(value: string, vr: string): string {
  const max = vr === "PN" ? undefined : MAX_VALUE_LENGTH[vr];
  if (max === undefined || value.length <= max) return value;
  const cut = value.slice(0, max);
  // Never keep part of a word: half a pseudonym would read as a different, wrong pseudonym.
  const whole = /[\s_,;^/-]/.test(value[max]) ? cut : cut.replace(/[^\s_,;^/]+$/, "");
  return (whole.trim().length > 0 ? whole : cut).trimEnd();
}

/** Encodes values in the element's VR and character set, padded to an even length. */
export function encodeText(values: readonly string[], vr: string, codec: CharsetCodec): Buffer {
  const text = joinValues(values.map((value) => fitValue(value, vr)));
  const bytes = CHARSET_SENSITIVE_VRS.has(vr) ? codec.encode(text, vr) : Buffer.from(text, "latin1");
  if (bytes.length % 2 === 0) return bytes;
  return Buffer.concat([bytes, Buffer.from([paddingByte(vr)])]);
}

export function setText(element: Element, values: readonly string[], codec: CharsetCodec): void {
  element.bytes = encodeText(values, vrOf(element), codec);
  element.bulk = undefined;
  element.items = undefined;
  element.fragments = undefined;
  element.undefinedLength = false;
}

export function setEmpty(element: Element): void {
  element.bytes = Buffer.alloc(0);
  element.bulk = undefined;
  element.fragments = undefined;
  if (element.items) element.items = [];
  else element.undefinedLength = false;
}

/** Text values held in memory at most; a longer one cannot be cleaned, so its file is left out. */
export const MAX_TEXT_VALUE_BYTES = 64 * 1024 * 1024;

/**
 * Loads a string value that the reader left in the file because it is long
 * (a report in UT, say), so that it can be cleaned like any other value.
 * Binary values stay where they are.
 */
export function loadStringValue(element: Element): void {
  if (!element.bulk || !STRING_VRS.has(vrOf(element))) return;
  const { source, offset, length } = element.bulk;
  if (length > MAX_TEXT_VALUE_BYTES) {
    throw new LimitError(`a ${vrOf(element)} text value is longer than ${MAX_TEXT_VALUE_BYTES} bytes`, {
      hint: "such a value cannot be cleaned; the file is left out",
    });
  }
  element.bytes = Buffer.from(source.read(offset, length));
  element.bulk = undefined;
}
