/**
 * Worksheets and chart sheets. Rows are read one at a time, so a sheet of
 * any length needs memory for one row only. The header row is the first
 * row, among the first MAX_HEADER_ROWS, with a header that classifyField
 * recognises as an identifier field. The cells below it are rewritten by
 * the rules of their column's field class, as CSV and JSON values are.
 * Every other value goes through the text cleaner, and numbers in cells
 * with a date number format are shifted like the dates of a date column.
 */
import { shiftDate } from "../../deid/dates.js";
import { PLACEHOLDER, type IdentifierRegistry, type Patient } from "../../deid/identifiers.js";
import { isEmptyValue, learnFieldValue, learnPatientId, patientForId, rewriteFieldValue, type FieldRewriteContext } from "../field-rules.js";
import { classifyField, isDateText, replaceDateValue, type FieldClass } from "../fields.js";
import {
  canonicalNumber,
  cellValue,
  child,
  childText,
  emptyCell,
  isNumberType,
  isStringType,
  numberCell,
  parseRow,
  serializeCell,
  stringCell,
  type Cell,
  type Row,
} from "./cells.js";
import { compactDate, serialToDate, shiftSerial, toIsoDate } from "./dates.js";
import { cleanRichText } from "./scrub.js";
import type { SharedStringTable, SharedStringUsage } from "./shared-strings.js";
import { LimitError } from "../../errors.js";
import { MAX_BUFFERED_CHARACTERS, PartTransform, type AttributeAction, type PartEnvironment } from "./transform.js";
import { localName, textToken, tokenText, type XmlToken } from "./xml.js";

/** Rows searched for a header row; a sheet whose header is further down is cleaned as text only. */
export const MAX_HEADER_ROWS = 20;
/** Characters of the rows held while the header row is searched; the search ends early when they are more. */
export const MAX_HEADER_SEARCH_CHARACTERS = 16 * 1024 * 1024;

export interface SheetSettings {
  strings: SharedStringTable;
  /** Indices into cellXfs whose number format shows a date. */
  dateStyles: ReadonlySet<number>;
  date1904: boolean;
}

/** A row released by the header search, with the field class of each column (undefined above and at the header row). */
export interface ClassifiedRow {
  row: Row;
  classes: ReadonlyMap<number, FieldClass> | undefined;
}

/**
 * Finds the header row: among the first MAX_HEADER_ROWS rows, the one with
 * the most text cells that classifyField recognises, the first of them on
 * a tie. A title above the table ("Review date: 2019-04-12") recognises
 * one field at most, so the table's own header row wins over it. Rows are
 * held until the header row is known, then released in order.
 */
export class ColumnTracker {
  private classes: Map<number, FieldClass> | undefined;
  private decided = false;
  private pending: Array<{ row: Row; classes: Map<number, FieldClass>; characters: number }> = [];
  private pendingCharacters = 0;

  constructor(private readonly strings: SharedStringTable) {}

  /** Adds the next row of the sheet and returns the rows now released. */
  push(row: Row, characters: number): ClassifiedRow[] {
    if (this.decided) return [{ row, classes: this.classes }];
    this.pending.push({ row, classes: this.classify(row), characters });
    this.pendingCharacters += characters;
    if (this.pending.length < MAX_HEADER_ROWS && this.pendingCharacters <= MAX_HEADER_SEARCH_CHARACTERS) return [];
    return this.finish();
  }

  /** Decides the header row with the rows seen so far and releases every held row. */
  finish(): ClassifiedRow[] {
    if (this.decided) return [];
    this.decided = true;
    let header = -1;
    this.pending.forEach((item, index) => {
      if (item.classes.size > (header < 0 ? 0 : this.pending[header].classes.size)) header = index;
    });
    if (header >= 0) this.classes = this.pending[header].classes;
    const released = this.pending.map((item, index) => ({ row: item.row, classes: index > header && header >= 0 ? this.classes : undefined }));
    this.pending = [];
    return released;
  }

  private classify(row: Row): Map<number, FieldClass> {
    const classes = new Map<number, FieldClass>();
    for (const cell of row.cells) {
      if (!isStringType(cell)) continue;
      const fieldClass = classifyField(cellValue(cell, this.strings) ?? "");
      if (fieldClass !== "none") classes.set(cell.column, fieldClass);
    }
    return classes;
  }
}

