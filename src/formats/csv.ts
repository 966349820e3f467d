/**
 * Delimited tables (.csv, .tsv): the first record is the header, and each
 * cell is rewritten by the class of its column. Cohort tables mix
 * patients, so each row's dates are shifted by the patient of that row's
 * Patient ID column. The file is streamed record by record, and fields,
 * quotes and line breaks that do not change are copied as written.
 */
import { closeSync, createReadStream, createWriteStream, readSync } from "node:fs";
import { once } from "node:events";

import { QuarantineReason } from "../deid/apply.js";
import type { Patient } from "../deid/identifiers.js";
import { openRegularFile } from "../dicom/source.js";
import { CsvRecordReader, detectDelimiter, formatField, type CsvRecord } from "./csv-records.js";
import { cachingCleaner, FieldLearner, isEmptyValue, patientForId, rewriteFieldValue, type FieldRewriteContext } from "./field-rules.js";
import { classifyField, type FieldClass } from "./fields.js";
import { ChunkDecoder, judgeEncoding, type TextEncoding } from "./text-encoding.js";
import type { FormatHandler, FormatWriteResult, LearnContext, WriteContext } from "./types.js";

/** The encoding and delimiter are judged from the start of the file. */
const PROBE_BYTES = 1 << 20;

interface TableFormat {
  encoding: TextEncoding;
  delimiter: string;
}

/** Reads the start of the file and decides its encoding (see text-encoding.ts) and delimiter. */
function probeTable(path: string, relativePath: string): TableFormat {
  const fd = openRegularFile(path);
  let head: Buffer;
  try {
    const buffer = Buffer.alloc(PROBE_BYTES);
    head = buffer.subarray(0, readSync(fd, buffer, 0, PROBE_BYTES, 0));
  } finally {
    closeSync(fd);
  }
  const encoding = judgeEncoding(head, head.length === PROBE_BYTES);
  const preferred = /\.tsv$/i.test(relativePath) ? "\t" : ",";
  return { encoding, delimiter: detectDelimiter(head.toString(encoding), preferred) };
}

async function* recordBatches(path: string, format: TableFormat): AsyncGenerator<CsvRecord[]> {
  const reader = new CsvRecordReader(format.delimiter);
  const decoder = new ChunkDecoder(format.encoding);
  for await (const chunk of createReadStream("", { fd: openRegularFile(path), highWaterMark: 1 << 16 })) {
    const records = reader.push(decoder.write(chunk as Buffer), false);
    if (records.length > 0) yield records;
  }
  const records = reader.push(decoder.end(), true);
  if (records.length > 0) yield records;
}

function isBlank(record: CsvRecord): boolean {
  return record.fields.length === 1 && record.fields[0].raw.length === 0;
}

/** The columns of a table, classified from its header. */
class Columns {
  readonly classes: FieldClass[];
  /** Columns holding Patient IDs; the first non-empty one in a row names the row's patient. */
  private readonly idColumns: number[];
  /** Data rows checked so far, for error messages. */
  private rowNumber = 0;

  constructor(readonly header: CsvRecord) {
    this.classes = header.fields.map((field) => classifyField(field.value));
    this.idColumns = this.classes.flatMap((fieldClass, index) => (fieldClass === "patient-id" ? [index] : []));
  }

  classOf(index: number): FieldClass {
    return this.classes[index] ?? "none";
  }

  /** Finds the column and value of the row's own Patient ID, if it has one. */
  ownId(record: CsvRecord): { column: number; id: string } | undefined {
    for (const column of this.idColumns) {
      const value = record.fields[column]?.value;
      if (value !== undefined && !isEmptyValue(value)) return { column, id: value };
    }
    return undefined;
  }

  /**
   * Rejects a row with more non-empty fields than the header has columns:
   * its cells may have shifted (an unquoted delimiter inside a name), so no
   * column rule can be trusted for it.
   */
  check(record: CsvRecord): void {
    this.rowNumber++;
    const extra = record.fields.slice(this.header.fields.length);
    if (extra.some((field) => field.value.length > 0)) {
      throw new QuarantineReason(
        "CSV_FIELD_COUNT",
        `data row ${this.rowNumber} has more fields than the header; quote fields that contain the delimiter, or leave the file out of the input`,
      );
    }
  }
}

export async function learnCsv(path: string, context: LearnContext): Promise<void> {
  const format = probeTable(path, context.relativePath);
  const learner = new FieldLearner(context.registry);
  let columns: Columns | undefined;
  for await (const records of recordBatches(path, format)) {
    for (const record of records) {
      if (isBlank(record)) continue;
      if (!columns) {
        columns = new Columns(record);
        continue;
      }
      columns.check(record);
      const own = columns.ownId(record);
      const patient = own ? learner.patientOfId(own.id) : undefined;
      record.fields.forEach((field, index) => learner.learn(columns!.classOf(index), field.value, patient));
    }
  }
}

class TableRewriter {
  replacements = 0;
  private columns: Columns | undefined;
  private readonly context: FieldRewriteContext;
  private readonly folderPatient: Patient | undefined;

  constructor(
    writeContext: WriteContext,
    private readonly delimiter: string,
  ) {
    this.context = { cleaner: cachingCleaner(writeContext.cleaner), shiftDates: writeContext.shiftDates, patientFor: writeContext.patientFor };
    this.folderPatient = writeContext.patient;
  }

  rewrite(record: CsvRecord): string {
    if (isBlank(record)) return record.terminator;
    if (!this.columns) {
      this.columns = new Columns(record);
      return this.join(record, (_, value) => this.rewriteCell("none", value, this.folderPatient));
    }
    const columns = this.columns;
    columns.check(record);
    const own = columns.ownId(record);
    const patient = own ? patientForId(this.context, own.id) : this.folderPatient;
    return this.join(record, (index, value) => {
      const fieldClass = columns.classOf(index);
      // Every Patient ID in the row stands for the row's patient, as in the registry.
      if (fieldClass === "patient-id" && !isEmptyValue(value)) {
        this.replacements++;
        return (patient ?? patientForId(this.context, value)).pseudonymId;
      }
      return this.rewriteCell(fieldClass, value, patient);
    });
  }

  private rewriteCell(fieldClass: FieldClass, value: string, patient: Patient | undefined): string {
    const result = rewriteFieldValue(fieldClass, value, patient, this.context);
    this.replacements += result.replaced;
    return result.text;
  }

  private join(record: CsvRecord, rewriteValue: (index: number, value: string) => string): string {
    const fields = record.fields.map((field, index) => formatField(field, rewriteValue(index, field.value), this.delimiter));
    return fields.join(this.delimiter) + record.terminator;
  }
}

export async function writeCsv(path: string, targetPath: string, context: WriteContext): Promise<FormatWriteResult> {
  const format = probeTable(path, context.relativePath);
  const rewriter = new TableRewriter(context, format.delimiter);
  const output = createWriteStream(targetPath, { flags: "wx", mode: 0o644 });
  try {
    for await (const records of recordBatches(path, format)) {
      const text = records.map((record) => rewriter.rewrite(record)).join("");
      if (!output.write(Buffer.from(text, format.encoding))) await once(output, "drain");
    }
    output.end();
    await once(output, "finish");
  } catch (error) {
    output.destroy();
    throw error;
  }
  return { replacements: rewriter.replacements };
}

export const csvFormat: FormatHandler = {
  name: "csv",
  matches: (relativePath) => /\.(csv|tsv)$/i.test(relativePath),
  learn: learnCsv,
  write: writeCsv,
};
