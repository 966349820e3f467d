/**
 * Code elements (graphic character sets) that DICOM combines through
 * Specific Character Set (0008,0005), with their ISO 2022 designation
 * escape sequences (PS3.3 Tables C.12-2 to C.12-4) and lazily built
 * character tables.
 *
 * Decoding is lenient, so positions that vendor extensions assign (NEC and
 * IBM rows in JIS X 0208, GBK additions in the GB 2312 rows) decode to
 * their characters. Encoding is strict and emits only positions of the
 * standard set, which pydicom's Python codecs can read.
 */
import iconv from "iconv-lite";

export const REPLACEMENT_CHARACTER = 0xfffd;

/** G0 is invoked into GL (bytes 0x21-0x7E), G1 into GR (bytes 0xA0-0xFF). */
export type Slot = "G0" | "G1";

export interface CodeTable {
  /**
   * Character per 7-bit code, REPLACEMENT_CHARACTER where unassigned.
   * Single-byte sets have 128 entries indexed by `byte & 0x7F`. Double-byte
   * sets have 94 * 94 entries indexed by `(first - 0x21) * 94 + (second - 0x21)`
   * over the 7-bit bytes.
   */
  readonly decode: Uint16Array;
  /** Code point to 7-bit code (`first << 8 | second` for double-byte sets). */
  readonly encode: ReadonlyMap<number, number>;
  /**
   * Code points that other mapping tables assign to a position whose decoded
   * character differs, such as U+FF5E (Windows) for JIS X 0208 0x2141, which
   * decodes to U+301C (JIS). The encoder uses them only when no declared set
   * has the character in `encode`.
   */
  readonly aliases: ReadonlyMap<number, number>;
}

export interface CodeElement {
  /** ISO-IR registration, for example "ISO-IR 87". */
  readonly registration: string;
  readonly slot: Slot;
  readonly bytesPerCharacter: 1 | 2;
  /** Designation escape sequence, ESC included. */
  readonly escapeSequence: Uint8Array;
  /** Character table, built on first use. */
  readonly table: () => CodeTable;
}

const ESC = 0x1b;

function lazy<T>(build: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= build());
}

function defineElement(
  registration: string,
  slot: Slot,
  bytesPerCharacter: 1 | 2,
  escapeText: string,
  build: () => CodeTable,
): CodeElement {
  const escapeSequence = Uint8Array.from([ESC, ...Buffer.from(escapeText, "latin1")]);
  return { registration, slot, bytesPerCharacter, escapeSequence, table: lazy(build) };
}

function singleByteTable(characterAt: (code: number) => number): CodeTable {
  const decode = new Uint16Array(128);
  const encode = new Map<number, number>();
  for (let code = 0; code < 128; code++) {
    const character = characterAt(code);
    decode[code] = character;
    if (character !== REPLACEMENT_CHARACTER && !encode.has(character)) {
      encode.set(character, code);
    }
  }
  return { decode, encode, aliases: new Map() };
}

function asciiTable(): CodeTable {
  return singleByteTable((code) => code);
}

/** GR half (bytes 0x80-0xFF) of an ISO 8859 part, C1 controls included. */
function iso8859UpperHalf(iconvName: string, unassignedBytes: readonly number[] = []) {
  return (): CodeTable => {
    const bytes = Buffer.alloc(128, 0);
    for (let code = 0; code < 128; code++) bytes[code] = code | 0x80;
    const text = iconv.decode(bytes, iconvName);
    return singleByteTable((code) =>
      unassignedBytes.includes(code | 0x80) ? REPLACEMENT_CHARACTER : text.charCodeAt(code),
    );
  };
}

/** JIS X 0201 katakana: 0xA1-0xDF map to U+FF61-U+FF9F. */
function katakanaTable(): CodeTable {
  return singleByteTable((code) =>
    code >= 0x21 && code <= 0x5f ? 0xff61 + (code - 0x21) : REPLACEMENT_CHARACTER,
  );
}

interface DoubleByteOptions {
  /** Returns the character of the EUC (high-bit) byte pair, or undefined. */
  decodePair: (first: number, second: number) => number | undefined;
  /** Whether the encoder may emit this 7-bit code. */
  isEncodable: (code: number) => boolean;
  /** 7-bit code to the character that replaces the decoder's choice. */
  overrides?: ReadonlyMap<number, number>;
  /** Alternative code point to 7-bit code. */
  aliases?: ReadonlyMap<number, number>;
}

