import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { QuarantineReason } from "../../src/deid/apply.js";
import { TextCleaner } from "../../src/deid/cleaner.js";
import { LimitError } from "../../src/errors.js";
import { CsvRecordReader, detectDelimiter, type CsvRecord } from "../../src/formats/csv-records.js";
import { csvFormat } from "../../src/formats/csv.js";
import { anonymizeTree, expectExitMatchesReport } from "../helpers/cli.js";
import { makeTestTree, readTreeFiles, type TestTree } from "../helpers/tree.js";
import { makeFormatRun, pythonHas, runPython, seedSamplePatient, type FormatRun } from "./format-context.js";

/** Adds `days` to an ISO date, computed independently of the code under test. */
function shiftIso(iso: string, days: number): string {
  const date = new Date(`${iso}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

/** The same date as DD.MM.YYYY. */
const european = (iso: string): string => iso.split("-").reverse().join(".");

let format: FormatRun;

beforeEach(async () => {
  format = await makeFormatRun(csvFormat, (registry) => void seedSamplePatient(registry));
});

afterEach(async () => {
  await format.cleanup();
});

async function rewrite(name: string, text: string, options?: Parameters<FormatRun["run"]>[2]): Promise<{ text: string; replacements: number }> {
  const { output, replacements } = await format.run(name, text, options);
  return { text: output.toString("utf8"), replacements };
}

function readAll(text: string, delimiter: string, pieceLength: number): CsvRecord[] {
  const reader = new CsvRecordReader(delimiter);
  const records: CsvRecord[] = [];
  for (let index = 0; index < text.length; index += pieceLength) records.push(...reader.push(text.slice(index, index + pieceLength), false));
  records.push(...reader.push("", true));
  return records;
}

describe("csv record reader", () => {
  const text = 'a,"b,1","c ""q"""\r\n"multi\nline",,x"y\r\n\rlast,\n';

  test("splits fields, quotes and line breaks", () => {
    const records = readAll(text, ",", text.length);
    expect(records.map((record) => record.fields.map((field) => field.value))).toEqual([["a", "b,1", 'c "q"'], ["multi\nline", "", 'x"y'], [""], ["last", ""]]);
    expect(records.map((record) => record.terminator)).toEqual(["\r\n", "\r\n", "\r", "\n"]);
    expect(records[0].fields.map((field) => field.quoted)).toEqual([false, true, true]);
    expect(records[0].fields[2].raw).toBe('"c ""q"""');
  });

  test("gives the same records in any piece size", () => {
    const whole = readAll(text, ",", text.length);
    for (const pieceLength of [1, 2, 3, 5, 7]) expect(readAll(text, ",", pieceLength), String(pieceLength)).toEqual(whole);
  });

  test("ends a last record without a line break", () => {
    const records = readAll("a,b\nc,d", ",", 3);
    expect(records.map((record) => record.terminator)).toEqual(["\n", ""]);
    expect(records[1].fields.map((field) => field.value)).toEqual(["c", "d"]);
  });

  test("rejects an unclosed quote at the end", () => {
    expect(() => readAll('a,b\n"12345678,c\n', ",", 4)).toThrow(QuarantineReason);
    try {
      readAll('a,b\n"12345678,c\n', ",", 4);
    } catch (error) {
      expect((error as QuarantineReason).reasonCode).toBe("CSV_UNCLOSED_QUOTE");
      expect((error as Error).message).not.toContain("12345678");
    }
  });

  test("rejects text after a closing quote", () => {
    try {
      readAll('a,b\n"12345678"x,c\n', ",", 100);
      expect.unreachable();
    } catch (error) {
      expect((error as QuarantineReason).reasonCode).toBe("CSV_INVALID");
      expect((error as Error).message).not.toContain("12345678");
    }
  });

  test("caps the length of one record", () => {
    const reader = new CsvRecordReader(",");
    const piece = `"${"x".repeat(1 << 20)}`;
    expect(() => {
      for (let count = 0; count < 20; count++) reader.push(count === 0 ? piece : piece.slice(1), false);
    }).toThrow(LimitError);
  });

  test("detects the delimiter from the header", () => {
    expect(detectDelimiter("patient_id;dose;date\n1;1,8;x", ",")).toBe(";");
    expect(detectDelimiter("a\tb\tc\n", ",")).toBe("\t");
    expect(detectDelimiter('"a;b",c,d\n', ",")).toBe(",");
    expect(detectDelimiter("single\n", "\t")).toBe("\t");
    expect(detectDelimiter("a;b,c\n", ",")).toBe(",");
  });
});

