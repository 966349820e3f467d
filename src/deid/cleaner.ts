/**
 * Replaces every known identifier in a text, with the result of one pass of
 * a single regular expression built from all terms, longest first, each
 * matched case-insensitively and, outside Chinese, Japanese and Korean, as
 * a whole word.
 *
 * With thousands of patients that alternation costs time in proportion to
 * the cohort for every character scanned, and building one per text costs
 * a compile each. So an Aho–Corasick automaton over case-folded terms finds
 * every place where a term can start, and the cleaner tries those places in
 * the order the regular expression would: leftmost first, and at one place
 * the alternatives in their order. A term absent from the text cannot match,
 * so the result is the same.
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

/**
 * Characters whose upper case is more than one character but which simple
 * case folding still makes equal to one other character (status S in
 * Unicode's CaseFolding.txt): the two Greek letters with dialytika and
 * tonos, and the two "st" ligatures. test/deid/cleaner-prefilter.test.ts
 * checks every cased character of the running Node against the regular
 * expression engine.
 */
const FOLD_PAIRS = new Map<number, number>([
  [0x1fd3, 0x0390],
  [0x1fe3, 0x03b0],
  [0xfb05, 0xfb06],
]);

/**
 * Returns the Aho–Corasick alphabet symbol of a code point: characters that
 * a case-insensitive Unicode regular expression (flags "iu", simple case
 * folding) treats as equal get the same symbol. Some unequal characters also
 * share one (dotless ı and i), which only makes the prefilter find more.
 */
function foldUncached(codePoint: number): number {
  const paired = FOLD_PAIRS.get(codePoint);
  if (paired !== undefined) return paired;
  const char = String.fromCodePoint(codePoint);
  const upper = char.toUpperCase();
  if (upper.length === 1 || (upper.length === 2 && upper.codePointAt(0)! > 0xffff)) {
    const lower = upper.toLowerCase();
    const single = lower.length === 1 || (lower.length === 2 && lower.codePointAt(0)! > 0xffff);
    return single ? lower.codePointAt(0)! : upper.codePointAt(0)!;
  }
  // Characters whose upper case is longer (ß to SS) fold through their lower case alone.
  const lower = char.toLowerCase();
  const single = lower.length === 1 || (lower.length === 2 && lower.codePointAt(0)! > 0xffff);
  return single ? lower.codePointAt(0)! : codePoint;
}

/** Fold symbols of the Basic Multilingual Plane, filled on first use; -1 is not yet computed. */
const BMP_FOLD = new Int32Array(0x10000).fill(-1);

export function foldCodePoint(codePoint: number): number {
  if (codePoint < 0x10000) {
    let folded = BMP_FOLD[codePoint];
    if (folded < 0) folded = BMP_FOLD[codePoint] = foldUncached(codePoint);
    return folded;
  }
  return foldUncached(codePoint);
}

/**
 * An Aho–Corasick automaton over folded code points. The trie is stored as
 * first-child and next-sibling arrays, because a cohort of thousands of
 * patients gives about a million nodes and a Map per node would cost
 * hundreds of megabytes.
 */
class TermAutomaton {
  private readonly firstChild: number[] = [-1];
  private readonly nextSibling: number[] = [-1];
  private readonly symbol: number[] = [-1];
  private readonly failure: number[] = [0];
  /** The nearest node on the failure chain (excluding the node itself) that ends a term, or -1. */
  private readonly outputLink: number[] = [-1];
  /** Indexes of the terms that end at a node. */
  private readonly endsHere = new Map<number, number[]>();
  private readonly rootChildren = new Map<number, number>();

  constructor(keys: readonly number[][]) {
    keys.forEach((key, index) => this.insert(key, index));
    this.linkFailures();
  }

  private child(node: number, symbol: number): number {
    if (node === 0) return this.rootChildren.get(symbol) ?? -1;
    for (let child = this.firstChild[node]; child !== -1; child = this.nextSibling[child]) {
      if (this.symbol[child] === symbol) return child;
    }
    return -1;
  }

  private insert(key: readonly number[], index: number): void {
    let node = 0;
    for (const symbol of key) {
      let next = this.child(node, symbol);
      if (next === -1) {
        next = this.symbol.length;
        this.symbol.push(symbol);
        this.firstChild.push(-1);
        this.nextSibling.push(this.firstChild[node]);
        this.failure.push(0);
        this.outputLink.push(-1);
        this.firstChild[node] = next;
        if (node === 0) this.rootChildren.set(symbol, next);
      }
      node = next;
    }
    const list = this.endsHere.get(node);
    if (list) list.push(index);
    else this.endsHere.set(node, [index]);
  }