function doubleByteTable(options: DoubleByteOptions): CodeTable {
  const decode = new Uint16Array(94 * 94).fill(REPLACEMENT_CHARACTER);
  const encode = new Map<number, number>();
  for (let first = 0x21; first <= 0x7e; first++) {
    for (let second = 0x21; second <= 0x7e; second++) {
      const code = (first << 8) | second;
      const character =
        options.overrides?.get(code) ?? options.decodePair(first | 0x80, second | 0x80);
      if (character === undefined) continue;
      decode[(first - 0x21) * 94 + (second - 0x21)] = character;
      if (options.isEncodable(code) && !encode.has(character)) encode.set(character, code);
    }
  }
  return { decode, encode, aliases: options.aliases ?? new Map() };
}

/** Returns the single BMP character of `text`, or undefined for anything else. */
function onlyCharacter(text: string): number | undefined {
  if (text.length !== 1) return undefined;
  const character = text.charCodeAt(0);
  return character === REPLACEMENT_CHARACTER ? undefined : character;
}

function iconvPairDecoder(iconvName: string, prefix?: number) {
  const bytes = Buffer.alloc(prefix === undefined ? 2 : 3);
  if (prefix !== undefined) bytes[0] = prefix;
  return (first: number, second: number) => {
    bytes[bytes.length - 2] = first;
    bytes[bytes.length - 1] = second;
    return onlyCharacter(iconv.decode(bytes, iconvName));
  };
}

/**
 * JIS X 0208. Node's EUC-JP decoder (WHATWG index) follows the Windows
 * mapping for six positions. The overrides restore the JIS mapping, which
 * pydicom (Python's iso2022_jp codec) also uses, and the aliases keep the
 * Windows characters encodable.
 */
const JIS_X_0208_MAPPING_DIFFERENCES: ReadonlyArray<[code: number, jis: number, windows: number]> = [
  [0x2141, 0x301c, 0xff5e], // WAVE DASH, FULLWIDTH TILDE
  [0x2142, 0x2016, 0x2225], // DOUBLE VERTICAL LINE, PARALLEL TO
  [0x215d, 0x2212, 0xff0d], // MINUS SIGN, FULLWIDTH HYPHEN-MINUS
  [0x2171, 0x00a2, 0xffe0], // CENT SIGN, FULLWIDTH CENT SIGN
  [0x2172, 0x00a3, 0xffe1], // POUND SIGN, FULLWIDTH POUND SIGN
  [0x224c, 0x00ac, 0xffe2], // NOT SIGN, FULLWIDTH NOT SIGN
];

function jisX0208Table(): CodeTable {
  const decoder = new TextDecoder("euc-jp");
  return doubleByteTable({
    decodePair: (first, second) => onlyCharacter(decoder.decode(Uint8Array.of(first, second))),
    // Row 13 (NEC special characters) and rows 89-92 (IBM extensions) are
    // not part of JIS X 0208.
    isEncodable: (code) => {
      const row = (code >> 8) - 0x20;
      return row !== 13 && row <= 84;
    },
    overrides: new Map(JIS_X_0208_MAPPING_DIFFERENCES.map(([code, jis]) => [code, jis])),
    aliases: new Map(JIS_X_0208_MAPPING_DIFFERENCES.map(([code, , windows]) => [windows, code])),
  });
}

/** JIS X 0212 through iconv-lite's EUC-JP code set 3 (0x8F prefix). */
function jisX0212Table(): CodeTable {
  return doubleByteTable({
    decodePair: iconvPairDecoder("eucjp", 0x8f),
    isEncodable: () => true,
  });
}

/**
 * KS X 1001 through iconv-lite's CP949, restricted to GR byte pairs.
 * 0x2454 (HANGUL FILLER) starts a composition sequence in KS X 1001
 * Annex 3, which Python's euc_kr codec rejects when alone.
 */
function ksX1001Table(): CodeTable {
  return doubleByteTable({
    decodePair: iconvPairDecoder("euckr"),
    isEncodable: (code) => code !== 0x2454,
  });
}

