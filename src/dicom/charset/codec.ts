/**
 * Codecs for the character sets that Specific Character Set (0008,0005)
 * declares (PS3.5 section 6.1, PS3.3 C.12.1.1.2).
 *
 * Reading is lenient and writing is strict. Bytes above 0x7F read as
 * Latin-1 where no set is declared for them, and positions that the set
 * leaves unassigned read as U+FFFD. Only an unknown ISO 2022 escape
 * sequence makes decoding throw. Encoding throws DICOM_UNSUPPORTED for any
 * character that the declared sets cannot represent.
 */
import iconv from "iconv-lite";
import { ISO_IR_13, ISO_IR_14, ISO_IR_6, type CodeElement } from "./code-elements.js";
import {
  escapeCharacterError,
  noCodeExtensionsError,
  unencodableCharacterError,
  unsupportedTermError,
} from "./errors.js";
import { charCodesToString, decodeIso2022, encodeIso2022, type Iso2022Scheme } from "./iso2022.js";
import {
  SINGLE_BYTE_G1_SETS,
  STANDALONE_TERMS,
  SUPPORTED_TERMS,
  canonicalTerm,
  iso2022TermFor,
  type CanonicalTerm,
} from "./terms.js";

/**
 * Text VRs whose values are affected by Specific Character Set (0008,0005):
 * SH, LO, ST, LT, UC, UT, PN. Others (AE, CS, DA, DT, TM, UI, AS, DS, IS,
 * UR) are always the default repertoire.
 */
export const CHARSET_SENSITIVE_VRS: ReadonlySet<string> = new Set([
  "SH",
  "LO",
  "ST",
  "LT",
  "UC",
  "UT",
  "PN",
]);

export interface CharsetCodec {
  /** Terms as declared, e.g. ["ISO 2022 IR 6", "ISO 2022 IR 87"]. */
  readonly terms: readonly string[];
  /**
   * Decodes a whole value field, all values included. Split the result on
   * "\" only afterwards, because in GBK and GB18030 a byte 0x5C can be the
   * second byte of a character, and in ISO 2022 its meaning depends on the
   * escape sequences before it.
   */
  decode(bytes: Uint8Array, vr: string): string;
  /** Encode text in the declared set(s). Throws DeidError code "DICOM_UNSUPPORTED" if a character cannot be represented. */
  encode(text: string, vr: string): Buffer;
}

