/**
 * Decoding and encoding with ISO 2022 code extensions within the limits of
 * PS3.5 section 6.1.2.5. Only G0 and G1 are used, both stay invoked (G0 into
 * GL, G1 into GR), and escape sequences only designate sets.
 *
 * At the start of a value and after each delimiter, the sets of the first
 * declared term are active again (PS3.5 6.1.2.5.3). The delimiters are CR,
 * LF, FF and TAB in every VR, the backslash between values of SH, LO, UC
 * and PN, and "^" and "=" in PN.
 */
import {
  ALL_CODE_ELEMENTS,
  REPLACEMENT_CHARACTER,
  type CodeElement,
} from "./code-elements.js";
import { unencodableCharacterError, unknownEscapeSequenceError } from "./errors.js";

export interface Iso2022Scheme {
  /** Terms as declared, for error messages. */
  readonly terms: readonly string[];
  readonly initialG0: CodeElement;
  readonly initialG1: CodeElement | undefined;
  /** Elements the encoder may designate, in order of preference. */
  readonly elements: readonly CodeElement[];
}

const ESC = 0x1b;
const CONTROL_DELIMITERS = [0x09, 0x0a, 0x0c, 0x0d];

function delimiterFlags(delimiters: readonly number[]): Uint8Array {
  const flags = new Uint8Array(128);
  for (const byte of delimiters) flags[byte] = 1;
  return flags;
}

const TEXT_DELIMITERS = delimiterFlags(CONTROL_DELIMITERS);
const MULTI_VALUE_DELIMITERS = delimiterFlags([...CONTROL_DELIMITERS, 0x5c]);
const PERSON_NAME_DELIMITERS = delimiterFlags([...CONTROL_DELIMITERS, 0x5c, 0x5e, 0x3d]);

/** Returns a flag per 7-bit byte: 1 where the byte resets the code elements. */
function delimitersFor(vr: string): Uint8Array {
  if (vr === "PN") return PERSON_NAME_DELIMITERS;
  if (vr === "ST" || vr === "LT" || vr === "UT") return TEXT_DELIMITERS;
  return MULTI_VALUE_DELIMITERS;
}

function matchEscapeSequence(bytes: Uint8Array, offset: number): CodeElement | undefined {
  return ALL_CODE_ELEMENTS.find((element) =>
    element.escapeSequence.every((byte, index) => bytes[offset + index] === byte),
  );
}

function decodeDoubleByte(element: CodeElement, first: number, second: number): number {
  return element.table().decode[(first - 0x21) * 94 + (second - 0x21)];
}

function isGraphicLeft(byte: number | undefined): boolean {
  return byte !== undefined && byte >= 0x21 && byte <= 0x7e;
}

function isGraphicRight(byte: number | undefined): boolean {
  return byte !== undefined && byte >= 0xa1 && byte <= 0xfe;
}

export function charCodesToString(codes: readonly number[]): string {
  const chunkSize = 8192;
  if (codes.length <= chunkSize) return String.fromCharCode(...codes);
  let text = "";
  for (let start = 0; start < codes.length; start += chunkSize) {
    text += String.fromCharCode(...codes.slice(start, start + chunkSize));
  }
  return text;
}

/**
 * Decodes a whole value field. Escape sequences for any set in
 * ALL_CODE_ELEMENTS are followed, declared or not. GR bytes with no set in
 * G1 decode as Latin-1, and unassigned positions as U+FFFD.
 * Throws DICOM_UNSUPPORTED for an escape sequence that designates no known
 * set.
 */