function tokensLength(tokens: readonly XmlToken[]): number {
  return tokens.reduce((total, token) => total + token.raw.length, 0);
}

/** Returns the text of a cell as a field value, with numbers in exponent form written out and surrounding space removed. */
function fieldText(cell: Cell, strings: SharedStringTable): string {
  const value = (cellValue(cell, strings) ?? "").trim();
  return isNumberType(cell) ? canonicalNumber(value) : value;
}

function patientIdCell(row: Row, classes: ReadonlyMap<number, FieldClass>): Cell | undefined {
  return row.cells.find((cell) => classes.get(cell.column) === "patient-id");
}

/** Returns the text that a date field learns from a number: a YYYYMMDD number as it is, a serial date as YYYY-MM-DD. */
function numericDateText(value: string, date1904: boolean): string {
  if (compactDate(value)) return value;
  const date = serialToDate(Number(value), date1904);
  return date ? toIsoDate(date) : value;
}

const NUMBER = /^-?\d+(\.\d+)?(E[+-]?\d+)?$/i;

/** Attribute rules for the parts of a sheet outside its rows. */
const SHEET_ATTRIBUTES: Readonly<Record<string, Readonly<Record<string, AttributeAction>>>> = {
  hyperlink: { display: "clean", tooltip: "clean", location: "formula", ref: "keep" },
  dataValidation: { promptTitle: "clean", prompt: "clean", errorTitle: "clean", error: "clean", sqref: "keep" },
  cfRule: { text: "clean" },
  filter: { val: "clean" },
  customFilter: { val: "clean" },
  row: { r: "keep", spans: "keep" },
};

const FORMULA_ELEMENTS = new Set(["f", "formula", "formula1", "formula2"]);
const HEADER_FOOTER_ELEMENTS = new Set(["oddHeader", "oddFooter", "evenHeader", "evenFooter", "firstHeader", "firstFooter"]);

export interface SheetContext extends FieldRewriteContext {
  /** The patient of the file's folder, for rows without a patient ID. */
  patient: Patient | undefined;
}

/** Rewrites a worksheet or chart sheet part. */
export class SheetTransform extends PartTransform {
  private readonly columns: ColumnTracker;

  constructor(
    env: PartEnvironment,
    private readonly settings: SheetSettings,
    private readonly context: SheetContext,
    private readonly usage: SharedStringUsage,
  ) {
    super(env);
    this.columns = new ColumnTracker(settings.strings);
  }

  protected override bufferElement(local: string): boolean {
    return local === "row" && this.stack.at(-1) === "sheetData";
  }

  protected override dropElement(local: string): boolean {
    // An AutoFilter criterion on a date (year, month, day attributes); the filter stays, without it.
    return local === "dateGroupItem";
  }

  protected override attributeAction(element: string, attribute: string): AttributeAction {
    return SHEET_ATTRIBUTES[element]?.[attribute] ?? "opaque";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (FORMULA_ELEMENTS.has(parent)) {
      const rewritten = this.env.formulas.rewrite(text);
      return rewritten === text ? token.raw : textToken(rewritten).raw;
    }
    if (HEADER_FOOTER_ELEMENTS.has(parent)) {
      const cleaned = this.env.scrubber.clean(text);
      return cleaned === text ? token.raw : textToken(cleaned).raw;
    }
    return super.text(text, token, parent);
  }

  protected override element(tokens: XmlToken[]): string {
    return this.columns
      .push(parseRow(tokens), tokensLength(tokens))
      .map((item) => this.rewriteRow(item))
      .join("");
  }

  protected override closeTag(token: XmlToken): string {
    if (token.kind !== "close" || localName(token.name) !== "sheetData") return token.raw;
    return this.columns.finish().map((item) => this.rewriteRow(item)).join("") + token.raw;
  }

  private rewriteRow({ row, classes }: ClassifiedRow): string {
    const patient = this.rowPatient(row, classes);
    let out = "";
    for (const item of row.items) {
      if ("column" in item) {
        out += this.rewriteCell(item, classes?.get(item.column) ?? "none", patient);
      } else if (item.kind === "open") {
        out += this.openTag(item).raw;
      } else {
        out += item.kind === "close" ? item.raw : this.text(tokenText(item), item, "row");
      }
    }
    return out;
  }