  /** Sets failure and output links breadth first, so that every shorter node is done before a longer one. */
  private linkFailures(): void {
    const queue: number[] = [];
    for (let child = this.firstChild[0]; child !== -1; child = this.nextSibling[child]) queue.push(child);
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head];
      for (let child = this.firstChild[node]; child !== -1; child = this.nextSibling[child]) {
        const symbol = this.symbol[child];
        let fallback = this.failure[node];
        let target = this.child(fallback, symbol);
        while (target === -1 && fallback !== 0) {
          fallback = this.failure[fallback];
          target = this.child(fallback, symbol);
        }
        const failure = target === -1 || target === child ? 0 : target;
        this.failure[child] = failure;
        this.outputLink[child] = this.endsHere.has(failure) ? failure : this.outputLink[failure];
        queue.push(child);
      }
    }
  }

  /**
   * Returns every occurrence of a folded term in `text` as flat triples
   * [term index, start, end], with offsets in UTF-16 code units.
   */
  findAll(text: string, keyLengths: readonly number[]): number[] {
    const hits: number[] = [];
    /** Code unit offset of each code point read so far. */
    const starts: number[] = [];
    let node = 0;
    for (let index = 0; index < text.length; index++) {
      starts.push(index);
      let codePoint = text.charCodeAt(index);
      if (codePoint >= 0xd800 && codePoint <= 0xdbff && index + 1 < text.length) {
        const low = text.charCodeAt(index + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          codePoint = (codePoint - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
          index++;
        }
      }
      const symbol = foldCodePoint(codePoint);
      let next = this.child(node, symbol);
      while (next === -1 && node !== 0) {
        node = this.failure[node];
        next = this.child(node, symbol);
      }
      node = next === -1 ? 0 : next;
      let output = this.endsHere.has(node) ? node : this.outputLink[node];
      while (output !== -1) {
        for (const term of this.endsHere.get(output)!) {
          hits.push(term, starts[starts.length - keyLengths[term]], index + 1);
        }
        output = this.outputLink[output];
      }
    }
    return hits;
  }
}

function foldKey(text: string): number[] {
  const key: number[] = [];
  for (const char of text) key.push(foldCodePoint(char.codePointAt(0)!));
  return key;
}

/**
 * Builds the alternation of `texts`, already longest first: terms in
 * Chinese, Japanese and Korean match anywhere, because those scripts have no
 * spaces between words, and the others only as whole words.
 */
function buildPattern(texts: readonly string[]): RegExp | undefined {
  const bounded = texts.filter((text) => !hasCjk(text)).map(escapeRegExp);
  const unbounded = texts.filter(hasCjk).map(escapeRegExp);
  const alternatives: string[] = [];
  if (unbounded.length) alternatives.push(`(?:${unbounded.join("|")})`);
  if (bounded.length) alternatives.push(`${BEFORE}(?:${bounded.join("|")})${AFTER}`);
  return alternatives.length ? new RegExp(alternatives.join("|"), "giu") : undefined;
}

const WORD_CHAR = /[\p{L}\p{N}]/u;
const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** True when the code point that ends at `offset` is a letter or a digit. */
function wordCharBefore(text: string, offset: number): boolean {
  if (offset <= 0) return false;
  const code = text.charCodeAt(offset - 1);
  if (code < 0x80) return isAsciiWordChar(code);
  const start = code >= 0xdc00 && code <= 0xdfff && offset >= 2 ? offset - 2 : offset - 1;
  return WORD_CHAR.test(String.fromCodePoint(text.codePointAt(start)!));
}

/** True when the code point that starts at `offset` is a letter or a digit. */
function wordCharAt(text: string, offset: number): boolean {
  if (offset >= text.length) return false;
  const code = text.charCodeAt(offset);
  if (code < 0x80) return isAsciiWordChar(code);
  return WORD_CHAR.test(String.fromCodePoint(text.codePointAt(offset)!));
}

function isAsciiDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isAsciiWordChar(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}

export class TextCleaner {
  /** Term texts in the order of the alternation: Chinese, Japanese and Korean terms first, each group longest first. */
  private readonly ordered: string[];
  private readonly unbounded: boolean[];
  private readonly keyLengths: number[];
  private readonly byText: Map<string, Term>;
  /** Undefined when some term folds to an empty key, which the automaton cannot find; then the whole alternation is used. */
  private readonly automaton: TermAutomaton | undefined;
  private readonly fullPattern: RegExp | undefined;
  /** Sticky case-insensitive patterns of single terms, built for occurrences that are not plain ASCII. */
  private readonly exact = new Map<number, RegExp>();

