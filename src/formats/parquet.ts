/**
 * Parquet tables. The file is read whole (its size is capped), every
 * column is rewritten by the class of its name and by its type, and the
 * table is written again with the same column types, repetition, row
 * count and row groups.
 *
 * - Text columns (UTF8, STRING, ENUM, JSON, and unannotated byte arrays
 *   that are valid UTF-8) follow the field rules of JSON and CSV. Patient
 *   IDs get pseudonyms, other identifiers placeholders, dates are shifted,
 *   and the run's identifiers are cleaned from everything else.
 * - DATE and TIMESTAMP columns are shifted by the row's patient when dates
 *   are shifted. Without a shift, and for birth dates, they become null.
 * - Integer columns whose name marks a patient ID get the pseudonym, which
 *   keeps the type only when the pseudonym is a number that fits (a --map
 *   crosswalk of numbers). Otherwise the file is quarantined, as it is for
 *   integer columns of any other identifier.
 * - Column names are cleaned. Key-value metadata is cleaned as text, and
 *   "ARROW:schema" (a binary Arrow schema that repeats the names) is dropped.
 *   Statistics, indexes and bloom filters are built anew from the new values.
 *
 * The row's patient is that of its first patient-ID column, else the
 * patient whose folder holds the file.
 */
import { fstatSync, closeSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import * as zlib from "node:zlib";

import { parquetMetadata, parquetRead, type FileMetaData, type SchemaElement } from "hyparquet";
import { parquetWriteBuffer } from "hyparquet-writer";

import { LimitError } from "../errors.js";
import { QuarantineReason } from "../deid/apply.js";
import type { Patient } from "../deid/identifiers.js";
import { openRegularFile } from "../dicom/source.js";
import { TOOL_NAME, TOOL_VERSION } from "../version.js";
import { capAgeText, isEmptyValue, learnFieldValue, learnPatientId, patientForId, rewriteFieldValue } from "./field-rules.js";
import { classifyField, type FieldClass } from "./fields.js";
import { isParquetFile, MAX_PARQUET_BYTES } from "./detect.js";
import type { FormatHandler, FormatWriteResult, LearnContext, WriteContext } from "./types.js";

export { MAX_PARQUET_BYTES };
/**
 * Rows times columns. NOTE: sized from one measurement, not a bound. A
 * table of 1,000,000 rows and 5 columns (text, dates, doubles; 9.5 MB with
 * snappy) peaked at 1.3 GB resident on Node 20, about 260 bytes per cell.
 * This cap so allows about 5 GB per file being processed.
 */
export const MAX_PARQUET_CELLS = 20_000_000;
/** Uncompressed bytes that the column chunks declare. */
export const MAX_PARQUET_UNCOMPRESSED_BYTES = 2 * 1024 * 1024 * 1024;

/** Decimals of up to 15 digits survive hyparquet's conversion to a JavaScript number. */
const MAX_DECIMAL_PRECISION = 15;
const DAY_MILLISECONDS = 86_400_000n;

type Value = unknown;

/** The rewrite rule of a column. Values of "other" (booleans, UUIDs) are copied. */
type ColumnKind = "text" | "binary-text" | "json" | "date" | "timestamp" | "number" | "other";

interface Column {
  element: SchemaElement;
  fieldClass: FieldClass;
  kind: ColumnKind;
  /** Days to units of the stored value, for "date" and "timestamp". */
  unitsPerDay: bigint;
  values: Value[];
}

function quarantine(reason: string, message: string): QuarantineReason {
  return new QuarantineReason(reason, message);
}

/** Decompressors for the codecs Node's zlib provides; hyparquet itself reads SNAPPY and UNCOMPRESSED. */
function decompressors(): Record<string, (input: Uint8Array, outputLength: number) => Uint8Array> {
  const codecs: Record<string, (input: Uint8Array, outputLength: number) => Uint8Array> = {
    GZIP: (input, outputLength) => zlib.gunzipSync(input, { maxOutputLength: Math.max(outputLength, 1) }),
    BROTLI: (input, outputLength) => zlib.brotliDecompressSync(input, { maxOutputLength: Math.max(outputLength, 1) }),
  };
  // zlib has zstd, as an experimental feature, from Node 22.15 and 23.8 on.
  const zstd = (zlib as unknown as { zstdDecompressSync?: (input: Uint8Array) => Uint8Array }).zstdDecompressSync;
  if (zstd) codecs.ZSTD = (input) => zstd(input);
  return codecs;
}

function compressors(): Record<string, (input: Uint8Array) => Uint8Array> {
  const codecs: Record<string, (input: Uint8Array) => Uint8Array> = {
    GZIP: (input) => zlib.gzipSync(input),
    BROTLI: (input) => zlib.brotliCompressSync(input),
  };
  const zstd = (zlib as unknown as { zstdCompressSync?: (input: Uint8Array) => Uint8Array }).zstdCompressSync;
  if (zstd) codecs.ZSTD = (input) => zstd(input);
  return codecs;
}

const READABLE_CODECS = new Set(["UNCOMPRESSED", "SNAPPY", ...Object.keys(decompressors())]);

/** Keeps stored values as they are: timestamps as bigint, dates as day numbers, byte arrays as bytes. */
const RAW_PARSERS = {
  timestampFromMilliseconds: (value: bigint) => value,
  timestampFromMicroseconds: (value: bigint) => value,
  timestampFromNanoseconds: (value: bigint) => value,
  dateFromDays: (value: number) => value,
  stringFromBytes: (value: Uint8Array) => value,
  jsonFromBytes: (value: Uint8Array) => value,
  geometryFromBytes: (value: Uint8Array) => value,
  geographyFromBytes: (value: Uint8Array) => value,
  uuidFromBytes: (value: Uint8Array) => value,
};

function readWhole(path: string): ArrayBuffer {
  const fd = openRegularFile(path);
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_PARQUET_BYTES) {
      throw new LimitError(`the Parquet file is larger than the cap of ${MAX_PARQUET_BYTES} bytes, and Parquet is read whole`, {
        hint: "split the table into smaller files",
      });
    }
    const bytes = readFileSync(fd);
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  } finally {
    closeSync(fd);
  }
}