interface TextCodec {
  decode(bytes: Uint8Array, vr: string): string;
  /** Encodes text that contains neither ESC nor unpaired surrogates. */
  encode(text: string, vr: string): Buffer;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

function decodeLatin1(bytes: Uint8Array): string {
  return asBuffer(bytes).toString("latin1");
}

function encodeAscii(text: string, terms: readonly string[], vr: string): Buffer {
  for (let index = 0; index < text.length; index++) {
    if (text.charCodeAt(index) > 0x7f) throw unencodableCharacterError(terms, vr, index);
  }
  return Buffer.from(text, "latin1");
}

/**
 * Adds the checks common to every character set: VRs outside
 * CHARSET_SENSITIVE_VRS use the default repertoire, and ESC and unpaired
 * surrogates are never encodable.
 */
function makeCodec(terms: readonly string[], textCodec: TextCodec): CharsetCodec {
  return {
    terms,
    decode(bytes, vr) {
      if (!CHARSET_SENSITIVE_VRS.has(vr)) return decodeLatin1(bytes);
      return textCodec.decode(bytes, vr);
    },
    encode(text, vr) {
      const escapeIndex = text.indexOf("\u001b");
      if (escapeIndex >= 0) throw escapeCharacterError(terms, vr, escapeIndex);
      if (!CHARSET_SENSITIVE_VRS.has(vr)) return encodeAscii(text, terms, vr);
      const surrogate = LONE_SURROGATE.exec(text);
      if (surrogate !== null) throw unencodableCharacterError(terms, vr, surrogate.index);
      return textCodec.encode(text, vr);
    },
  };
}

/** Default repertoire: ASCII, with bytes above 0x7F read as Latin-1. */
function defaultRepertoireCodec(terms: readonly string[]): TextCodec {
  return {
    decode: (bytes) => decodeLatin1(bytes),
    encode: (text, vr) => encodeAscii(text, terms, vr),
  };
}

function isAscii(bytes: Uint8Array): boolean {
  for (const byte of bytes) if (byte > 0x7f) return false;
  return true;
}

/** ISO 646 in G0 and one 96-character set in G1, without code extensions. */
function singleByteCodec(terms: readonly string[], g1: CodeElement): TextCodec {
  return {
    decode(bytes) {
      if (isAscii(bytes)) return decodeLatin1(bytes);
      const table = g1.table().decode;
      const codes = Array.from(bytes, (byte) => (byte < 0x80 ? byte : table[byte & 0x7f]));
      return charCodesToString(codes);
    },
    encode(text, vr) {
      const table = g1.table().encode;
      const bytes = Buffer.alloc(text.length);
      for (let index = 0; index < text.length; index++) {
        const character = text.charCodeAt(index);
        const code = character < 0x80 ? character : table.get(character);
        if (code === undefined) throw unencodableCharacterError(terms, vr, index);
        bytes[index] = character < 0x80 ? code : code | 0x80;
      }
      return bytes;
    },
  };
}

/**
 * ISO_IR 13: JIS X 0201 romaji in G0 and katakana in G1. Decoding uses
 * Shift_JIS, as pydicom does, so that files which put Shift_JIS kanji under
 * this term still decode. Encoding emits JIS X 0201 only. Node's own
 * Shift_JIS decoder (ICU) is not used because it swaps the control
 * characters 0x1A, 0x1C and 0x7F.
 */
function jisX0201Codec(terms: readonly string[]): TextCodec {
  return {
    decode: (bytes) => iconv.decode(asBuffer(bytes), "shiftjis"),
    encode(text, vr) {
      const romaji = ISO_IR_14.table().encode;
      const katakana = ISO_IR_13.table().encode;
      const bytes = Buffer.alloc(text.length);
      for (let index = 0; index < text.length; index++) {
        const character = text.charCodeAt(index);
        const romajiCode = romaji.get(character);
        const katakanaCode = katakana.get(character);
        if (romajiCode !== undefined) bytes[index] = romajiCode;
        else if (katakanaCode !== undefined) bytes[index] = katakanaCode | 0x80;
        else throw unencodableCharacterError(terms, vr, index);
      }
      return bytes;
    },
  };
}

/** ISO_IR 192. A byte order mark is kept, so that it survives a round trip. */
function utf8Codec(): TextCodec {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  return {
    decode: (bytes) => decoder.decode(bytes),
    encode: (text) => Buffer.from(text, "utf8"),
  };
}

/**
 * GB18030 through iconv-lite, whose mapping (GB 18030-2005) matches pydicom
 * and round-trips. Node's decoder follows GB 18030-2022, which maps 18
 * positions differently from iconv-lite's encoder.
 * NOTE: 0xA3A0 decodes to U+3000, which encodes back as 0xA1A1.
 */
function gb18030Codec(): TextCodec {
  return {
    decode: (bytes) => iconv.decode(asBuffer(bytes), "gb18030"),
    encode: (text) => iconv.encode(text, "gb18030"),
  };
}

/**
 * GBK through iconv-lite (CP936). iconv-lite writes "?" for a character it
 * cannot encode, so the result is checked by decoding it. The euro sign is
 * rejected, because CP936 writes it as the single byte 0x80, which Python's
 * GBK codec (used by pydicom) cannot read.
 */
function gbkCodec(terms: readonly string[]): TextCodec {
  return {
    decode: (bytes) => iconv.decode(asBuffer(bytes), "gbk"),
    encode(text, vr) {
      const euroIndex = text.indexOf("\u20ac");
      if (euroIndex >= 0) throw unencodableCharacterError(terms, vr, euroIndex);
      const encoded = iconv.encode(text, "gbk");
      if (iconv.decode(encoded, "gbk") === text) return encoded;
      let index = 0;
      for (const character of text) {
        if (iconv.decode(iconv.encode(character, "gbk"), "gbk") !== character) {
          throw unencodableCharacterError(terms, vr, index);
        }
        index += character.length;
      }
      return encoded;
    },
  };
}

function iso2022Codec(scheme: Iso2022Scheme): TextCodec {
  return {
    decode: (bytes, vr) => decodeIso2022(bytes, scheme, vr),
    encode: (text, vr) => encodeIso2022(text, scheme, vr),
  };
}

/**
 * Builds the ISO 2022 scheme of one or more terms. The first term sets the
 * initial G0 and G1. A double-byte G0 set (ISO 2022 IR 87 or 159) is only
 * defined for values 2 to n. As the first term it is read as if ISO 2022
 * IR 6 came first, which is how Python's iso2022_jp codec starts.
 */
function iso2022Scheme(declared: readonly string[], canonical: readonly CanonicalTerm[]) {
  const sets = canonical.map((term, index) => {
    const sets = iso2022TermFor(term);
    if (sets === undefined) throw unsupportedTermError(declared[index], SUPPORTED_TERMS);
    return sets;
  });
  const first = sets[0];
  const initialG0 = first.g0?.bytesPerCharacter === 1 ? first.g0 : ISO_IR_6;
  const elements: CodeElement[] = [initialG0];
  if (first.g1 !== undefined) elements.push(first.g1);
  for (const { g0, g1 } of sets) {
    if (g0 !== undefined && !elements.includes(g0)) elements.push(g0);
    if (g1 !== undefined && !elements.includes(g1)) elements.push(g1);
  }
  const scheme: Iso2022Scheme = { terms: declared, initialG0, initialG1: first.g1, elements };
  return scheme;
}

function textCodecFor(declared: readonly string[]): TextCodec {
  const canonical = declared.map((term) => {
    const normalized = canonicalTerm(term);
    if (normalized === undefined) throw unsupportedTermError(term, SUPPORTED_TERMS);
    return normalized;
  });

  if (canonical.length > 1) {
    const standalone = canonical.findIndex((term) => STANDALONE_TERMS.has(term));
    if (standalone >= 0) throw noCodeExtensionsError(declared[standalone]);
    return iso2022Codec(iso2022Scheme(declared, canonical));
  }

  const term = canonical[0] ?? "";
  if (term === "" || term === "ISO_IR 6") return defaultRepertoireCodec(declared);
  if (term === "ISO_IR 13") return jisX0201Codec(declared);
  if (term === "ISO_IR 192") return utf8Codec();
  if (term === "GB18030") return gb18030Codec();
  if (term === "GBK") return gbkCodec(declared);
  if (term.startsWith("ISO 2022 IR ")) return iso2022Codec(iso2022Scheme(declared, canonical));

  const g1 = SINGLE_BYTE_G1_SETS.get(Number(term.slice("ISO_IR ".length)));
  if (!term.startsWith("ISO_IR ") || g1 === undefined) {
    throw unsupportedTermError(declared[0], SUPPORTED_TERMS);
  }
  return singleByteCodec(declared, g1);
}

/** Splits a raw (0008,0005) value into terms without padding. */
function splitTerms(value: string | undefined): string[] {
  const trimmed = value?.replace(/^[\s\0]+|[\s\0]+$/g, "") ?? "";
  if (trimmed === "") return [];
  return trimmed.split("\\").map((term) => term.replace(/^[\s\0]+|[\s\0]+$/g, ""));
}

/**
 * Bounds memory when many files each declare a different spelling. Real
 * data sets use a handful of distinct values.
 */
const MAX_CACHED_CODECS = 256;
const codecCache = new Map<string, CharsetCodec>();

/** value = raw (0008,0005) value (backslash-separated terms, padding allowed) or undefined. Throws DeidError "DICOM_UNSUPPORTED" for an unknown term (message names the term, which is not an identifier, and hints that the file will be quarantined). */
export function codecForSpecificCharacterSet(value: string | undefined): CharsetCodec {
  const key = value ?? "";
  const cached = codecCache.get(key);
  if (cached !== undefined) return cached;

  const terms = Object.freeze(splitTerms(value));
  const codec = makeCodec(terms, textCodecFor(terms));
  if (codecCache.size >= MAX_CACHED_CODECS) codecCache.clear();
  codecCache.set(key, codec);
  return codec;
}