export function decodeIso2022(bytes: Uint8Array, scheme: Iso2022Scheme, vr: string): string {
  const delimiters = delimitersFor(vr);
  const codes: number[] = [];
  let g0 = scheme.initialG0;
  let g1 = scheme.initialG1;
  let offset = 0;

  while (offset < bytes.length) {
    const byte = bytes[offset];

    if (byte === ESC) {
      const element = matchEscapeSequence(bytes, offset);
      if (element === undefined) throw unknownEscapeSequenceError(scheme.terms, vr, offset);
      if (element.slot === "G0") g0 = element;
      else g1 = element;
      offset += element.escapeSequence.length;
      continue;
    }

    if (byte < 0x80) {
      // In a double-byte G0 set, only 0x21-0x7E pair up. SPACE and control
      // characters keep their single-byte meaning.
      if (g0.bytesPerCharacter === 2 && isGraphicLeft(byte)) {
        if (isGraphicLeft(bytes[offset + 1])) {
          codes.push(decodeDoubleByte(g0, byte, bytes[offset + 1]));
          offset += 2;
        } else {
          codes.push(REPLACEMENT_CHARACTER);
          offset += 1;
        }
        continue;
      }
      codes.push(g0.bytesPerCharacter === 1 ? g0.table().decode[byte] : byte);
      if (delimiters[byte] === 1) {
        g0 = scheme.initialG0;
        g1 = scheme.initialG1;
      }
      offset += 1;
      continue;
    }

    if (g1 === undefined) {
      codes.push(byte);
      offset += 1;
    } else if (g1.bytesPerCharacter === 1) {
      codes.push(g1.table().decode[byte & 0x7f]);
      offset += 1;
    } else if (isGraphicRight(byte) && isGraphicRight(bytes[offset + 1])) {
      codes.push(decodeDoubleByte(g1, byte & 0x7f, bytes[offset + 1] & 0x7f));
      offset += 2;
    } else {
      // C1 controls keep their code; other lone GR bytes are invalid here.
      codes.push(byte < 0xa0 ? byte : REPLACEMENT_CHARACTER);
      offset += 1;
    }
  }
  return charCodesToString(codes);
}

interface Selection {
  element: CodeElement;
  code: number;
}

function lookUp(element: CodeElement | undefined, codePoint: number, withAliases: boolean) {
  if (element === undefined) return undefined;
  const table = element.table();
  const code = table.encode.get(codePoint);
  if (code !== undefined || !withAliases) return code;
  return table.aliases.get(codePoint);
}

/**
 * Picks the set for one character: the active G0, then the active G1, then
 * the declared sets in order. Alternative mappings (aliases) are tried only
 * when no set has the character itself, so that decoding the output returns
 * the input whenever that is possible.
 */
function selectElement(
  codePoint: number,
  g0: CodeElement,
  g1: CodeElement | undefined,
  elements: readonly CodeElement[],
): Selection | undefined {
  for (const withAliases of [false, true]) {
    let code = lookUp(g0, codePoint, withAliases);
    if (code !== undefined) return { element: g0, code };
    code = lookUp(g1, codePoint, withAliases);
    if (g1 !== undefined && code !== undefined) return { element: g1, code };
    for (const element of elements) {
      code = lookUp(element, codePoint, withAliases);
      if (code !== undefined) return { element, code };
    }
  }
  return undefined;
}

/**
 * Encodes text with the fewest designations this greedy choice finds. Before
 * each delimiter and at the end, G0 is switched back to the initial set.
 * G1 needs no switch back, because its bytes cannot be mistaken for
 * delimiters. PS3.5 Annexes I and K show the same.
 */
export function encodeIso2022(text: string, scheme: Iso2022Scheme, vr: string): Buffer {
  const delimiters = delimitersFor(vr);
  const bytes: number[] = [];
  let g0 = scheme.initialG0;
  let g1 = scheme.initialG1;
  let index = 0;

  const restoreInitialG0 = () => {
    if (g0 !== scheme.initialG0) bytes.push(...scheme.initialG0.escapeSequence);
    g0 = scheme.initialG0;
  };

  for (const character of text) {
    const codePoint = character.codePointAt(0) ?? 0;

    if (codePoint < 0x80 && delimiters[codePoint] === 1) {
      restoreInitialG0();
      g1 = scheme.initialG1;
      bytes.push(codePoint);
      index += character.length;
      continue;
    }

    const selection = selectElement(codePoint, g0, g1, scheme.elements);
    if (selection === undefined) throw unencodableCharacterError(scheme.terms, vr, index);
    const { element, code } = selection;

    if (element.slot === "G0" && element !== g0) {
      bytes.push(...element.escapeSequence);
      g0 = element;
    } else if (element.slot === "G1" && element !== g1) {
      bytes.push(...element.escapeSequence);
      g1 = element;
    }

    const high = element.slot === "G1" ? 0x80 : 0;
    if (element.bytesPerCharacter === 2) bytes.push((code >> 8) | high, (code & 0xff) | high);
    else bytes.push(code | high);
    index += character.length;
  }

  restoreInitialG0();
  return Buffer.from(bytes);
}
