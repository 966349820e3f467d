/**
 * Sheet names and formulas. A sheet whose name contains an identifier gets
 * a cleaned name, and every formula that refers to it is rewritten to
 * match. String literals in formulas are cleaned. Any other identifier in
 * a formula (a defined name, a number that is a patient ID) cannot be
 * changed without changing what the formula computes, so the workbook is
 * left out.
 */
import { QuarantineReason } from "../../deid/apply.js";
import type { Scrubber } from "./scrub.js";

/** Excel's limit on the length of a sheet name, in UTF-16 code units. */
const MAX_SHEET_NAME_LENGTH = 31;

/**
 * Makes a cleaned sheet name valid for Excel: no : \ / ? * [ ], no
 * apostrophe at either end, 1 to 31 characters. Placeholders such as
 * "[NAME]" become "(NAME)".
 */
export function sanitizeSheetName(name: string): string {
  let out = name.replace(/\[/g, "(").replace(/\]/g, ")").replace(/[:\\/?*\u0000-\u001f]/g, "_");
  out = out.replace(/^'/, "_").replace(/'$/, "_");
  if (!out.trim()) out = "Sheet";
  if (out.length > MAX_SHEET_NAME_LENGTH) {
    out = out.slice(0, MAX_SHEET_NAME_LENGTH);
    // Do not leave half of a surrogate pair at the end.
    if (/[\uD800-\uDBFF]$/.test(out)) out = out.slice(0, -1);
  }
  return out;
}

/** The sheet names of one workbook, before and after cleaning. */
export class SheetNames {
  /** New name by the lower-case original; Excel compares sheet names without regard to case. */
  private readonly renamed = new Map<string, string>();

  constructor(
    originals: readonly string[],
    private readonly scrubber: Scrubber,
  ) {
    const usedNames = new Set(originals.map((name) => name.toLowerCase()));
    for (const original of originals) {
      const cleaned = scrubber.clean(original);
      if (cleaned === original) continue;
      let candidate = sanitizeSheetName(cleaned);
      for (let suffix = 2; usedNames.has(candidate.toLowerCase()) || candidate.toLowerCase() === "history"; suffix++) {
        const tail = ` (${suffix})`;
        candidate = sanitizeSheetName(cleaned).slice(0, MAX_SHEET_NAME_LENGTH - tail.length) + tail;
      }
      usedNames.add(candidate.toLowerCase());
      this.renamed.set(original.toLowerCase(), candidate);
    }
  }

  /** Returns the output name of a sheet of this workbook. */
  rename(name: string): string {
    return this.renamed.get(name.toLowerCase()) ?? name;
  }

  /** Returns the output name of a sheet that is not in this workbook (of an external workbook, or deleted). */
  renameOther(name: string): string {
    const known = this.renamed.get(name.toLowerCase());
    if (known) return known;
    const cleaned = this.scrubber.clean(name);
    return cleaned === name ? name : sanitizeSheetName(cleaned);
  }

  get changed(): boolean {
    return this.renamed.size > 0;
  }
}

function identifierInFormula(): QuarantineReason {
  return new QuarantineReason(
    "XLSX_IDENTIFIER_IN_STRUCTURE",
    "a formula contains a known identifier outside a string literal, which deidkit cannot replace without changing the formula",
  );
}

/** Characters of an unquoted sheet name in a formula (letters, digits, "_", "." and non-ASCII). */
const NAME_CHARACTER = /[A-Za-z0-9_.\\\u00A0-\uFFFF]/;

/** True when a sheet name can be written unquoted: a name that is not also a cell reference or a boolean. */
function isBareSheetName(name: string): boolean {
  if (!/^[A-Za-z_\u00A0-\uFFFF][A-Za-z0-9_.\u00A0-\uFFFF]*$/.test(name)) return false;
  if (/^[A-Za-z]{1,3}[0-9]+$/.test(name) || /^R[0-9]*C[0-9]*$/i.test(name)) return false;
  return !/^(TRUE|FALSE)$/i.test(name);
}