function readMetadata(file: ArrayBuffer): FileMetaData {
  try {
    return parquetMetadata(file, { geoparquet: false });
  } catch {
    throw quarantine("PARQUET_INVALID", "not a readable Parquet file (or an encrypted one)");
  }
}

/** Checks the sizes the footer declares, before anything is decoded. */
function checkSizes(metadata: FileMetaData, leaves: readonly SchemaElement[]): void {
  const rows = Number(metadata.num_rows);
  if (rows * Math.max(leaves.length, 1) > MAX_PARQUET_CELLS) {
    throw new LimitError(`the table has more than the cap of ${MAX_PARQUET_CELLS} cells (rows times columns)`, {
      hint: "split the table into smaller files",
    });
  }
  let uncompressed = 0n;
  for (const group of metadata.row_groups) {
    for (const chunk of group.columns) {
      const codec = chunk.meta_data?.codec ?? "UNCOMPRESSED";
      if (!READABLE_CODECS.has(codec)) {
        throw quarantine(
          "PARQUET_UNSUPPORTED_CODEC",
          `a column is compressed with ${codec}, which deidkit cannot read on this Node version; rewrite the file with snappy or gzip`,
        );
      }
      uncompressed += chunk.meta_data?.total_uncompressed_size ?? 0n;
    }
  }
  if (uncompressed > BigInt(MAX_PARQUET_UNCOMPRESSED_BYTES)) {
    throw new LimitError(`the columns declare more than the cap of ${MAX_PARQUET_UNCOMPRESSED_BYTES} uncompressed bytes`, {
      hint: "split the table into smaller files",
    });
  }
}