  private rowPatient(row: Row, classes: ReadonlyMap<number, FieldClass> | undefined): Patient | undefined {
    const idCell = classes && patientIdCell(row, classes);
    const id = idCell ? fieldText(idCell, this.settings.strings) : "";
    return id && !isEmptyValue(id) ? patientForId(this.context, id) : this.context.patient;
  }

  private count(replaced: number): void {
    this.env.scrubber.replacements += replaced;
  }

  private shiftDays(patient: Patient | undefined): number | undefined {
    return this.context.shiftDates && patient ? patient.shiftDays : undefined;
  }

  private rewriteCell(cell: Cell, fieldClass: FieldClass, patient: Patient | undefined): string {
    const tokens = [...cell.tokens];
    const formula = childText(cell, "f");
    if (formula?.index !== undefined) {
      const rewritten = this.env.formulas.rewrite(formula.text);
      if (rewritten !== formula.text) tokens[formula.index] = textToken(rewritten);
    }
    const value = cellValue(cell, this.settings.strings);
    const index = cell.type === "s" ? Number(childText(cell, "v")?.text) : undefined;
    if (value === undefined || !value.trim() || cell.type === "b" || cell.type === "e") return this.cleanCell(cell, tokens, value ?? "");
    if (isNumberType(cell)) return this.numberCell(cell, tokens, value, fieldClass, patient);
    if (cell.type === "d") return this.isoDateCell(cell, tokens, value, patient);
    // A text value that is a date as a whole is a date, whatever its column.
    const effectiveClass = fieldClass === "none" && isDateText(value) ? "date" : fieldClass;
    const result = effectiveClass === "none" ? undefined : rewriteFieldValue(effectiveClass, value, patient, this.context);
    if (!result || result.text === value) {
      // The cell keeps its shared string, so the table must keep a cleaned copy of it.
      if (index !== undefined) this.usage.markKept(index, effectiveClass);
      return this.cleanCell(cell, tokens, value);
    }
    if (index !== undefined) this.usage.markReplaced(index, effectiveClass);
    this.count(result.replaced);
    return stringCell(cell, tokens, result.text);
  }

  /**
   * Rewrites a numeric cell. In an identifier column the number is rewritten by the
   * column's rules: an ID becomes its pseudonym as text, a date is shifted
   * (a YYYYMMDD number or a serial date) or becomes "[DATE]". Outside
   * identifier columns a number in a date format is a serial date, and any
   * other number is cleaned as text.
   */
  private numberCell(cell: Cell, tokens: XmlToken[], value: string, fieldClass: FieldClass, patient: Patient | undefined): string {
    const text = canonicalNumber(value.trim());
    const isDate = fieldClass === "date" || fieldClass === "birth-date" || (fieldClass === "none" && this.settings.dateStyles.has(cell.style));
    if (isDate) {
      this.count(1);
      const days = fieldClass === "birth-date" ? undefined : this.shiftDays(patient);
      if (days === undefined) return stringCell(cell, tokens, PLACEHOLDER.date);
      const compact = compactDate(text);
      if (compact) return numberCell(cell, tokens, toCompact(shiftDate(compact, days)));
      const shifted = shiftSerial(text, days);
      return shifted !== undefined && Number(shifted) >= 1 ? numberCell(cell, tokens, shifted) : stringCell(cell, tokens, PLACEHOLDER.date);
    }
    if (fieldClass === "none") return this.cleanCell(cell, tokens, text);
    if (isEmptyValue(text)) return serializeCell(tokens);
    const result = rewriteFieldValue(fieldClass, text, patient, this.context);
    if (result.text === text) return serializeCell(tokens);
    this.count(result.replaced);
    return NUMBER.test(result.text) ? numberCell(cell, tokens, result.text) : stringCell(cell, tokens, result.text);
  }

  /** Rewrites a cell of type "d" (an ISO 8601 date and time): the date is shifted or replaced by "[DATE]". */
  private isoDateCell(cell: Cell, tokens: XmlToken[], value: string, patient: Patient | undefined): string {
    const result = replaceDateValue(value, this.shiftDays(patient));
    this.count(Math.max(result.replaced, 1));
    if (result.text === PLACEHOLDER.date) return stringCell(cell, tokens, result.text);
    const text = childText(cell, "v");
    if (text?.index === undefined) return emptyCell(cell, tokens);
    tokens[text.index] = textToken(result.text);
    return serializeCell(tokens);
  }

