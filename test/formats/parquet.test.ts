// The Parquet handler on tables written by arrow-rs (parquet-wasm), the Rust
// implementation of Arrow that writes the same ARROW:schema metadata as
// pyarrow, and its output read back with arrow-rs. Debian bookworm packages
// neither pyarrow nor fastparquet, so arrow-rs is the independent reader.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as zlib from "node:zlib";

import * as arrow from "apache-arrow";
import * as parquetWasm from "parquet-wasm/node";
import { afterEach, describe, expect, test } from "vitest";

import { parquetMetadata } from "hyparquet";

import { DeidError } from "../../src/errors.js";
import { MAX_PARQUET_BYTES, parquetFormat } from "../../src/formats/parquet.js";
import { anonymizeTree, type AnonymizeRun } from "../helpers/cli.js";
import { parseDicomFile, TAGS, textOf } from "../helpers/dicom.js";
import { FIXTURES_DIR, listEntries, makeTestTree, type TestTree } from "../helpers/tree.js";

const SLICE = "12345678/C1_2019/CT/CT.1.2.826.0.1.3680043.10.1234.1.1.3.1.dcm";
const DAY_MS = 86_400_000;

/** Identifiers of patient 12345678 that the CT slice teaches the run, and the reviewer planted in the table. */
const PLANTED = ["12345678", "DOE", "JANE", "19470316", "1947-03-16", "Smithers", "1.2.826.0.1.3680043.10.1234"];

function plantedIn(text: string): string[] {
  return PLANTED.filter((term) => {
    const escaped = term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`(?<![0-9A-Za-z])${escaped}(?![0-9A-Za-z])`, "i").test(text);
  });
}

const utc = (year: number, month: number, day: number, hour = 0, minute = 0): Date => new Date(Date.UTC(year, month - 1, day, hour, minute));

/** Writes an Arrow table as Parquet with arrow-rs. */
async function writeArrowParquet(
  path: string,
  table: arrow.Table,
  options: { compression?: parquetWasm.Compression; rowGroupSize?: number; metadata?: Map<string, string> } = {},
): Promise<void> {
  let builder = new parquetWasm.WriterPropertiesBuilder().setCompression(options.compression ?? parquetWasm.Compression.UNCOMPRESSED);
  if (options.rowGroupSize) builder = builder.setMaxRowGroupSize(options.rowGroupSize);
  if (options.metadata) builder = builder.setKeyValueMetadata(options.metadata);
  const bytes = parquetWasm.writeParquet(parquetWasm.Table.fromIPCStream(arrow.tableToIPC(table, "stream")), builder.build());
  await writeFile(path, bytes);
}

/** Reads a Parquet file with arrow-rs. */
async function readArrowParquet(path: string): Promise<arrow.Table> {
  const wasmTable = parquetWasm.readParquet(new Uint8Array(await readFile(path)));
  return arrow.tableFromIPC(wasmTable.intoIPCStream());
}

/** Builds the results table of a planning pipeline, with identifiers in names and values. */
function resultsTable(): arrow.Table {
  return arrow.tableFromArrays({
    patient_id: arrow.vectorFromArray(["12345678", "12345678", null], new arrow.Utf8()),
    "Patient Name": arrow.vectorFromArray(["DOE^JANE", "Doe, Jane", null], new arrow.Utf8()),
    plan_date: arrow.vectorFromArray([utc(2019, 3, 4), utc(2019, 3, 11), null], new arrow.DateDay()),
    delivered: arrow.vectorFromArray([utc(2019, 3, 4, 10, 20), utc(2019, 3, 11, 9, 5), null], new arrow.TimestampMicrosecond()),
    birth_date: arrow.vectorFromArray([utc(1947, 3, 16), utc(1947, 3, 16), null], new arrow.DateDay()),
    notes: arrow.vectorFromArray(
      ["Reviewed for Doe, Jane (12345678), born 1947-03-16", "plan 1.2.826.0.1.3680043.10.1234.1.1 ok", null],
      new arrow.Utf8(),
    ),
    reviewer_name: arrow.vectorFromArray(["Smithers", "Smithers", null], new arrow.Utf8()),
    DOE_comment: arrow.vectorFromArray(["kept", "kept", "kept"], new arrow.Utf8()),
    dose_gy: Float64Array.from([2, 2, 1.8]),
    fraction: Int32Array.from([1, 2, 3]),
    age: Int32Array.from([95, 95, 40]),
    gated: arrow.vectorFromArray([true, false, null], new arrow.Bool()),
  });
}