/** GBK characters that CP936 adds inside the GB 2312 rows. */
const GBK_ADDITIONS_IN_GB2312_ROWS: ReadonlyArray<[first: number, last: number]> = [
  [0x2221, 0x222a], // small Roman numerals
  [0x2660, 0x266b], // vertical presentation forms
  [0x266e, 0x2672],
  [0x2674, 0x2675],
  [0x283b, 0x283b], // Latin letters for pinyin
  [0x283d, 0x283e],
  [0x2840, 0x2840],
];

/**
 * GB 2312 through iconv-lite's CP936, restricted to GR byte pairs. The
 * decoded characters for 0x2124 and 0x212A follow GBK and GB 18030
 * (U+00B7, U+2014), so that a name decodes the same from ISO 2022 IR 58 as
 * from GB18030. The GB2312.TXT characters (U+30FB, U+2015), which pydicom
 * returns, remain encodable as aliases.
 */
function gb2312Table(): CodeTable {
  return doubleByteTable({
    decodePair: iconvPairDecoder("gb2312"),
    isEncodable: (code) =>
      !GBK_ADDITIONS_IN_GB2312_ROWS.some(([first, last]) => code >= first && code <= last),
    aliases: new Map([
      [0x30fb, 0x2124],
      [0x2015, 0x212a],
    ]),
  });
}

export const ISO_IR_6 = defineElement("ISO-IR 6", "G0", 1, "(B", asciiTable);
/** JIS X 0201 romaji. 0x5C and 0x7E decode as in ASCII, as pydicom does. */
export const ISO_IR_14 = defineElement("ISO-IR 14", "G0", 1, "(J", asciiTable);
export const ISO_IR_13 = defineElement("ISO-IR 13", "G1", 1, ")I", katakanaTable);
export const ISO_IR_100 = defineElement("ISO-IR 100", "G1", 1, "-A", iso8859UpperHalf("iso88591"));
export const ISO_IR_101 = defineElement("ISO-IR 101", "G1", 1, "-B", iso8859UpperHalf("iso88592"));
export const ISO_IR_109 = defineElement("ISO-IR 109", "G1", 1, "-C", iso8859UpperHalf("iso88593"));
export const ISO_IR_110 = defineElement("ISO-IR 110", "G1", 1, "-D", iso8859UpperHalf("iso88594"));
export const ISO_IR_144 = defineElement("ISO-IR 144", "G1", 1, "-L", iso8859UpperHalf("iso88595"));
export const ISO_IR_127 = defineElement("ISO-IR 127", "G1", 1, "-G", iso8859UpperHalf("iso88596"));
export const ISO_IR_126 = defineElement("ISO-IR 126", "G1", 1, "-F", iso8859UpperHalf("iso88597"));
export const ISO_IR_138 = defineElement("ISO-IR 138", "G1", 1, "-H", iso8859UpperHalf("iso88598"));
export const ISO_IR_148 = defineElement("ISO-IR 148", "G1", 1, "-M", iso8859UpperHalf("iso88599"));
export const ISO_IR_203 = defineElement("ISO-IR 203", "G1", 1, "-b", iso8859UpperHalf("iso885915"));
/** TIS 620-2533: ISO 8859-11 without NO-BREAK SPACE at 0xA0, as in Python's tis_620. */
export const ISO_IR_166 = defineElement(
  "ISO-IR 166",
  "G1",
  1,
  "-T",
  iso8859UpperHalf("iso885911", [0xa0]),
);
export const ISO_IR_87 = defineElement("ISO-IR 87", "G0", 2, "$B", jisX0208Table);
export const ISO_IR_159 = defineElement("ISO-IR 159", "G0", 2, "$(D", jisX0212Table);
export const ISO_IR_149 = defineElement("ISO-IR 149", "G1", 2, "$)C", ksX1001Table);
export const ISO_IR_58 = defineElement("ISO-IR 58", "G1", 2, "$)A", gb2312Table);

/** Every element whose escape sequence the decoder recognizes. */
export const ALL_CODE_ELEMENTS: readonly CodeElement[] = [
  ISO_IR_6,
  ISO_IR_14,
  ISO_IR_13,
  ISO_IR_100,
  ISO_IR_101,
  ISO_IR_109,
  ISO_IR_110,
  ISO_IR_144,
  ISO_IR_127,
  ISO_IR_126,
  ISO_IR_138,
  ISO_IR_148,
  ISO_IR_203,
  ISO_IR_166,
  ISO_IR_87,
  ISO_IR_159,
  ISO_IR_149,
  ISO_IR_58,
];