/** Returns the units of a DATE or TIMESTAMP value per day, or undefined for other types. */
function unitsPerDay(element: SchemaElement): bigint | undefined {
  const logical = element.logical_type;
  if (element.converted_type === "DATE" || logical?.type === "DATE") return 1n;
  if (element.converted_type === "TIMESTAMP_MILLIS") return DAY_MILLISECONDS;
  if (element.converted_type === "TIMESTAMP_MICROS") return DAY_MILLISECONDS * 1000n;
  if (logical?.type === "TIMESTAMP") {
    if (logical.unit === "MILLIS") return DAY_MILLISECONDS;
    if (logical.unit === "MICROS") return DAY_MILLISECONDS * 1000n;
    return DAY_MILLISECONDS * 1_000_000n;
  }
  return undefined;
}

const UNSUPPORTED_LOGICAL = new Set(["MAP", "LIST", "BSON", "INTERVAL", "VARIANT", "GEOMETRY", "GEOGRAPHY", "FILE"]);

/** Decides how a leaf column is rewritten, or rejects a type that cannot be round-tripped with confidence. */
function kindOf(element: SchemaElement, position: number): ColumnKind {
  const unsupported = (what: string): QuarantineReason =>
    quarantine(
      "PARQUET_UNSUPPORTED_TYPE",
      `column ${position} has ${what}, which deidkit cannot rewrite with confidence; convert it to text, a number, a date or a timestamp`,
    );
  const logical = element.logical_type?.type;
  if (logical && UNSUPPORTED_LOGICAL.has(logical)) throw unsupported(`the logical type ${logical}`);
  if (element.converted_type === "BSON" || element.converted_type === "INTERVAL") throw unsupported(`the type ${element.converted_type}`);
  if (element.converted_type === "DECIMAL" && (element.precision ?? Infinity) > MAX_DECIMAL_PRECISION) {
    throw unsupported(`a decimal of more than ${MAX_DECIMAL_PRECISION} digits`);
  }
  switch (element.type) {
    case "BOOLEAN":
      return "other";
    case "FLOAT":
    case "DOUBLE":
      return "number";
    case "INT32":
    case "INT64": {
      const units = unitsPerDay(element);
      if (units === 1n) return "date";
      return units === undefined ? "number" : "timestamp";
    }
    case "BYTE_ARRAY":
      if (element.converted_type === "JSON" || logical === "JSON") return "json";
      if (element.converted_type === "UTF8" || element.converted_type === "ENUM" || logical === "STRING" || logical === "ENUM") return "text";
      if (element.converted_type === "DECIMAL") return "number";
      return "binary-text";
    case "FIXED_LEN_BYTE_ARRAY":
      if (logical === "FLOAT16" || element.converted_type === "DECIMAL") return "number";
      if (logical === "UUID") return "other";
      throw unsupported("unannotated fixed-length bytes");
    default:
      throw unsupported(`the physical type ${element.type ?? "(none)"}`);
  }
}

/** Returns the columns of a flat table, and rejects nested groups and repeated fields. */
function leafColumns(metadata: FileMetaData): SchemaElement[] {
  const [root, ...leaves] = metadata.schema;
  if (!root || root.num_children !== leaves.length || leaves.some((element) => element.num_children || element.repetition_type === "REPEATED")) {
    throw quarantine("PARQUET_NESTED_UNSUPPORTED", "the table has nested or repeated columns, and only flat tables are rewritten");
  }
  if (new Set(leaves.map((element) => element.name)).size !== leaves.length) {
    throw quarantine("PARQUET_INVALID", "two columns of the table have the same name");
  }
  return leaves;
}

