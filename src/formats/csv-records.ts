/**
 * An incremental reader of delimited text (RFC 4180 CSV, and the same with
 * semicolons or tabs) that keeps each field as written, so that a writer
 * can copy unchanged fields byte for byte.
 */
import { QuarantineReason } from "../deid/apply.js";
import { LimitError } from "../errors.js";

export interface CsvField {
  /** The field as written, quotes included. */
  raw: string;
  /** The field's text, without quotes and with doubled quotes undone. */
  value: string;
  quoted: boolean;
}

export interface CsvRecord {
  fields: CsvField[];
  /** The line break that ended the record: "\r\n", "\n", "\r", or "" at the end of the file. */
  terminator: string;
}

/** One record is held whole; this caps its length in characters. */
export const MAX_RECORD_CHARACTERS = 16 * 1024 * 1024;
export const MAX_FIELDS_PER_RECORD = 100_000;

const QUOTE = 0x22;
const CR = 0x0d;
const LF = 0x0a;

const enum State {
  FieldStart,
  Unquoted,
  Quoted,
  /** A quote inside a quoted field: the field's end, or the first of a doubled quote. */
  QuoteInQuoted,
}

/**
 * Splits text into records. A field that starts with a double quote is
 * quoted and may contain delimiters, quotes (doubled) and line breaks. A
 * quote inside an unquoted field is an ordinary character, as Python's csv
 * module and pandas 1.5 read it. Throws QuarantineReason for text after a closing quote and for
 * a quote still open at the end of the file.
 */
export class CsvRecordReader {
  private buffer = "";
  private position = 0;
  private recordStart = 0;
  private fieldStart = 0;
  private fields: CsvField[] = [];
  private state = State.FieldStart as State;
  private readonly delimiter: number;
  /** Records returned by earlier calls, for error messages. */
  private recordsBefore = 0;

  constructor(delimiter: string) {
    this.delimiter = delimiter.charCodeAt(0);
  }

  /** Adds text and returns the records it completes; `final` marks the end of the file. */
  push(text: string, final: boolean): CsvRecord[] {
    this.buffer += text;
    const records: CsvRecord[] = [];
    const buffer = this.buffer;
    while (this.position < buffer.length) {
      const code = buffer.charCodeAt(this.position);
      if (this.state === State.Quoted) {
        const close = buffer.indexOf('"', this.position);
        if (close < 0) {
          this.position = buffer.length;
          break;
        }
        this.position = close + 1;
        this.state = State.QuoteInQuoted;
        continue;
      }
      if (this.state === State.QuoteInQuoted && code === QUOTE) {
        this.state = State.Quoted;
        this.position++;
        continue;
      }
      if (code === this.delimiter) {
        this.endField();
        this.position++;
        this.fieldStart = this.position;
        this.state = State.FieldStart;
        continue;
      }
      if (code === CR || code === LF) {
        if (code === CR && this.position + 1 >= buffer.length && !final) break;
        const terminator = code === CR && buffer.charCodeAt(this.position + 1) === LF ? "\r\n" : buffer[this.position];
        this.endField();
        records.push({ fields: this.fields, terminator });
        this.position += terminator.length;
        this.startRecord();
        continue;
      }
      if (this.state === State.QuoteInQuoted) {
        throw new QuarantineReason("CSV_INVALID", `text follows a closing quote in record ${this.recordCount(records)}; quote the whole field or leave the file out of the input`);
      }
      if (this.state === State.FieldStart) this.state = code === QUOTE ? State.Quoted : State.Unquoted;
      this.position++;
    }
    this.checkLimits();
    if (final) this.finish(records);
    this.compact();
    this.recordsBefore += records.length;
    return records;
  }

  private recordCount(pending: CsvRecord[]): number {
    return this.recordsBefore + pending.length + 1;
  }

  private endField(): void {
    const raw = this.buffer.slice(this.fieldStart, this.position);
    const quoted = this.state === State.QuoteInQuoted;
    const value = quoted ? raw.slice(1, -1).replaceAll('""', '"') : raw;
    this.fields.push({ raw, value, quoted });
    if (this.fields.length > MAX_FIELDS_PER_RECORD) {
      throw new LimitError(`a record has more than ${MAX_FIELDS_PER_RECORD} fields`, { hint: "check the delimiter, or leave the file out of the input" });
    }
  }

  private startRecord(): void {
    this.recordStart = this.position;
    this.fieldStart = this.position;
    this.fields = [];
    this.state = State.FieldStart;
  }

  private checkLimits(): void {
    if (this.position - this.recordStart > MAX_RECORD_CHARACTERS) {
      throw new LimitError(`a record is longer than ${MAX_RECORD_CHARACTERS} characters`, {
        hint: "check for an unbalanced quote, or leave the file out of the input",
      });
    }
  }

  private finish(records: CsvRecord[]): void {
    if (this.state === State.Quoted) {
      throw new QuarantineReason("CSV_UNCLOSED_QUOTE", `a quoted field opened in record ${this.recordCount(records)} is never closed; repair the file or leave it out of the input`);
    }
    if (this.position > this.recordStart) {
      this.endField();
      records.push({ fields: this.fields, terminator: "" });
      this.startRecord();
    }
  }

  /** Drops the text of completed records from the buffer. */
  private compact(): void {
    if (this.recordStart === 0) return;
    this.buffer = this.buffer.slice(this.recordStart);
    this.position -= this.recordStart;
    this.fieldStart -= this.recordStart;
    this.recordStart = 0;
  }
}

/**
 * Chooses the delimiter of a table from its first record: the one of comma,
 * semicolon and tab that occurs most often outside quotes, with ties and
 * zero counts going to `preferred` (tab for .tsv, comma for .csv).
 */
export function detectDelimiter(head: string, preferred: string): string {
  const counts = new Map<string, number>([[",", 0], [";", 0], ["\t", 0]]);
  let quoted = false;
  for (const character of head) {
    if (character === '"') quoted = !quoted;
    else if (!quoted && (character === "\n" || character === "\r")) break;
    else if (!quoted && counts.has(character)) counts.set(character, counts.get(character)! + 1);
  }
  let best = preferred;
  for (const [delimiter, count] of counts) {
    if (count > (counts.get(best) ?? 0)) best = delimiter;
  }
  return best;
}

/** Writes a field: as it was when unchanged, quoted when it was quoted or must be (RFC 4180 section 2). */
export function formatField(field: CsvField, value: string, delimiter: string): string {
  if (value === field.value) return field.raw;
  const mustQuote = value.includes(delimiter) || value.includes('"') || value.includes("\n") || value.includes("\r");
  return field.quoted || mustQuote ? `"${value.replaceAll('"', '""')}"` : value;
}
