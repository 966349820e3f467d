/**
 * Replaces every known identifier in a text: one pass over the text with a
 * single regular expression built from all terms, longest first.
 */
import { deriveUid } from "../pseudonym/derive.js";
import type { IdentifierCategory, Term } from "./identifiers.js";

/** Letters and digits continue a word: an ID of 1234 is not found inside 51234. */
const BEFORE = "(?<![\\p{L}\\p{N}])";
const AFTER = "(?![\\p{L}\\p{N}])";

/**
 * UIDs written in text or file names (e.g. "CT.1.2.840.113619.2.55.3.dcm").
 * Four or more numeric components; "2.25." UIDs made by deidkit are left alone.
 */
const UID_PATTERN = /(?<!\d)[0-2](?:\.(?:0|[1-9]\d*)){3,}(?![\d])/g;

/** UIDs of the DICOM standard itself (SOP classes, transfer syntaxes) identify no one. */
const DICOM_ROOT = "1.2.840.10008.";

const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

export function hasCjk(text: string): boolean {
  return CJK.test(text);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export interface CleanResult {
  text: string;
  /** Count of replacements by category. */
  replaced: Partial<Record<IdentifierCategory | "uid", number>>;
}

export class TextCleaner {
  private readonly pattern: RegExp | undefined;
  private readonly byText: Map<string, Term>;

  constructor(
    terms: readonly Term[],
    private readonly mapUid: (uid: string) => string,
  ) {
    this.byText = new Map(terms.map((term) => [term.text.toLowerCase(), term]));
    const sorted = [...this.byText.values()].map((term) => term.text).sort((a, b) => b.length - a.length);
    // Chinese, Japanese and Korean text has no spaces between words, so those terms match anywhere.
    const bounded = sorted.filter((text) => !hasCjk(text)).map(escapeRegExp);
    const unbounded = sorted.filter(hasCjk).map(escapeRegExp);
    const alternatives: string[] = [];
    if (unbounded.length) alternatives.push(`(?:${unbounded.join("|")})`);
    if (bounded.length) alternatives.push(`${BEFORE}(?:${bounded.join("|")})${AFTER}`);
    this.pattern = alternatives.length ? new RegExp(alternatives.join("|"), "giu") : undefined;
  }

  get size(): number {
    return this.byText.size;
  }

  /** Returns `text` with every known identifier and every non-standard UID replaced. */
  clean(text: string): CleanResult {
    const replaced: CleanResult["replaced"] = {};
    let out = text;
    if (this.pattern) {
      out = out.replace(this.pattern, (match) => {
        const term = this.byText.get(match.toLowerCase());
        if (!term) return match;
        replaced[term.category] = (replaced[term.category] ?? 0) + 1;
        return term.replacement;
      });
    }
    out = out.replace(UID_PATTERN, (uid) => {
      if (uid.startsWith(DICOM_ROOT) || uid.startsWith("2.25.")) return uid;
      replaced.uid = (replaced.uid ?? 0) + 1;
      return this.mapUid(uid);
    });
    return { text: out, replaced };
  }

  /** True when `text` contains a known identifier (used by checks, never to print it). */
  contains(text: string): boolean {
    if (!this.pattern) return false;
    this.pattern.lastIndex = 0;
    const found = this.pattern.test(text);
    this.pattern.lastIndex = 0;
    return found;
  }
}

export function uidMapper(secret: Uint8Array, record?: (original: string, replacement: string) => void) {
  return (uid: string): string => {
    const replacement = deriveUid(secret, uid);
    record?.(uid, replacement);
    return replacement;
  };
}