/** Decodes every column to an array of raw values, one per row. */
async function readColumns(file: ArrayBuffer, metadata: FileMetaData, leaves: readonly SchemaElement[]): Promise<Column[]> {
  const rows = Number(metadata.num_rows);
  const columns = leaves.map((element, index): Column => {
    const kind = kindOf(element, index + 1);
    return { element, fieldClass: classifyField(element.name), kind, unitsPerDay: unitsPerDay(element) ?? 1n, values: new Array(rows).fill(null) };
  });
  const byName = new Map(columns.map((column) => [column.element.name, column]));
  try {
    await parquetRead({
      file,
      metadata,
      utf8: false,
      geoparquet: false,
      parsers: RAW_PARSERS,
      compressors: decompressors(),
      onChunk: ({ columnName, columnData, rowStart }) => {
        const column = byName.get(columnName);
        if (!column) return;
        for (let index = 0; index < columnData.length && rowStart + index < rows; index++) {
          column.values[rowStart + index] = columnData[index] ?? null;
        }
      },
    });
  } catch {
    throw quarantine("PARQUET_INVALID", "a column of the Parquet file cannot be decoded");
  }
  return columns;
}

/** Reads the file whole and decodes every column, after checking its declared sizes. */
async function readTable(path: string): Promise<{ metadata: FileMetaData; columns: Column[]; rows: number }> {
  const file = readWhole(path);
  const metadata = readMetadata(file);
  const leaves = leafColumns(metadata);
  checkSizes(metadata, leaves);
  return { metadata, columns: await readColumns(file, metadata, leaves), rows: Number(metadata.num_rows) };
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/** Returns the text of a value of a text-like column, or null. */
function textOf(value: Value, position: number): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) {
    try {
      return utf8Decoder.decode(value);
    } catch {
      throw quarantine("PARQUET_BINARY_COLUMN", `column ${position} contains bytes that are not UTF-8 text, so they cannot be checked`);
    }
  }
  return String(value);
}

function isTextKind(kind: ColumnKind): boolean {
  return kind === "text" || kind === "binary-text" || kind === "json";
}

/** Returns the trimmed text of a row's patient ID, or undefined when the cell is empty. */
function idText(column: Column, row: number): string | undefined {
  const value = column.values[row];
  if (value === null || value === undefined) return undefined;
  const text = isTextKind(column.kind) ? textOf(value, 0) : String(value);
  return text === null || isEmptyValue(text) ? undefined : text.trim();
}

/** Returns the calendar date (YYYYMMDD) of a DATE or TIMESTAMP value. */
function calendarDateOf(column: Column, value: Value): string | undefined {
  const stored = BigInt(value as number | bigint);
  // BigInt division truncates toward zero, so days before 1970 are floored by hand.
  const truncated = stored / column.unitsPerDay;
  const days = stored < 0n && truncated * column.unitsPerDay !== stored ? truncated - 1n : truncated;
  const date = new Date(Number(days) * Number(DAY_MILLISECONDS));
  if (Number.isNaN(date.getTime())) return undefined;
  return date.toISOString().slice(0, 10).replace(/-/g, "");
}

/** Learns the dates of a DATE or TIMESTAMP column, so that the same dates in text elsewhere are replaced too. */
function learnDates(column: Column, row: number, patient: Patient | undefined, context: LearnContext, seen: Set<string>): void {
  const value = column.values[row];
  if (value === null || value === undefined) return;
  const date = calendarDateOf(column, value);
  if (date === undefined) return;
  const category = column.fieldClass === "birth-date" ? "birth-date" : "date";
  const key = `${date}/${patient?.key ?? ""}`;
  if (seen.has(key)) return;
  seen.add(key);
  context.registry.addDate(date, category, patient);
}

async function learnParquet(path: string, context: LearnContext): Promise<void> {
  const { columns, rows } = await readTable(path);
  const [keyColumn] = columns.filter((column) => column.fieldClass === "patient-id");
  const seenDates = columns.map(() => new Set<string>());
  for (let row = 0; row < rows; row++) {
    const key = keyColumn ? idText(keyColumn, row) : undefined;
    const patient = key === undefined ? undefined : learnPatientId(context.registry, key);
    columns.forEach((column, index) => {
      if (column.kind === "date" || column.kind === "timestamp") {
        learnDates(column, row, patient, context, seenDates[index]);
        return;
      }
      if (column === keyColumn || column.fieldClass === "none" || column.fieldClass === "age" || column.kind === "other") return;
      const value = column.values[row];
      if (value === null || value === undefined) return;
      const text = isTextKind(column.kind) ? textOf(value, index + 1) : String(value);
      if (text !== null) learnFieldValue(context.registry, column.fieldClass, text, patient);
    });
  }
}

