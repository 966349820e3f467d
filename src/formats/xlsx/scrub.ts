/**
 * Text cleaning for workbook parts: the run's TextCleaner, then the names
 * the workbook itself gives as authors (comment authors, people of threaded
 * comments, document creator), which are replaced even when the first pass
 * did not learn them. Counts every replacement for the report.
 */
import { QuarantineReason } from "../../deid/apply.js";
import { TextCleaner } from "../../deid/cleaner.js";
import { MIN_TERM_LENGTH, nameForms, PLACEHOLDER, type Term } from "../../deid/identifiers.js";
import { localName, textToken, tokenText, withAttributes, type XmlOpenToken, type XmlToken } from "./xml.js";

/**
 * Cleaned texts kept for reuse. Sheets repeat values (a reviewer, a
 * diagnosis, a plan name in every row), and each call to the run's
 * cleaner costs time that grows with the number of known identifiers.
 */
const MAX_CACHED_TEXTS = 65_536;
const MAX_CACHED_LENGTH = 256;

export class Scrubber {
  replacements = 0;
  private readonly authors: TextCleaner | undefined;
  private readonly cache = new Map<string, { text: string; count: number }>();

  constructor(
    private readonly cleaner: TextCleaner,
    authorNames: readonly string[] = [],
  ) {
    const terms: Term[] = [];
    // Whole names only: a default author such as "Microsoft Office User" must not turn every "Office" into a placeholder.
    for (const name of authorNames) {
      for (const text of new Set([name, ...nameForms(name).full])) {
        if (text.length >= MIN_TERM_LENGTH) terms.push({ text, category: "staff-name", replacement: PLACEHOLDER["staff-name"] });
      }
    }
    // The author cleaner leaves UIDs as they are: the run's cleaner has already mapped them.
    this.authors = terms.length ? new TextCleaner(terms, (uid) => uid) : undefined;
  }

  /** Returns `text` with every known identifier replaced, without counting. */
  preview(text: string): { text: string; count: number } {
    if (text.length < MIN_TERM_LENGTH) return { text, count: 0 };
    const cached = this.cache.get(text);
    if (cached) return cached;
    const result = this.previewUncached(text);
    if (this.cache.size >= MAX_CACHED_TEXTS) this.cache.clear();
    if (text.length <= MAX_CACHED_LENGTH) this.cache.set(text, result);
    return result;
  }

  private previewUncached(text: string): { text: string; count: number } {
    const first = this.cleaner.clean(text);
    let count = sum(first.replaced);
    let out = first.text;
    if (this.authors) {
      const second = this.authors.clean(out);
      count += second.replaced["staff-name"] ?? 0;
      out = second.text;
    }
    return { text: out, count };
  }

  /** Returns `text` with every known identifier replaced and counts the replacements. */
  clean(text: string): string {
    if (!text) return text;
    const result = this.preview(text);
    this.replacements += result.count;
    return result.text;
  }

  /**
   * Checks a value that deidkit copies without rewriting (a style name, a
   * shape's position): if it contains a known identifier, the workbook is
   * quarantined, because the value cannot be changed without breaking it.
   * Plain numbers are layout values here (widths, offsets, indices), so a
   * short numeric ID that equals one does not quarantine the workbook.
   */
  checkOpaque(value: string): void {
    if (value.length < MIN_TERM_LENGTH || /^-?\d+(\.\d+)?$/.test(value)) return;
    const result = this.preview(value);
    if (result.count > 0 && result.text !== value) {
      throw new QuarantineReason(
        "XLSX_IDENTIFIER_IN_STRUCTURE",
        "a known identifier appears in a structural value of the workbook (a name, reference or layout value) that deidkit cannot rewrite",
      );
    }
  }
}

function sum(counts: Partial<Record<string, number>>): number {
  let total = 0;
  for (const count of Object.values(counts)) total += count ?? 0;
  return total;
}

/** Adds xml:space="preserve" to a <t> start tag when its new text starts or ends with white space. */
function preserveSpace(open: XmlOpenToken, text: string): XmlOpenToken {
  if (!/^\s|\s$/.test(text) || open.attributes.some((item) => item.name === "xml:space")) return open;
  return withAttributes(open, [...open.attributes, { name: "xml:space", value: "preserve" }]);
}

/** Returns the plain text of a rich text container (<si>, <is>, <text>, <a:p>): its <t> elements outside phonetic runs. */
export function richPlainText(tokens: readonly XmlToken[]): string {
  return textSegments(tokens).map((segment) => tokenText(tokens[segment.index])).join("");
}

interface Segment {
  /** Index of the text token. */
  index: number;
  /** Index of the enclosing <t> start tag. */
  open: number;
  phonetic: boolean;
}

function textSegments(tokens: readonly XmlToken[]): Segment[] {
  const segments: Segment[] = [];
  const stack: Array<{ local: string; index: number }> = [];
  let phoneticDepth = 0;
  tokens.forEach((token, index) => {
    if (token.kind === "open") {
      const local = localName(token.name);
      if (!token.selfClosing) {
        stack.push({ local, index });
        if (local === "rPh") phoneticDepth++;
      }
    } else if (token.kind === "close") {
      if (stack.pop()?.local === "rPh") phoneticDepth--;
    } else if ((token.kind === "text" || token.kind === "cdata") && stack.at(-1)?.local === "t") {
      segments.push({ index, open: stack.at(-1)!.index, phonetic: phoneticDepth > 0 });
    }
  });
  return segments;
}

/**
 * Cleans the runs of a rich text container. When an identifier lies across
 * two runs ("DOE" in bold, "^JANE" plain), cleaning run by run would miss
 * it. The container is then cleaned as a whole and its text put in the
 * first run, whose formatting then applies to all of it.
 * Text nodes that are not run text are checked as opaque values.
 */
export function cleanRichText(tokens: XmlToken[], scrubber: Scrubber): XmlToken[] {
  const out = [...tokens];
  const segments = textSegments(tokens);
  const inSegment = new Set(segments.map((segment) => segment.index));
  tokens.forEach((token, index) => {
    if ((token.kind === "text" || token.kind === "cdata") && !inSegment.has(index)) scrubber.checkOpaque(tokenText(token));
  });
  const replace = (segment: Segment, text: string): void => {
    out[segment.index] = textToken(text);
    const open = out[segment.open];
    if (open.kind === "open") out[segment.open] = preserveSpace(open, text);
  };
  for (const segment of segments.filter((item) => item.phonetic)) {
    const text = tokenText(tokens[segment.index]);
    const cleaned = scrubber.clean(text);
    if (cleaned !== text) replace(segment, cleaned);
  }
  const runs = segments.filter((item) => !item.phonetic);
  if (!runs.length) return out;
  const texts = runs.map((segment) => tokenText(tokens[segment.index]));
  const whole = scrubber.preview(texts.join(""));
  if (whole.text === texts.join("")) return out;
  const parts = texts.map((text) => scrubber.preview(text));
  if (parts.map((part) => part.text).join("") === whole.text) {
    runs.forEach((segment, index) => {
      if (parts[index].text !== texts[index]) replace(segment, parts[index].text);
    });
    scrubber.replacements += parts.reduce((total, part) => total + part.count, 0);
    return out;
  }
  runs.forEach((segment, index) => replace(segment, index === 0 ? whole.text : ""));
  scrubber.replacements += whole.count;
  return out;
}
