/**
 * Defined Terms of Specific Character Set (0008,0005), PS3.3 C.12.1.1.2
 * (Tables C.12-2 to C.12-5), and how their spellings are normalized.
 */
import * as elements from "./code-elements.js";
import type { CodeElement } from "./code-elements.js";

/** Single-byte sets, keyed by ISO-IR number, with ISO-IR 6 in G0. */
export const SINGLE_BYTE_G1_SETS: ReadonlyMap<number, CodeElement> = new Map([
  [100, elements.ISO_IR_100],
  [101, elements.ISO_IR_101],
  [109, elements.ISO_IR_109],
  [110, elements.ISO_IR_110],
  [144, elements.ISO_IR_144],
  [127, elements.ISO_IR_127],
  [126, elements.ISO_IR_126],
  [138, elements.ISO_IR_138],
  [148, elements.ISO_IR_148],
  [203, elements.ISO_IR_203],
  [166, elements.ISO_IR_166],
]);

/** The G0 and G1 sets that one ISO 2022 term designates. */
export interface Iso2022Term {
  readonly g0?: CodeElement;
  readonly g1?: CodeElement;
}

const ISO_2022_TERMS: ReadonlyMap<number, Iso2022Term> = new Map<number, Iso2022Term>([
  [6, { g0: elements.ISO_IR_6 }],
  ...[...SINGLE_BYTE_G1_SETS].map(
    ([number, g1]) => [number, { g0: elements.ISO_IR_6, g1 }] as [number, Iso2022Term],
  ),
  [13, { g0: elements.ISO_IR_14, g1: elements.ISO_IR_13 }],
  [87, { g0: elements.ISO_IR_87 }],
  [159, { g0: elements.ISO_IR_159 }],
  [149, { g1: elements.ISO_IR_149 }],
  [58, { g1: elements.ISO_IR_58 }],
]);

/**
 * A term in its defined spelling: "" (default repertoire), "ISO_IR <n>",
 * "ISO 2022 IR <n>", "GB18030" or "GBK".
 */
export type CanonicalTerm = string;

const ISO_IR_PATTERN = /^ISO[\s_-]*(2022[\s_-]*)?IR[\s_-]*(\d+)$/;

/**
 * Returns the defined spelling of a term, or undefined if it matches none.
 * Case and the separators between "ISO", "2022", "IR" and the number are
 * ignored ("ISO-IR 100" and "iso_ir_100" read as "ISO_IR 100"), because
 * such variants occur in real files and their meaning is unambiguous.
 */
export function canonicalTerm(term: string): CanonicalTerm | undefined {
  const upper = term.toUpperCase();
  if (upper === "" || upper === "GB18030" || upper === "GBK") return upper;
  const match = ISO_IR_PATTERN.exec(upper);
  if (match === null) return undefined;
  const number = Number(match[2]);
  return match[1] === undefined ? `ISO_IR ${number}` : `ISO 2022 IR ${number}`;
}

/** Terms that must stand alone because they allow no code extensions. */
export const STANDALONE_TERMS: ReadonlySet<CanonicalTerm> = new Set([
  "ISO_IR 192",
  "GB18030",
  "GBK",
]);

/**
 * Returns the ISO 2022 sets of a term in a multi-valued (0008,0005), or
 * undefined if the term has none. An empty term and "ISO_IR 6" stand for
 * ISO 2022 IR 6. A single-byte "ISO_IR <n>" term is read as
 * "ISO 2022 IR <n>", since it designates the same sets.
 */
export function iso2022TermFor(term: CanonicalTerm): Iso2022Term | undefined {
  if (term === "" || term === "ISO_IR 6") return ISO_2022_TERMS.get(6);
  const match = /^ISO(?:_| 2022 )IR (\d+)$/.exec(term);
  if (match === null) return undefined;
  const number = Number(match[1]);
  if (term.startsWith("ISO_IR") && !SINGLE_BYTE_G1_SETS.has(number) && number !== 13) {
    return undefined;
  }
  return ISO_2022_TERMS.get(number);
}

/** Defined Terms this module supports, for error hints. */
export const SUPPORTED_TERMS: readonly string[] = [
  "empty (default repertoire)",
  ...[...SINGLE_BYTE_G1_SETS.keys(), 13].map((number) => `ISO_IR ${number}`),
  "ISO_IR 192",
  "GB18030",
  "GBK",
  ...[...ISO_2022_TERMS.keys()].map((number) => `ISO 2022 IR ${number}`),
];