  /** Cleans a cell outside identifier columns. A number that contains an identifier becomes text. */
  private cleanCell(cell: Cell, tokens: XmlToken[], value: string): string {
    if (cell.type === "inlineStr") {
      const inline = child(cell, "is");
      if (!inline) return serializeCell(tokens);
      const cleaned = cleanRichText(tokens.slice(inline.start, inline.end + 1), this.env.scrubber);
      tokens.splice(inline.start, inline.end - inline.start + 1, ...cleaned);
      return serializeCell(tokens);
    }
    if (cell.type === "str" || cell.type === "e") {
      const cleaned = this.env.scrubber.clean(value);
      const text = childText(cell, "v");
      if (cleaned === value || text?.index === undefined) return serializeCell(tokens);
      tokens[text.index] = textToken(cleaned);
      return serializeCell(tokens);
    }
    if (!isNumberType(cell) || !value) return serializeCell(tokens);
    const preview = this.env.scrubber.preview(value);
    if (preview.text === value) return serializeCell(tokens);
    this.count(preview.count);
    // A date learnt as YYYYMMDD is replaced by its shifted form, which is still a number.
    return NUMBER.test(preview.text) ? numberCell(cell, tokens, preview.text) : stringCell(cell, tokens, preview.text);
  }
}

function toCompact(date: { year: number; month: number; day: number }): string {
  return `${String(date.year).padStart(4, "0")}${String(date.month).padStart(2, "0")}${String(date.day).padStart(2, "0")}`;
}

/**
 * Pass 1 for one sheet: registers the identifiers of its identifier
 * columns with learnFieldValue. A row's patient comes from its patient ID
 * cell.
 */
export class SheetLearner {
  private readonly columns: ColumnTracker;
  private inSheetData = false;
  private row: XmlToken[] | undefined;
  private rowCharacters = 0;
  private depth = 0;

  constructor(
    private readonly settings: SheetSettings,
    private readonly registry: IdentifierRegistry,
  ) {
    this.columns = new ColumnTracker(settings.strings);
  }

  push(token: XmlToken): void {
    if (this.row) {
      this.row.push(token);
      this.rowCharacters += token.raw.length;
      if (this.rowCharacters > MAX_BUFFERED_CHARACTERS) {
        throw new LimitError(`a row of the workbook is longer than ${MAX_BUFFERED_CHARACTERS} characters`, {
          hint: "the workbook is damaged or crafted; leave it out of the input",
        });
      }
      if (token.kind === "open" && !token.selfClosing) this.depth++;
      else if (token.kind === "close" && --this.depth === 0) {
        this.columns.push(parseRow(this.row), this.rowCharacters).forEach((item) => this.learnRow(item));
        this.row = undefined;
      }
      return;
    }
    if (token.kind === "open") {
      const local = localName(token.name);
      if (local === "sheetData" && !token.selfClosing) this.inSheetData = true;
      else if (local === "row" && this.inSheetData) {
        if (token.selfClosing) return;
        this.row = [token];
        this.rowCharacters = token.raw.length;
        this.depth = 1;
      }
    } else if (token.kind === "close" && localName(token.name) === "sheetData") {
      this.inSheetData = false;
      this.columns.finish().forEach((item) => this.learnRow(item));
    }
  }

  private learnRow({ row, classes }: ClassifiedRow): void {
    if (!classes) return;
    const { strings, date1904 } = this.settings;
    const idCell = patientIdCell(row, classes);
    const id = idCell ? fieldText(idCell, strings) : "";
    const patient = id && !isEmptyValue(id) ? learnPatientId(this.registry, id) : undefined;
    for (const cell of row.cells) {
      const fieldClass = classes.get(cell.column);
      if (!fieldClass || cell === idCell || cell.type === "b" || cell.type === "e") continue;
      let value = fieldText(cell, strings);
      if (isNumberType(cell) && (fieldClass === "date" || fieldClass === "birth-date")) value = numericDateText(value, date1904);
      learnFieldValue(this.registry, fieldClass, value, patient);
    }
  }
}