  constructor(
    terms: readonly Term[],
    private readonly mapUid: (uid: string) => string,
  ) {
    this.byText = new Map(terms.map((term) => [term.text.toLowerCase(), term]));
    const sorted = [...this.byText.values()].map((term) => term.text).sort((a, b) => b.length - a.length);
    this.ordered = [...sorted.filter(hasCjk), ...sorted.filter((text) => !hasCjk(text))];
    this.unbounded = this.ordered.map(hasCjk);
    const keys = this.ordered.map(foldKey);
    this.keyLengths = keys.map((key) => key.length);
    if (keys.every((key) => key.length > 0)) {
      this.automaton = new TermAutomaton(keys);
    } else {
      this.fullPattern = buildPattern(sorted);
    }
  }

  get size(): number {
    return this.byText.size;
  }

  /**
   * Returns the end of the match of term `index` at `start`, or -1: the
   * term must equal the text there under the regular expression's
   * case-insensitive rules and, unless unbounded, stand as a whole word.
   */
  private matchAt(text: string, index: number, start: number, foldedEnd: number): number {
    let end = foldedEnd;
    const term = this.ordered[index];
    const segment = text.slice(start, foldedEnd);
    // For ASCII, equal folded forms are equal case-insensitively; other
    // characters fold more widely (dotless ı to i) and are checked exactly.
    if (!ASCII_ONLY.test(segment) || !ASCII_ONLY.test(term)) {
      let pattern = this.exact.get(index);
      if (!pattern) {
        pattern = new RegExp(escapeRegExp(term), "iuy");
        this.exact.set(index, pattern);
      }
      pattern.lastIndex = start;
      const match = pattern.exec(text);
      if (!match) return -1;
      end = start + match[0].length;
    }
    if (!this.unbounded[index] && (wordCharBefore(text, start) || (wordCharAt(text, end) && !this.timeFollowsDate(index, text, end)))) {
      return -1;
    }
    return end;
  }

  /** True when term `index` is a date and an ISO 8601 time ("T10:15") follows it, as in 2019-04-18T10:15:00. */
  private timeFollowsDate(index: number, text: string, end: number): boolean {
    const category = this.byText.get(this.ordered[index].toLowerCase())?.category;
    if (category !== "date" && category !== "birth-date") return false;
    return (text[end] === "T" || text[end] === "t") && end + 1 < text.length && isAsciiDigit(text.charCodeAt(end + 1));
  }

  /**
   * Calls `onMatch` for each match that the alternation of all terms would
   * find in a global search, left to right, and returns their count.
   */
  private scan(text: string, onMatch: (start: number, end: number) => void, firstOnly = false): number {
    const hits = this.automaton!.findAll(text, this.keyLengths);
    if (hits.length === 0) return 0;
    const order: number[] = [];
    for (let hit = 0; hit < hits.length; hit += 3) order.push(hit);
    // Leftmost first, then in the order of the alternatives.
    order.sort((a, b) => hits[a + 1] - hits[b + 1] || hits[a] - hits[b]);
    let next = 0;
    let count = 0;
    for (const hit of order) {
      const start = hits[hit + 1];
      if (start < next) continue;
      const end = this.matchAt(text, hits[hit], start, hits[hit + 2]);
      if (end < 0) continue;
      onMatch(start, end);
      count++;
      if (firstOnly) break;
      next = end;
    }
    return count;
  }

  /** Returns `text` with every known identifier and every non-standard UID replaced. */
  clean(text: string): CleanResult {
    const replaced: CleanResult["replaced"] = {};
    const replaceMatch = (match: string): string => {
      const term = this.byText.get(match.toLowerCase());
      if (!term) return match;
      replaced[term.category] = (replaced[term.category] ?? 0) + 1;
      return term.replacement;
    };
    let out = text;
    if (this.automaton) {
      const pieces: string[] = [];
      let copied = 0;
      this.scan(text, (start, end) => {
        pieces.push(text.slice(copied, start), replaceMatch(text.slice(start, end)));
        copied = end;
      });
      if (pieces.length) out = pieces.join("") + text.slice(copied);
    } else if (this.fullPattern) {
      out = out.replace(this.fullPattern, replaceMatch);
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
    if (this.automaton) return this.scan(text, () => {}, true) > 0;
    if (!this.fullPattern) return false;
    this.fullPattern.lastIndex = 0;
    const found = this.fullPattern.test(text);
    this.fullPattern.lastIndex = 0;
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