function quoteSheetReference(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** Rewrites formulas: the text of `<f>`, defined names, validation and chart references. */
export class FormulaRewriter {
  constructor(
    private readonly scrubber: Scrubber,
    private readonly sheets: SheetNames,
  ) {}

  rewrite(formula: string): string {
    let out = "";
    let bare = "";
    const flushBare = (): void => {
      out += this.cleanBare(bare);
      bare = "";
    };
    let index = 0;
    while (index < formula.length) {
      const character = formula[index];
      if (character === '"') {
        const end = closingQuote(formula, index, '"');
        flushBare();
        const content = formula.slice(index + 1, end).replace(/""/g, '"');
        out += `"${this.scrubber.clean(content).replace(/"/g, '""')}"`;
        index = end + 1;
      } else if (character === "'") {
        const end = closingQuote(formula, index, "'");
        if (formula[end + 1] === "!") {
          flushBare();
          const content = formula.slice(index + 1, end).replace(/''/g, "'");
          out += this.sheetReference(content, formula.slice(index, end + 1));
          index = end + 1;
        } else {
          bare += formula.slice(index, end + 1);
          index = end + 1;
        }
      } else if (character === "[") {
        const end = closingBracket(formula, index);
        const bracket = formula.slice(index, end + 1);
        const name = /^\[\d+\]/.test(bracket) ? readName(formula, end + 1) : "";
        if (name && formula[end + 1 + name.length] === "!") {
          flushBare();
          out += this.sheetReference(bracket + name, bracket + name);
          index = end + 1 + name.length;
        } else {
          bare += bracket;
          index = end + 1;
        }
      } else if (NAME_CHARACTER.test(character) && !NAME_CHARACTER.test(formula[index - 1] ?? "")) {
        const name = readName(formula, index);
        if (formula[index + name.length] === "!") {
          flushBare();
          out += this.sheetReference(name, name);
        } else {
          bare += name;
        }
        index += name.length;
      } else {
        bare += character;
        index++;
      }
    }
    flushBare();
    return out;
  }

  /**
   * Renames the sheet part of a reference ("Sheet1", "Sheet1:Sheet3",
   * "[1]Sheet1"). `raw` is the reference as written, returned when no name changes.
   */
  private sheetReference(content: string, raw: string): string {
    const external = /^\[\d+\]/.exec(content)?.[0] ?? "";
    const names = content.slice(external.length).split(":");
    const renamed = names.map((name) => (external ? this.sheets.renameOther(name) : this.sheets.rename(name)));
    if (renamed.every((name, index) => name === names[index])) return raw;
    const text = external + renamed.join(":");
    const bare = !raw.startsWith("'") && renamed.every(isBareSheetName);
    return bare ? text : quoteSheetReference(text);
  }

  /** Formula text outside strings and sheet names: cell references, functions, numbers, defined names. */
  private cleanBare(text: string): string {
    if (!text) return text;
    const preview = this.scrubber.preview(text);
    if (preview.text === text) return text;
    // A date written as a number (20190316) may be replaced by its shifted form, which is still a number.
    if (preview.text.replace(/\d+/g, "0") !== text.replace(/\d+/g, "0")) throw identifierInFormula();
    this.scrubber.replacements += preview.count;
    return preview.text;
  }
}

function closingQuote(formula: string, start: number, quote: string): number {
  let index = start + 1;
  for (;;) {
    const end = formula.indexOf(quote, index);
    if (end < 0) throw new QuarantineReason("XLSX_INVALID", "a formula in the workbook has an unterminated string or sheet name");
    if (formula[end + 1] === quote) {
      index = end + 2;
      continue;
    }
    return end;
  }
}

/** Returns the index of the bracket that closes the one at `start`. Structured references nest brackets and escape with an apostrophe. */
function closingBracket(formula: string, start: number): number {
  let depth = 0;
  for (let index = start; index < formula.length; index++) {
    const character = formula[index];
    if (character === "'") {
      index++;
    } else if (character === "[") {
      depth++;
    } else if (character === "]") {
      depth--;
      if (depth === 0) return index;
    }
  }
  throw new QuarantineReason("XLSX_INVALID", "a formula in the workbook has an unterminated bracket");
}

/** Reads an unquoted name, including a 3-D range of names ("Sheet1:Sheet3") when "!" follows it. */
function readName(formula: string, start: number): string {
  let end = start;
  while (end < formula.length && NAME_CHARACTER.test(formula[end])) end++;
  if (formula[end] === ":") {
    let second = end + 1;
    while (second < formula.length && NAME_CHARACTER.test(formula[second])) second++;
    if (second > end + 1 && formula[second] === "!") end = second;
  }
  return formula.slice(start, end);
}