interface RewriteState {
  context: WriteContext;
  replacements: number;
}

function rewriteText(column: Column, position: number, row: number, patient: Patient | undefined, state: RewriteState): Value {
  const original = column.values[row];
  const text = textOf(original, position);
  if (text === null) return null;
  const result = rewriteFieldValue(column.fieldClass, text, patient, state.context);
  state.replacements += result.replaced;
  if (column.kind === "json") {
    try {
      JSON.parse(result.text);
    } catch {
      throw quarantine("PARQUET_JSON_INVALID", `column ${position} contains JSON that is no longer valid once its identifiers are replaced`);
    }
  }
  return result.text === text && original instanceof Uint8Array ? original : utf8Encoder.encode(result.text);
}

function rewriteTemporal(column: Column, position: number, row: number, patient: Patient | undefined, state: RewriteState): Value {
  const value = column.values[row];
  if (value === null || value === undefined) return null;
  state.replacements++;
  if (column.fieldClass !== "birth-date" && state.context.shiftDates && patient !== undefined) {
    const shift = BigInt(patient.shiftDays) * column.unitsPerDay;
    return column.kind === "date" ? Number(BigInt(value as number) + shift) : (value as bigint) + shift;
  }
  if (column.element.repetition_type === "REQUIRED") {
    throw quarantine(
      "PARQUET_DATE_REQUIRED",
      `column ${position} requires a date in every row, but its dates can only be removed (birth date, no date shift, or no patient)`,
    );
  }
  return null;
}

/** Returns `text` as a value of the column's numeric type. */
function asNumberLike(original: Value, text: string): Value {
  return typeof original === "bigint" ? BigInt(text) : Number(text);
}

function rewriteNumber(column: Column, position: number, row: number, patient: Patient | undefined, state: RewriteState): Value {
  const value = column.values[row];
  if (value === null || value === undefined || column.fieldClass === "none") return value ?? null;
  if (column.fieldClass === "age") {
    const capped = capAgeText(String(value));
    if (capped === String(value)) return value;
    state.replacements++;
    return asNumberLike(value, capped);
  }
  const isInteger = column.element.type === "INT64" || (column.element.type === "INT32" && !column.element.converted_type);
  if (column.fieldClass === "patient-id" && isInteger) {
    const pseudonym = (patient ?? patientForId(state.context, String(value))).pseudonymId;
    const limit = column.element.type === "INT64" ? 2n ** 63n : 2n ** 31n;
    if (/^-?\d{1,19}$/.test(pseudonym) && BigInt(pseudonym) < limit && BigInt(pseudonym) >= -limit) {
      state.replacements++;
      return asNumberLike(value, pseudonym);
    }
  }
  throw quarantine(
    "PARQUET_NUMERIC_IDENTIFIER",
    `column ${position} contains identifiers (${column.fieldClass}) as numbers, and their replacements are not numbers of its type`,
  );
}

function rewriteOther(column: Column, position: number, row: number): Value {
  const value = column.values[row];
  if (column.element.type === "BOOLEAN" || column.fieldClass === "none" || column.fieldClass === "age") return value;
  if (value === null || value === undefined) return null;
  throw quarantine("PARQUET_NUMERIC_IDENTIFIER", `column ${position} contains identifiers (${column.fieldClass}) in a type that cannot store their replacements`);
}

/** Returns the de-identified value of one cell. */
function rewriteCell(column: Column, position: number, row: number, rowPatient: Patient | undefined, isKey: boolean, state: RewriteState): Value {
  // The key column's own value is resolved to its patient by rewriteFieldValue and rewriteNumber.
  const patient = isKey ? undefined : rowPatient;
  switch (column.kind) {
    case "text":
    case "binary-text":
    case "json":
      return rewriteText(column, position, row, patient, state);
    case "date":
    case "timestamp":
      return rewriteTemporal(column, position, row, rowPatient, state);
    case "number":
      return rewriteNumber(column, position, row, patient, state);
    case "other":
      return rewriteOther(column, position, row);
  }
}

