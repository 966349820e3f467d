import { describe, expect, test } from "vitest";

import { foldCodePoint, TextCleaner } from "../../src/deid/cleaner.js";
import type { Term } from "../../src/deid/identifiers.js";

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Cleans `text` as the cleaner did before the prefilter: one alternation of every term, longest first. */
function referenceClean(terms: Term[], text: string): string {
  const byText = new Map(terms.map((term) => [term.text.toLowerCase(), term]));
  const sorted = [...byText.values()].map((term) => term.text).sort((a, b) => b.length - a.length);
  const cjk = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;
  const bounded = sorted.filter((term) => !cjk.test(term)).map(escapeRegExp);
  const unbounded = sorted.filter((term) => cjk.test(term)).map(escapeRegExp);
  const alternatives: string[] = [];
  if (unbounded.length) alternatives.push(`(?:${unbounded.join("|")})`);
  if (bounded.length) alternatives.push(`(?<![\\p{L}\\p{N}])(?:${bounded.join("|")})(?![\\p{L}\\p{N}])`);
  const pattern = new RegExp(alternatives.join("|"), "giu");
  return text.replace(pattern, (match) => byText.get(match.toLowerCase())?.replacement ?? match);
}

function term(text: string, replacement: string): Term {
  return { text, category: "name", replacement };
}

/** Lists every code point that a case mapping changes, and the single code points it maps to. */
function casedCharacters(): string[] {
  const chars = new Set<string>();
  for (let codePoint = 0; codePoint <= 0x1ffff; codePoint++) {
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) continue;
    const char = String.fromCodePoint(codePoint);
    const upper = char.toUpperCase();
    const lower = char.toLowerCase();
    if (upper === char && lower === char) continue;
    chars.add(char);
    for (const mapped of [upper, lower]) if ([...mapped].length === 1) chars.add(mapped);
  }
  return [...chars];
}

describe("case folding of the prefilter", () => {
  test("characters equal under the iu flags fold alike", () => {
    const chars = casedCharacters();
    const all = chars.join("");
    const mismatches: string[] = [];
    for (const char of chars) {
      const pattern = new RegExp(escapeRegExp(char), "giu");
      for (const match of all.matchAll(pattern)) {
        if (foldCodePoint(match[0].codePointAt(0)!) !== foldCodePoint(char.codePointAt(0)!)) {
          mismatches.push(`U+${char.codePointAt(0)!.toString(16)} ~ U+${match[0].codePointAt(0)!.toString(16)}`);
        }
      }
    }
    expect(chars.length).toBeGreaterThan(2000);
    expect(mismatches).toEqual([]);
  });
});

describe("cleaner with the prefilter", () => {
  const terms = [
    term("DOE", "[N1]"),
    term("Doe Jane", "[N2]"),
    term("MRN100001", "[ID]"),
    term("Straße", "[S]"),
    term("ΣΟΦΙΑ", "[G]"),
    term("kelvin", "[K]"),
    term("山田太郎", "[J]"),
    term("山田", "[J2]"),
    term("16.3.1947", "[DATE]"),
    term("A-0042", "[A]"),
    term("0042", "[B]"),
  ];
  const texts = [
    "Patient DOE JANE, doe jane and Doe Jane; JOHNDOE stays",
    "mrn100001 and MRN1000012 and xMRN100001",
    "STRASSE is not Straße but STRAẞE is",
    "σοφια, Σοφιας and ΣΟΦΙΑ",
    "KELVIN with the Kelvin sign: \u212aELVIN",
    "山田太郎のCT and 山田さん",
    "born 16.3.1947, not 116.3.1947 or 16.3.19470",
    "case A-0042 and B-0042 and 0042",
    "nothing to find here",
    "DOE JANEx falls back to DOE, and DOE JANE_ keeps the long one",
    "éDOE and DOEé and 𝐀DOE and DOE𝐀 are inside words; (DOE) is not",
    "dotless kelvın is no match, KELVİN neither",
    "山田太郎山田 and 山田 太郎",
    "MRN100001MRN100001 and MRN100001-MRN100001",
    "",
  ];
  const cleaner = new TextCleaner(terms, (uid) => uid);

  test.each(texts)("cleans %j as the whole alternation does", (text) => {
    expect(cleaner.clean(text).text).toBe(referenceClean(terms, text));
  });

  test("contains agrees with cleaning", () => {
    expect(cleaner.contains("a note on doe")).toBe(true);
    expect(cleaner.contains("a note on JOHNDOE")).toBe(false);
    expect(cleaner.contains("no terms")).toBe(false);
  });

  test("thousands of patients give the same output", () => {
    const cohort: Term[] = [];
    for (let index = 0; index < 3000; index++) {
      cohort.push(term(`PATIENT${index}`, `[P${index}]`), term(`MRN${100000 + index}`, `[M${index}]`));
    }
    const text = "PATIENT12 seen with MRN100012, patient2999 and MRN1000123; PATIENT30000 is not a patient";
    const big = new TextCleaner(cohort, (uid) => uid);
    expect(big.clean(text).text).toBe(referenceClean(cohort, text));
    expect(big.clean(text).text).toContain("[P12] seen with [M12]");
  });
});