const PANDAS_METADATA = JSON.stringify({
  index_columns: [],
  columns: [{ name: "patient_id", field_name: "patient_id", pandas_type: "unicode" }, { name: "DOE_comment", field_name: "DOE_comment" }],
  creator: { library: "pyarrow", version: "14.0.1" },
});

/** Returns the values of a column, with null for missing values (toArray gives 0 for them in some types). */
function valuesOf(table: arrow.Table, name: string): unknown[] {
  const vector = table.getChild(name)!;
  return Array.from({ length: vector.length }, (_, index) => vector.get(index));
}

/** Returns every cell of an Arrow table as text, for searching. */
function cellsOf(table: arrow.Table): string[] {
  const cells: string[] = [];
  for (const row of table.toArray()) {
    for (const value of Object.values(row.toJSON())) cells.push(typeof value === "bigint" ? value.toString() : String(value));
  }
  return cells;
}

interface ReportEntry {
  path: string;
  reason: string;
  message: string;
}

async function quarantinedOf(run: AnonymizeRun): Promise<ReportEntry[]> {
  return (JSON.parse(await readFile(run.reportPath, "utf8")) as { quarantined: ReportEntry[] }).quarantined;
}

/** Returns the days deidkit shifted the slice's Study Date, read from the input and output DICOM files. */
async function dicomShiftDays(run: AnonymizeRun): Promise<number> {
  const output = (await listEntries(run.output)).find((path) => path.endsWith(".dcm"))!;
  const before = textOf(parseDicomFile(join(FIXTURES_DIR, "sample", ...SLICE.split("/"))), TAGS.StudyDate)!;
  const after = textOf(parseDicomFile(join(run.output, output)), TAGS.StudyDate)!;
  const days = (text: string): number => Date.UTC(Number(text.slice(0, 4)), Number(text.slice(4, 6)) - 1, Number(text.slice(6, 8))) / DAY_MS;
  return days(after) - days(before);
}