describe("csv cohort table", () => {
  const cohort = [
    "patient_id,Patient Name,dob,plan_date,reviewer,age,dose_gy,notes",
    "12345678,DOE^JANE^M,1947-03-16,2019-03-15,Dr. Ravi Patel,72,60.0,\"Jane tolerated it, no issues\"",
    "AB-0042,\"Müller, Jörg\",22.07.1958,2021-06-01T08:30:00,Tom Brown,95,50.4,",
    "",
  ].join("\r\n");

  test("rewrites each row by its own patient", async () => {
    const first = format.patient("12345678");
    const second = format.patient("AB-0042");
    const { text } = await rewrite("cohort.csv", cohort);
    expect(text.split("\r\n")).toEqual([
      "patient_id,Patient Name,dob,plan_date,reviewer,age,dose_gy,notes",
      `${first.pseudonymId},${first.pseudonymName},[DATE],${shiftIso("2019-03-15", first.shiftDays)},[NAME],72,60.0,"${first.pseudonymName} tolerated it, no issues"`,
      `${second.pseudonymId},"${second.pseudonymName}",[DATE],${shiftIso("2021-06-01", second.shiftDays)}T08:30:00,[NAME],90,50.4,`,
      "",
    ]);
    expect(first.shiftDays).not.toBe(second.shiftDays);
  });

  test("teaches the registry the table's identifiers", async () => {
    await format.run("cohort.csv", cohort);
    const cleaner = new TextCleaner(format.registry.allTerms(), (uid) => uid);
    const cleaned = cleaner.clean("Jörg Müller (AB-0042, born 1958-07-22) seen by Dr. Patel and Tom Brown").text;
    const second = format.patient("AB-0042");
    expect(cleaned).toBe(`${second.pseudonymName} (${second.pseudonymId}, born [DATE]) seen by Dr. [NAME] and [NAME]`);
  });

  test("uses the folder patient without an ID column", async () => {
    const patient = format.patient("12345678");
    const { text } = await rewrite("plan.csv", "review_date;reviewer_name\n15.03.2019;Smith\n", { folderPatient: "12345678" });
    expect(text).toBe(`review_date;reviewer_name\n${european(shiftIso("2019-03-15", patient.shiftDays))};[NAME]\n`);
  });

  test("replaces dates without date shifting", async () => {
    const { text } = await rewrite("plan.csv", "patient_id,plan_date,created_at\n12345678,2019-03-15,1552608000\n", { shiftDates: false });
    expect(text).toBe(`patient_id,plan_date,created_at\n${format.patient("12345678").pseudonymId},[DATE],[DATE]\n`);
  });

  test("finds a patient through an ID without leading zeros", async () => {
    const padded = format.patient("0012345");
    const { text } = await rewrite("ids.tsv", "MRN\tStudyDate\n12345\t20190315\n");
    const shifted = shiftIso("2019-03-15", padded.shiftDays).replaceAll("-", "");
    expect(text).toBe(`MRN\tStudyDate\n${padded.pseudonymId}\t${shifted}\n`);
  });

  test("maps a second ID column to the row's patient", async () => {
    const patient = format.patient("12345678");
    const { text } = await rewrite("ids.csv", "patient_id,mrn\n12345678,H-7781-2203\n,\n");
    expect(text).toBe(`patient_id,mrn\n${patient.pseudonymId},${patient.pseudonymId}\n,\n`);
  });

  test("cleans header cells", async () => {
    const patient = format.patient("12345678");
    const { text } = await rewrite("wide.csv", "structure,12345678,Jane Doe\nPTV,1,2\n");
    expect(text).toBe(`structure,${patient.pseudonymId},${patient.pseudonymName}\nPTV,1,2\n`);
  });
});

