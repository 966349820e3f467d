import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { QuarantineReason } from "../../src/deid/apply.js";
import { TextCleaner } from "../../src/deid/cleaner.js";
import { LimitError } from "../../src/errors.js";
import { jsonFormat } from "../../src/formats/json.js";
import { anonymizeTree, expectExitMatchesReport } from "../helpers/cli.js";
import { makeTestTree, readTreeFiles, type TestTree } from "../helpers/tree.js";
import { makeFormatRun, pythonHas, runPython, seedSamplePatient, type FormatRun } from "./format-context.js";

/** Adds `days` to an ISO date, computed independently of the code under test. */
function shiftIso(iso: string, days: number): string {
  const date = new Date(`${iso}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

const compactIso = (iso: string): string => iso.replaceAll("-", "");

let format: FormatRun;

beforeEach(async () => {
  format = await makeFormatRun(jsonFormat, (registry) => void seedSamplePatient(registry));
});

afterEach(async () => {
  await format.cleanup();
});

async function rewrite(document: unknown, options?: Parameters<FormatRun["run"]>[2]): Promise<{ text: string; value: any; replacements: number }> {
  const { output, replacements } = await format.run("result.json", JSON.stringify(document, null, 2), options);
  const text = output.toString("utf8");
  return { text, value: JSON.parse(text), replacements };
}

describe("json sidecar", () => {
  const sidecar = {
    Modality: "CT",
    PatientID: "12345678",
    PatientName: "DOE^JANE^M",
    PatientBirthDate: "1947-03-16",
    PatientSex: "F",
    PatientAge: "072Y",
    AcquisitionDateTime: "2019-03-15T10:23:45.123456",
    AcquisitionTime: "10:23:45.123456",
    StudyInstanceUID: "1.2.826.0.1.3680043.10.1234.1",
    SeriesInstanceUID: "1.2.826.0.1.3680043.10.1234.1.1",
    InstitutionName: "Riverside Cancer Centre",
    InstitutionAddress: "1 Hospital Road, Riverton RV1 2AB, UK",
    InstitutionalDepartmentName: "Radiotherapy Physics",
    StationName: "RCC-CT01",
    DeviceSerialNumber: "CT88231",
    ReferringPhysicianName: "SMITH^JOHN^^DR",
    AccessionNumber: "A19-004512",
    ImageComments: "Jane Doe, planning CT",
    SliceThickness: 2.5,
    ConversionSoftwareVersion: "v1.0.20220720",
  };

  test("rewrites each identifier by its key", async () => {
    const patient = format.patient("12345678");
    const { value } = await rewrite(sidecar);
    expect(value.PatientID).toBe(patient.pseudonymId);
    expect(value.PatientName).toBe(patient.pseudonymName);
    expect(value.PatientBirthDate).toBe("[DATE]");
    expect(value.PatientAge).toBe("072Y");
    expect(value.PatientSex).toBe("F");
    expect(value.AcquisitionDateTime).toBe(`${shiftIso("2019-03-15", patient.shiftDays)}T10:23:45.123456`);
    expect(value.AcquisitionTime).toBe("10:23:45.123456");
    expect(value.StudyInstanceUID).toMatch(/^2\.25\.\d+$/);
    expect(value.SeriesInstanceUID).toMatch(/^2\.25\.\d+$/);
    expect(value.InstitutionName).toBe("[INSTITUTION]");
    expect(value.InstitutionAddress).toBe("[INSTITUTION]");
    expect(value.InstitutionalDepartmentName).toBe("[INSTITUTION]");
    expect(value.StationName).toBe("[DEVICE]");
    expect(value.DeviceSerialNumber).toBe("[DEVICE]");
    expect(value.ReferringPhysicianName).toBe("[NAME]");
    expect(value.AccessionNumber).toBe("[ID]");
    expect(value.ImageComments).toBe(`${patient.pseudonymName}, planning CT`);
    expect(value.SliceThickness).toBe(2.5);
    expect(value.ConversionSoftwareVersion).toBe("v1.0.20220720");
    expect(value.Modality).toBe("CT");
  });

  test("leaves no planted identifier", async () => {
    const { text } = await rewrite(sidecar);
    for (const planted of ["12345678", "DOE", "Jane", "1947", "2019-03-15", "Riverside", "Hospital Road", "Radiotherapy Physics", "RCC-CT01", "CT88231", "SMITH", "A19-004512", "1.2.826.0.1.3680043"]) {
      expect(text, planted).not.toContain(planted);
    }
  });

  test("places dates as placeholders without date shifting", async () => {
    const { value } = await rewrite(sidecar, { shiftDates: false });
    expect(value.AcquisitionDateTime).toBe("[DATE]");
  });

  test("teaches the registry the sidecar's identifiers", async () => {
    await format.run("other.json", JSON.stringify({ PatientID: "H-7781-2203", PatientName: "Jörg Müller", ReferringPhysicianName: "Dr. Ravi Patel", PatientBirthDate: "1958-07-22" }));
    const cleaner = new TextCleaner(format.registry.allTerms(), (uid) => uid);
    const text = cleaner.clean("Müller, Jörg (H-7781-2203) born 22.07.1958, seen by Dr. Patel").text;
    expect(text).not.toContain("Müller");
    expect(text).not.toContain("H-7781-2203");
    expect(text).not.toContain("22.07.1958");
    expect(text).not.toContain("Patel");
    expect(text).toContain(format.patient("H-7781-2203").pseudonymId);
  });
});

describe("json records", () => {
  test("shifts each object's dates by its own patient", async () => {
    const first = format.patient("12345678");
    const second = format.patient("AB-0042");
    const { value } = await rewrite({
      cohort: [
        { patient_id: "12345678", plan_date: "2019-03-15", notes: "ok" },
        { plan_date: "2021-06-01", patient_id: "AB-0042" },
      ],
    });
    expect(value.cohort[0]).toEqual({ patient_id: first.pseudonymId, plan_date: shiftIso("2019-03-15", first.shiftDays), notes: "ok" });
    expect(value.cohort[1]).toEqual({ plan_date: shiftIso("2021-06-01", second.shiftDays), patient_id: second.pseudonymId });
    expect(first.shiftDays).not.toBe(second.shiftDays);
  });

  test("takes the patient from a nested patient object", async () => {
    const patient = format.patient("0099887");
    const { value } = await rewrite({
      plan: { date: "2020-01-31", name: "Prostate 78Gy" },
      patient: { id: "0099887", name: "Jane Roe", birth_date: "1950-02-01", age: 95, sex: "F" },
      reviewers: [{ name: "Alice Jones" }],
      review: { reviewer: "Tom Brown", date: 20200203 },
    });
    expect(value.patient).toEqual({ id: patient.pseudonymId, name: patient.pseudonymName, birth_date: "[DATE]", age: 90, sex: "F" });
    expect(value.plan).toEqual({ date: shiftIso("2020-01-31", patient.shiftDays), name: "Prostate 78Gy" });
    expect(value.reviewers).toEqual([{ name: "[NAME]" }]);
    expect(value.review).toEqual({ reviewer: "[NAME]", date: Number(compactIso(shiftIso("2020-02-03", patient.shiftDays))) });
  });

  test("uses the folder patient without an ID", async () => {
    const patient = format.patient("12345678");
    const { value } = await rewrite({ review_date: "2019-03-20", reviewer_name: "Smith" }, { folderPatient: "12345678" });
    expect(value.review_date).toBe(shiftIso("2019-03-20", patient.shiftDays));
  });

  test("replaces dates of an unknown patient", async () => {
    const { value } = await rewrite({ review_date: "2019-03-20", created_at: 1552608000 });
    expect(value.review_date).toBe("[DATE]");
    expect(value.created_at).toBeNull();
  });

  test("gives each ID in a list its own patient", async () => {
    const { value } = await rewrite({ patient_ids: ["12345678", "AB-0042", 12345678] });
    const first = format.patient("12345678").pseudonymId;
    expect(value.patient_ids).toEqual([first, format.patient("AB-0042").pseudonymId, first]);
  });

  test("maps other IDs of an object to its patient", async () => {
    const patient = format.patient("12345678");
    const { value } = await rewrite({ PatientID: "12345678", OtherPatientIDs: "H-1234-9", mrn: 55512 });
    expect(value).toEqual({ PatientID: patient.pseudonymId, OtherPatientIDs: patient.pseudonymId, mrn: patient.pseudonymId });
  });
});

describe("json numbers", () => {
  test("keeps numbers unless they identify", async () => {
    const patient = format.patient("12345678");
    const { value } = await rewrite({
      patient_id: 12345678,
      plan_date: 20190315,
      created_at: 1552608000,
      updated_timestamp: 1552608000123,
      birth_date: 19470316,
      accession: 4512,
      age: 72,
      dose: 1.8,
      fractions: 39,
    });
    expect(value).toEqual({
      patient_id: patient.pseudonymId,
      plan_date: Number(compactIso(shiftIso("2019-03-15", patient.shiftDays))),
      created_at: 1552608000 + patient.shiftDays * 86400,
      updated_timestamp: 1552608000123 + patient.shiftDays * 86400000,
      birth_date: null,
      accession: null,
      age: 72,
      dose: 1.8,
      fractions: 39,
    });
  });

  test("finds a patient through an ID without leading zeros", async () => {
    const padded = format.patient("0012345");
    const { value } = await rewrite({ patient_id: 12345, plan_date: "2019-03-15" });
    expect(value.patient_id).toBe(padded.pseudonymId);
    expect(value.plan_date).toBe(shiftIso("2019-03-15", padded.shiftDays));
  });
});

describe("json layout", () => {
  test("copies a document without identifiers byte for byte", async () => {
    const text = '\uFEFF{\n\t"b": 1.0,\n\t"2": [1e5, -0.0, NaN, Infinity, -Infinity, true, null],\n\t"b": "dup",\n\t"s": "caf\\u00e9 \\/ \\"q\\""  }\r\n';
    const { output, replacements } = await format.run("plain.json", text);
    expect(output.toString("utf8")).toBe(text);
    expect(replacements).toBe(0);
  });

  test("changes only the replaced tokens", async () => {
    const text = '{"PatientID":"12345678","n":[1.50,2E3],\n    "PatientName" :  "DOE^JANE^M" }';
    const patient = format.patient("12345678");
    const { output } = await format.run("min.json", text);
    expect(output.toString("utf8")).toBe(`{"PatientID":"${patient.pseudonymId}","n":[1.50,2E3],\n    "PatientName" :  "${patient.pseudonymName}" }`);
  });

  test("cleans keys", async () => {
    const patient = format.patient("12345678");
    const { output } = await format.run("keys.json", '{"12345678": {"dose": 2}, "Jane Doe": 1, "2019-03-15": 0}');
    const shifted = shiftIso("2019-03-15", patient.shiftDays);
    expect(output.toString("utf8")).toBe(`{"${patient.pseudonymId}": {"dose": 2}, "${patient.pseudonymName}": 1, "[DATE]": 0}`);
    const inFolder = await format.run("keys.json", '{"2019-03-15": 0}', { folderPatient: "12345678" });
    expect(inFolder.output.toString("utf8")).toBe(`{"${shifted}": 0}`);
  });

  test("keeps escaped non-ASCII text escaped", async () => {
    const patient = format.patient("12345678");
    const text = '{"comment": "Gr\\u00fc\\u00dfe an Jane Doe"}';
    const { output } = await format.run("ascii.json", text);
    expect(output.toString("utf8")).toBe(`{"comment": "Gr\\u00fc\\u00dfe an ${patient.pseudonymName}"}`);
  });

  test("rewrites DICOM JSON by tag", async () => {
    const patient = format.patient("12345678");
    const dataset = {
      "00080020": { vr: "DA", Value: ["20190315"] },
      "00080090": { vr: "PN", Value: [{ Alphabetic: "SMITH^JOHN" }] },
      "00100010": { vr: "PN", Value: [{ Alphabetic: "DOE^JANE^M" }] },
      "00100020": { vr: "LO", Value: ["12345678"] },
      "00100030": { vr: "DA", Value: ["19470316"] },
    };
    const { value } = await rewrite(dataset);
    expect(value["00080020"]).toEqual({ vr: "DA", Value: [compactIso(shiftIso("2019-03-15", patient.shiftDays))] });
    expect(value["00080090"]).toEqual({ vr: "PN", Value: [{ Alphabetic: "[NAME]" }] });
    expect(value["00100010"]).toEqual({ vr: "PN", Value: [{ Alphabetic: patient.pseudonymName }] });
    expect(value["00100020"]).toEqual({ vr: "LO", Value: [patient.pseudonymId] });
    expect(value["00100030"]).toEqual({ vr: "DA", Value: ["[DATE]"] });
  });
});

describe("json rejects", () => {
  const invalid: Array<[string, string]> = [
    ["truncated", '{"PatientID": "12345678"'],
    ["trailing text", '{"a": 1} x'],
    ["single quotes", "{'PatientID': '12345678'}"],
    ["bad escape", '{"a": "\\x12345678"}'],
    ["trailing comma", '{"a": [1,]}'],
    ["empty", ""],
    ["raw control character", '{"a": "12345678\u0001"}'],
  ];
  test.each(invalid)("%s as JSON_INVALID", async (_, text) => {
    const error = await format.run("bad.json", text).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(QuarantineReason);
    expect((error as QuarantineReason).reasonCode).toBe("JSON_INVALID");
    expect((error as Error).message).not.toContain("12345678");
  });

  test("invalid UTF-8 as JSON_ENCODING", async () => {
    const error = await format.run("latin1.json", Buffer.from('{"name": "M\xfcller"}', "latin1")).catch((caught: unknown) => caught);
    expect((error as QuarantineReason).reasonCode).toBe("JSON_ENCODING");
  });

  test("deep nesting as LimitError", async () => {
    const error = await format.run("deep.json", "[".repeat(600) + "]".repeat(600)).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LimitError);
  });
});

describe("json read by Python", () => {
  test("output has the input's shape", async () => {
    if (!pythonHas("json")) throw new Error("/usr/bin/python3 is missing");
    const input = {
      PatientID: "12345678",
      results: [{ structure: "PTV", d95: 77.1, date: "2019-03-20" }, { structure: "Rectum", v70: [0.1, 0.2], ok: true }],
      birth_date: 19470316,
      nothing: null,
    };
    await writeFile(join(format.dir, "shape-in.json"), JSON.stringify(input));
    const { output } = await format.run("shape.json", JSON.stringify(input));
    await writeFile(join(format.dir, "shape-out.json"), output);
    const script = [
      "import json, sys",
      "def shape(x):",
      "    if isinstance(x, dict): return ['object', len(x), [shape(v) for v in x.values()]]",
      "    if isinstance(x, list): return ['array', [shape(v) for v in x]]",
      "    return 'scalar'",
      "a = json.load(open(sys.argv[1], encoding='utf-8'))",
      "b = json.load(open(sys.argv[2], encoding='utf-8'))",
      "print(json.dumps([shape(a) == shape(b), list(a) == list(b)]))",
    ].join("\n");
    expect(JSON.parse(runPython(script, [join(format.dir, "shape-in.json"), join(format.dir, "shape-out.json")]))).toEqual([true, true]);
  });
});

describe("json through the CLI", () => {
  let tree: TestTree;

  beforeEach(async () => {
    tree = await makeTestTree({ include: ["12345678/C1_2019/CT"] });
  });

  afterEach(async () => {
    await tree.cleanup();
  });

  test("leaves no identifier in a results file", async () => {
    const resultsDir = join(tree.input, "12345678", "C1_2019", "results");
    await mkdir(resultsDir);
    await writeFile(
      join(resultsDir, "dvh.json"),
      JSON.stringify(
        {
          patient: "12345678",
          course_id: "C1_2019",
          name: "Doe, Jane",
          dob: "16.03.1947",
          plan_date: "2019-03-15",
          reviewer: "Dr. Ravi Patel",
          notes: "Jane Doe tolerated treatment; MRN 12345678",
          metrics: { PTV: { D95: 77.2 } },
        },
        null,
        4,
      ),
    );
    await writeFile(join(tree.input, "sidecar.json"), JSON.stringify({ PatientName: "DOE^JANE^M", PatientID: "12345678", AcquisitionDateTime: "2019-03-15T10:00:00" }));

    const run = await anonymizeTree(tree, "output");
    expect(await expectExitMatchesReport(run)).toBe(0);

    const files = await readTreeFiles(run.output);
    const jsonFiles = files.filter((file) => file.relativePath.endsWith(".json"));
    expect(jsonFiles).toHaveLength(2);
    for (const file of files) {
      const text = `${file.relativePath}\n${file.bytes.toString("latin1")}`;
      for (const planted of ["12345678", "DOE", "Jane", "16.03.1947", "1947-03-16", "2019-03-15", "Patel", "C1_2019"]) {
        expect(new RegExp(`(?<![\\p{L}\\p{N}])${planted}(?![\\p{L}\\p{N}])`, "iu").test(text), `${planted} in ${file.relativePath}`).toBe(false);
      }
    }

    const dvhText = jsonFiles.find((file) => file.relativePath.endsWith("dvh.json"))!.bytes.toString("utf8");
    const dvh = JSON.parse(dvhText);
    expect(dvh.metrics).toEqual({ PTV: { D95: 77.2 } });
    expect(dvh.course_id).toMatch(/^C-[0-9A-Z]{8}$/);
    // The input's four-space indentation is kept, and the input itself is unchanged.
    expect(dvhText).toContain('\n    "metrics": {\n        "PTV"');
    await expect(readFile(join(tree.input, "sidecar.json"), "utf8")).resolves.toContain("DOE^JANE^M");
  });
});