describe("parquet through anonymize", () => {
  let tree: TestTree;

  afterEach(async () => {
    await tree?.cleanup();
  });

  async function makeTree(): Promise<TestTree> {
    tree = await makeTestTree({ include: [SLICE] });
    await mkdir(tree.at("input", "tables"));
    return tree;
  }

  async function onlyParquetOutput(run: AnonymizeRun): Promise<string> {
    const outputs = (await listEntries(run.output)).filter((path) => path.endsWith(".parquet"));
    expect(outputs).toHaveLength(1);
    return join(run.output, outputs[0]);
  }

  test("identifiers replaced, shape and types kept", async () => {
    await makeTree();
    const input = resultsTable();
    const metadata = new Map([
      ["pandas", PANDAS_METADATA],
      ["source", "export for DOE^JANE 12345678"],
    ]);
    await writeArrowParquet(tree.at("input", "tables", "results_12345678.parquet"), input, { rowGroupSize: 2, metadata });
    const run = await anonymizeTree(tree, "out");
    expect(run.code, run.stderr).toBe(0);
    expect(await quarantinedOf(run)).toEqual([]);

    const outputPath = await onlyParquetOutput(run);
    expect(plantedIn(outputPath)).toEqual([]);
    // The input is uncompressed, and the output keeps the codec, so every byte of it can be searched.
    const rawBytes = (await readFile(outputPath)).toString("latin1");
    expect(plantedIn(rawBytes)).toEqual([]);

    const output = await readArrowParquet(outputPath);
    expect(output.numRows).toBe(input.numRows);
    const pseudonym = (await listEntries(run.output)).find((path) => path.startsWith("PAT-"))!.split("/")[0];
    expect(output.schema.fields.map((field) => field.name)).toEqual([
      "patient_id", "Patient Name", "plan_date", "delivered", "birth_date", "notes", "reviewer_name",
      `${pseudonym}_comment`, "dose_gy", "fraction", "age", "gated",
    ]);
    expect(output.schema.fields.map((field) => String(field.type))).toEqual(input.schema.fields.map((field) => String(field.type)));
    expect(output.schema.fields.map((field) => field.nullable)).toEqual(input.schema.fields.map((field) => field.nullable));
    expect(cellsOf(output).flatMap(plantedIn)).toEqual([]);

    const column = (name: string): unknown[] => valuesOf(output, name);
    expect([...column("patient_id")]).toEqual([pseudonym, pseudonym, null]);
    expect([...column("Patient Name")]).toEqual([pseudonym, pseudonym, null]);
    expect([...column("reviewer_name")]).toEqual(["[NAME]", "[NAME]", null]);
    expect([...column("birth_date")]).toEqual([null, null, null]);
    expect([...column("dose_gy")]).toEqual([2, 2, 1.8]);
    expect([...column("fraction")]).toEqual([1, 2, 3]);
    expect([...column("age")]).toEqual([90, 90, 40]);
    expect([...column("gated")]).toEqual([true, false, null]);
    expect(String(column("notes")[0])).toContain(`(${pseudonym})`);

    // Dates move by the patient's shift, the same as the DICOM Study Date.
    const shift = await dicomShiftDays(run);
    expect(shift).not.toBe(0);
    const planDates = column("plan_date") as Array<number | null>;
    expect(planDates[0]).toBe(utc(2019, 3, 4).getTime() + shift * DAY_MS);
    expect(planDates[1]).toBe(utc(2019, 3, 11).getTime() + shift * DAY_MS);
    expect(planDates[2]).toBeNull();
    const delivered = column("delivered") as Array<number | null>;
    expect(delivered[0]).toBe(utc(2019, 3, 4, 10, 20).getTime() + shift * DAY_MS);
    expect(delivered[2]).toBeNull();

    // Row groups and metadata: same layout, Arrow's binary schema dropped, the rest cleaned.
    const footer = parquetMetadata((await readFile(outputPath)).buffer as ArrayBuffer);
    expect(footer.row_groups.map((group) => Number(group.num_rows))).toEqual([2, 1]);
    const keys = new Map((footer.key_value_metadata ?? []).map((entry) => [entry.key, entry.value]));
    expect(keys.has("ARROW:schema")).toBe(false);
    expect(keys.get("source")).toBe(`export for ${pseudonym} ${pseudonym}`);
    expect(JSON.parse(keys.get("pandas")!).columns[1].field_name).toBe(`${pseudonym}_comment`);
  });

  test("dates removed without date shift", async () => {
    await makeTree();
    await writeArrowParquet(tree.at("input", "tables", "results.parquet"), resultsTable());
    const run = await anonymizeTree(tree, "out", ["--profile", "basic"]);
    expect(run.code, run.stderr).toBe(0);
    const output = await readArrowParquet(await onlyParquetOutput(run));
    expect(valuesOf(output, "plan_date")).toEqual([null, null, null]);
    expect(valuesOf(output, "delivered")).toEqual([null, null, null]);
    expect(String(output.getChild("notes")!.get(0))).toContain("born [DATE]");
    expect(cellsOf(output).flatMap(plantedIn)).toEqual([]);
  });

  test("compressed table read back decompressed", async () => {
    await makeTree();
    await writeArrowParquet(tree.at("input", "tables", "results.parquet"), resultsTable(), { compression: parquetWasm.Compression.SNAPPY });
    const run = await anonymizeTree(tree, "out");
    expect(run.code, run.stderr).toBe(0);
    const output = await readArrowParquet(await onlyParquetOutput(run));
    expect(output.numRows).toBe(3);
    expect(cellsOf(output).flatMap(plantedIn)).toEqual([]);
    const footer = parquetMetadata((await readFile(await onlyParquetOutput(run))).buffer as ArrayBuffer);
    expect(footer.row_groups[0].columns[0].meta_data?.codec).toBe("SNAPPY");
  });

  test("zstd table needs Node's zstd", async () => {
    await makeTree();
    await writeArrowParquet(tree.at("input", "tables", "results.parquet"), resultsTable(), { compression: parquetWasm.Compression.ZSTD });
    const run = await anonymizeTree(tree, "out");
    const hasZstd = typeof (zlib as { zstdDecompressSync?: unknown }).zstdDecompressSync === "function";
    if (hasZstd) {
      expect(run.code, run.stderr).toBe(0);
      expect(cellsOf(await readArrowParquet(await onlyParquetOutput(run))).flatMap(plantedIn)).toEqual([]);
    } else {
      expect((await quarantinedOf(run)).map((entry) => entry.reason)).toEqual(["PARQUET_UNSUPPORTED_CODEC"]);
    }
  });

  test("integer patient IDs need numeric pseudonyms", async () => {
    await makeTree();
    const table = arrow.tableFromArrays({ mrn: BigInt64Array.from([12345678n, 12345678n]), dose_gy: Float64Array.from([2, 2]) });
    await writeArrowParquet(tree.at("input", "tables", "ids.parquet"), table);

    const derived = await anonymizeTree(tree, "derived");
    expect((await quarantinedOf(derived)).map((entry) => entry.reason)).toEqual(["PARQUET_NUMERIC_IDENTIFIER"]);

    await writeFile(tree.at("map.csv"), "12345678,900001\n");
    const mapped = await anonymizeTree(tree, "mapped", ["--map", tree.at("map.csv")]);
    expect(mapped.code, mapped.stderr).toBe(0);
    const output = await readArrowParquet(await onlyParquetOutput(mapped));
    expect(String(output.schema.fields[0].type)).toBe("Int64");
    expect(valuesOf(output, "mrn")).toEqual([900001n, 900001n]);
  });

  test("nested column quarantines the table", async () => {
    await makeTree();
    const table = arrow.tableFromArrays({
      id: arrow.vectorFromArray(["a", "b"], new arrow.Utf8()),
      tags: arrow.vectorFromArray([["DOE"], ["x", "y"]], new arrow.List(new arrow.Field("item", new arrow.Utf8(), true))),
    });
    await writeArrowParquet(tree.at("input", "tables", "nested.parquet"), table);
    const run = await anonymizeTree(tree, "out");
    const [entry] = await quarantinedOf(run);
    expect(entry.reason).toBe("PARQUET_NESTED_UNSUPPORTED");
    expect(plantedIn(run.stderr)).toEqual([]);
  });

  test("required birth date quarantines the table", async () => {
    await makeTree();
    const schema = new arrow.Schema([new arrow.Field("dob", new arrow.DateDay(), false)]);
    const table = new arrow.Table(schema, {
      dob: arrow.vectorFromArray([utc(1947, 3, 16)], new arrow.DateDay()),
    });
    await writeArrowParquet(tree.at("input", "tables", "dob.parquet"), table);
    const run = await anonymizeTree(tree, "out");
    expect((await quarantinedOf(run)).map((entry) => entry.reason)).toEqual(["PARQUET_DATE_REQUIRED"]);
  });

  test("table inside a zip de-identified", async () => {
    if (!existsSync("/usr/bin/python3")) {
      expect(process.env.CI, "CI must install python3").not.toBe("true");
      return;
    }
    await makeTree();
    const member = tree.at("member.parquet");
    await writeArrowParquet(member, resultsTable());
    const script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z: z.write(sys.argv[2], 'tables/results_12345678.parquet')\n";
    const built = spawnSync("/usr/bin/python3", ["-c", script, tree.at("input", "upload.zip"), member], { encoding: "utf8" });
    expect(built.status, built.stderr).toBe(0);
    const run = await anonymizeTree(tree, "out");
    expect(run.code, run.stderr).toBe(0);
    expect(await quarantinedOf(run)).toEqual([]);
    const zipPath = (await listEntries(run.output)).find((path) => path.endsWith(".zip"))!;
    const listing = spawnSync(
      "/usr/bin/python3",
      ["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nn = z.namelist()[0]\nprint(n)\nopen(sys.argv[2], 'wb').write(z.read(n))\n", join(run.output, zipPath), tree.at("extracted.parquet")],
      { encoding: "utf8" },
    );
    expect(listing.status, listing.stderr).toBe(0);
    expect(plantedIn(listing.stdout)).toEqual([]);
    const output = await readArrowParquet(tree.at("extracted.parquet"));
    expect(output.numRows).toBe(3);
    expect(cellsOf(output).flatMap(plantedIn)).toEqual([]);
  });
});

describe("parquet handler", () => {
  test("matches by extension and magic", () => {
    expect(parquetFormat.matches("a/b.parquet", Buffer.alloc(0))).toBe(true);
    expect(parquetFormat.matches("a/b", Buffer.from("PAR1rest"))).toBe(true);
    expect(parquetFormat.matches("a/b.csv", Buffer.from("id,name"))).toBe(false);
  });

  test("file over the size cap rejected unread", async () => {
    const tree = await makeTestTree({ include: [SLICE] });
    try {
      const path = tree.at("big.parquet");
      await writeFile(path, "PAR1");
      await truncate(path, MAX_PARQUET_BYTES + 1);
      const learning = parquetFormat.learn!(path, { registry: undefined as never, relativePath: "big.parquet", learnNested: async () => {} });
      await expect(learning).rejects.toBeInstanceOf(DeidError);
      await expect(learning).rejects.toMatchObject({ code: "LIMIT_EXCEEDED" });
    } finally {
      await tree.cleanup();
    }
  });
});