describe("csv learning", () => {
  function table(rows: number): string {
    const lines = ["patient_id,name,plan_date,reviewer"];
    for (let row = 0; row < rows; row++) lines.push(`${1000 + (row % 3)},Pat${row % 3} Roe,2019-03-0${1 + (row % 3)},Tom Brown`);
    return `${lines.join("\n")}\n`;
  }

  /** Counts the registry calls a worker would send for the table, starting from an empty registry. */
  async function journalLength(rows: number): Promise<number> {
    const fresh = await makeFormatRun(csvFormat);
    try {
      fresh.registry.journal = [];
      await fresh.run(`rows-${rows}.csv`, table(rows));
      return fresh.registry.journal.length;
    } finally {
      await fresh.cleanup();
    }
  }

  test("registry calls do not grow with rows", async () => {
    const small = await journalLength(30);
    const large = await journalLength(3000);
    expect(small).toBeGreaterThan(0);
    expect(large).toBe(small);
  });

  test("learns at most 1000 distinct dates", async () => {
    const lines = ["patient_id,event_date"];
    const start = Date.UTC(2000, 0, 1);
    for (let day = 0; day < 1500; day++) lines.push(`12345678,${new Date(start + day * 86_400_000).toISOString().slice(0, 10)}`);
    const path = join(format.dir, "events.csv");
    await writeFile(path, `${lines.join("\n")}\n`);
    await csvFormat.learn!(path, { registry: format.registry, relativePath: "events.csv", learnNested: () => Promise.resolve() });
    const isoDates = format.registry.allTerms().filter((term) => term.category === "date" && /^\d{4}-\d{2}-\d{2}$/.test(term.text));
    expect(isoDates).toHaveLength(1000);
  });
});

describe("csv layout", () => {
  test("copies a table without identifiers byte for byte", async () => {
    const text = '\uFEFF"structure";"d95";"comment"\r\n"PTV";77,2;"a ""quoted"" word"\r\nRectum;;\r\n\r\n"multi\nline";1;x"y';
    const { text: output, replacements } = await rewrite("plain.csv", text);
    expect(output).toBe(text);
    expect(replacements).toBe(0);
  });

  test("quotes a new value only where needed", async () => {
    const patient = format.patient("12345678");
    const { text } = await rewrite("q.csv", 'id_note,"patient_id"\n"12345678, Jane Doe","12345678"\n');
    expect(text).toBe(`id_note,"patient_id"\n"${patient.pseudonymId}, ${patient.pseudonymName}","${patient.pseudonymId}"\n`);
  });

  test("reads a record across read chunks", async () => {
    const patient = format.patient("12345678");
    const long = "x".repeat(70_000);
    const { text } = await rewrite("long.csv", `patient_id,comment\r\n12345678,"${long}\r\n${long} Jane Doe"\r\n`);
    expect(text).toBe(`patient_id,comment\r\n${patient.pseudonymId},"${long}\r\n${long} ${patient.pseudonymName}"\r\n`);
  });

  test("keeps a Latin-1 file in Latin-1", async () => {
    format.registry.addPatientName("MÜLLER^JÖRG", format.patient("AB-0042"));
    const input = Buffer.from("name;Kommentar\nJörg Müller;Größe 1,80\n", "latin1");
    const { output } = await format.run("latin1.csv", input, { skipLearn: true });
    expect(output).toEqual(Buffer.from(`name;Kommentar\n${format.patient("AB-0042").pseudonymName};Größe 1,80\n`, "latin1"));
  });
});

describe("csv rejects", () => {
  test("unclosed quote as CSV_UNCLOSED_QUOTE", async () => {
    const error = await format.run("bad.csv", 'patient_id,name\n12345678,"Doe\n').catch((caught: unknown) => caught);
    expect((error as QuarantineReason).reasonCode).toBe("CSV_UNCLOSED_QUOTE");
    expect((error as Error).message).not.toContain("12345678");
  });

  test("extra fields as CSV_FIELD_COUNT", async () => {
    const error = await format.run("shifted.csv", "patient_id,name,dob\n12345678,Doe, Jane,1947-03-16\n").catch((caught: unknown) => caught);
    expect((error as QuarantineReason).reasonCode).toBe("CSV_FIELD_COUNT");
    expect((error as Error).message).toMatch(/data row 1 /);
  });

  test("accepts empty trailing fields", async () => {
    const { text } = await rewrite("trailing.csv", "a,b\n1,2,,\n3\n");
    expect(text).toBe("a,b\n1,2,,\n3\n");
  });
});