/**
 * Cleans key-value metadata as text. "ARROW:schema" is dropped because it
 * is binary, and "pandas" is dropped when cleaning leaves invalid JSON.
 */
function rewriteKeyValues(metadata: FileMetaData, state: RewriteState): Array<{ key: string; value?: string }> {
  const clean = (text: string): string => state.context.cleaner.clean(text).text;
  const out: Array<{ key: string; value?: string }> = [];
  for (const { key, value } of metadata.key_value_metadata ?? []) {
    if (key === "ARROW:schema") {
      state.replacements++;
      continue;
    }
    const cleanedValue = value === undefined ? undefined : clean(value);
    if (key === "pandas" && cleanedValue !== undefined) {
      try {
        JSON.parse(cleanedValue);
      } catch {
        state.replacements++;
        continue;
      }
    }
    out.push({ key: clean(key), value: cleanedValue });
  }
  return out;
}

async function writeParquet(path: string, targetPath: string, context: WriteContext): Promise<FormatWriteResult> {
  const { metadata, columns, rows } = await readTable(path);
  const state: RewriteState = { context, replacements: 0 };
  const [keyColumn] = columns.filter((column) => column.fieldClass === "patient-id");

  const patients = new Array<Patient | undefined>(rows);
  for (let row = 0; row < rows; row++) {
    const key = keyColumn ? idText(keyColumn, row) : undefined;
    patients[row] = key === undefined ? context.patient : patientForId(context, key);
  }
  // Values are replaced in place, column by column, so that the table is held in memory once.
  columns.forEach((column, index) => {
    for (let row = 0; row < rows; row++) {
      column.values[row] = rewriteCell(column, index + 1, row, patients[row], column === keyColumn, state);
    }
  });

  const names = columns.map((column) => context.cleaner.clean(column.element.name).text);
  if (new Set(names).size !== names.length) {
    throw quarantine("PARQUET_COLUMN_NAME_COLLISION", "two column names are the same once their identifiers are replaced");
  }
  state.replacements += names.filter((name, index) => name !== columns[index].element.name).length;
  const schema: SchemaElement[] = [
    { ...metadata.schema[0], name: context.cleaner.clean(metadata.schema[0].name).text },
    ...columns.map((column, index) => ({ ...column.element, name: names[index] })),
  ];
  const codec = metadata.row_groups[0]?.columns[0]?.meta_data?.codec ?? "SNAPPY";
  const writable = new Set(["UNCOMPRESSED", "SNAPPY", ...Object.keys(compressors())]);
  const groupRows = metadata.row_groups.map((group) => Number(group.num_rows)).filter((count) => count > 0);

  const keyValues = rewriteKeyValues(metadata, state);
  let buffer: ArrayBuffer;
  try {
    buffer = parquetWriteBuffer({
      columnData: columns.map((column, index) => ({ name: names[index], data: column.values })),
      schema,
      codec: writable.has(codec) ? codec : "SNAPPY",
      compressors: compressors(),
      // The original row groups are kept, so readers that page by row group see the same layout.
      rowGroupSize: groupRows.length ? groupRows : Math.max(rows, 1),
      // An empty list is left out, because hyparquet-writer 0.17 encodes it with an element type that arrow-rs (parquet-wasm 0.8) rejects.
      kvMetadata: keyValues.length ? keyValues : undefined,
      createdBy: `${TOOL_NAME} version ${TOOL_VERSION}`,
    });
  } catch {
    throw quarantine("PARQUET_WRITE_FAILED", "the de-identified table could not be encoded as Parquet");
  }
  await writeFile(targetPath, new Uint8Array(buffer), { flag: "wx", mode: 0o644 });
  return { replacements: state.replacements };
}

export const parquetFormat: FormatHandler = {
  name: "parquet",
  matches: isParquetFile,
  learn: learnParquet,
  write: writeParquet,
};