describe("csv read by Python", () => {
  const table = [
    "patient_id;name;plan_date;dose;comment",
    "12345678;Jane Doe;2019-03-15;1,8;\"line one\nline two; with ;\"",
    "0012345;\"Roe, Jane\";16.03.2019;2,0;plain",
    "",
  ].join("\n");

  test("the csv module reads the input's shape", async () => {
    if (!pythonHas("csv")) throw new Error("/usr/bin/python3 is missing");
    await writeFile(join(format.dir, "py-in.csv"), table);
    const { output } = await format.run("py.csv", table);
    await writeFile(join(format.dir, "py-out.csv"), output);
    const script = [
      "import csv, json, sys",
      "shape = lambda p: [len(r) for r in csv.reader(open(p, newline='', encoding='utf-8'), delimiter=';')]",
      "print(json.dumps([shape(sys.argv[1]), shape(sys.argv[2])]))",
    ].join("\n");
    const [before, after] = JSON.parse(runPython(script, [join(format.dir, "py-in.csv"), join(format.dir, "py-out.csv")])) as number[][];
    expect(after).toEqual(before);
    expect(after).toEqual([5, 5, 5]);
  });

  test("pandas reads the same frame shape", async () => {
    if (!pythonHas("pandas")) {
      // CI installs python3-pandas, so a missing module there is a failure.
      if (process.env.CI === "true") throw new Error("python3-pandas is missing");
      return;
    }
    await writeFile(join(format.dir, "pd-in.csv"), table);
    const { output } = await format.run("pd.csv", table);
    await writeFile(join(format.dir, "pd-out.csv"), output);
    const script = [
      "import json, sys, pandas",
      "read = lambda p: pandas.read_csv(p, sep=';', decimal=',', dtype={'patient_id': str})",
      "a, b = read(sys.argv[1]), read(sys.argv[2])",
      "print(json.dumps([list(a.shape), list(b.shape), list(a.columns) == list(b.columns), b['dose'].tolist()]))",
    ].join("\n");
    const [before, after, sameColumns, doses] = JSON.parse(runPython(script, [join(format.dir, "pd-in.csv"), join(format.dir, "pd-out.csv")]));
    expect(after).toEqual(before);
    expect(sameColumns).toBe(true);
    expect(doses).toEqual([1.8, 2.0]);
  });
});

describe("csv through the CLI", () => {
  let tree: TestTree;

  beforeEach(async () => {
    tree = await makeTestTree({ include: ["12345678/C1_2019/CT"] });
  });

  afterEach(async () => {
    await tree.cleanup();
  });

  test("leaves no identifier in a cohort table", async () => {
    await mkdir(join(tree.input, "tables"));
    const cohort = [
      "Patient ID\tPatient Name\tDOB\tCourse\tPlan Date\tReviewer\tD95",
      "12345678\tJane Doe\t03/16/1947\tC1_2019\t03/15/2019\tDr. Ravi Patel\t77.2",
      "12345678\tDOE^JANE^M\t16.03.1947\tC2_2021\t2021-05-04\tTom Brown\t76.9",
      "",
    ].join("\n");
    await writeFile(join(tree.input, "tables", "cohort.tsv"), cohort);

    const run = await anonymizeTree(tree, "output");
    expect(await expectExitMatchesReport(run)).toBe(0);

    const files = await readTreeFiles(run.output);
    const table = files.find((file) => file.relativePath === "tables/cohort.tsv");
    expect(table).toBeDefined();
    for (const file of files) {
      const text = `${file.relativePath}\n${file.bytes.toString("latin1")}`;
      for (const planted of ["12345678", "DOE", "Jane", "03/16/1947", "16.03.1947", "03/15/2019", "2021-05-04", "Patel", "Brown", "C1_2019", "C2_2021"]) {
        expect(new RegExp(`(?<![\\p{L}\\p{N}])${planted}(?![\\p{L}\\p{N}])`, "iu").test(text), `${planted} in ${file.relativePath}`).toBe(false);
      }
    }

    const rows = table!.bytes.toString("utf8").split("\n").map((row) => row.split("\t"));
    expect(rows.map((row) => row.length)).toEqual([7, 7, 7, 1]);
    expect(rows[1][6]).toBe("77.2");
    expect(rows[1][0]).toBe(rows[2][0]);
    expect(rows[1][0]).toMatch(/^PAT-/);
    await expect(readFile(join(tree.input, "tables", "cohort.tsv"), "utf8")).resolves.toBe(cohort);
  });
});
