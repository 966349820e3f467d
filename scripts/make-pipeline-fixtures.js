#!/usr/bin/env node
// Writes the synthetic pipeline tree and the list of identifiers planted in
// it. The tree has the DICOM files of the sample tree plus what research
// pipelines leave next to them: case metadata JSON, DVH tables as CSV and
// XLSX, a Parquet radiomics table, NIfTI volumes with dcm2niix sidecars, QC
// reports, logs, cohort tables and an upload archive.
//
// Usage: node scripts/make-pipeline-fixtures.js [outDir]
//   outDir defaults to fixtures/pipeline; the list goes to <outDir>.planted.json.
//
// The output is byte-for-byte deterministic: gzip and zip members are stored
// without compression (so no zlib build can change the bytes), zip entries
// carry a fixed date, and nothing depends on the clock or on random numbers.

import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import archiver from "archiver";
import { parquetWriteBuffer } from "hyparquet-writer";

import { EXTRA_FORMS, PATIENTS } from "./fixtures/people.js";
import { buildSampleTree } from "./make-fixtures.js";

const DEFAULT_OUT_DIR = fileURLToPath(new URL("../fixtures/pipeline", import.meta.url));

/** First line of README.txt, which marks a folder as a generated pipeline tree. */
export const PIPELINE_README_MARKER = "deidkit pipeline tree";

const README_TEXT = `${PIPELINE_README_MARKER}

A synthetic radiotherapy research tree written by
scripts/make-pipeline-fixtures.js: the DICOM files of fixtures/sample plus
pipeline outputs next to them. Every name, ID, date and UID in it is invented.

Do not edit by hand: run node scripts/make-pipeline-fixtures.js to regenerate.
`;

/** Date of every zip entry, in UTC (archiver writes UTC DOS times by default). */
const ZIP_ENTRY_DATE = new Date(Date.UTC(2020, 0, 1, 0, 0, 0));

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/** Formats a DICOM DA value (YYYYMMDD) as YYYY-MM-DD. */
function isoDate(da) {
  return `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}`;
}

/** Formats a DICOM DA value as DD.MM.YYYY. */
function germanDate(da) {
  return `${da.slice(6, 8)}.${da.slice(4, 6)}.${da.slice(0, 4)}`;
}

/** Formats a DICOM DA value as MM/DD/YYYY. */
function usDate(da) {
  return `${da.slice(4, 6)}/${da.slice(6, 8)}/${da.slice(0, 4)}`;
}

/** Formats a DICOM DA value as "18 April 2019". */
function longDate(da) {
  return `${Number(da.slice(6, 8))} ${MONTHS[Number(da.slice(4, 6)) - 1]} ${da.slice(0, 4)}`;
}

/** Formats a DICOM DA value and TM value (HHMMSS) as YYYY-MM-DDTHH:MM:SS. */
function isoDateTime(da, tm) {
  return `${isoDate(da)}T${tm.slice(0, 2)}:${tm.slice(2, 4)}:${tm.slice(4, 6)}`;
}

/** Staff spellings of the pipeline files, per patient number, all taken from EXTRA_FORMS. */
const PIPELINE_STAFF = {
  1: { reviewer: "Dr. Ravi Patel", referring: "Dr John Smith" },
  2: { reviewer: "Dr. Anna Schmidt", referring: "Dr. Anna Schmidt" },
};

/** Per-patient spellings used in the pipeline files, all in the planted list. */
function patientForms(patient) {
  const extra = EXTRA_FORMS[patient.number];
  return {
    natural: extra.patientNames.find((name) => /^\p{L}+ \p{L}+$/u.test(name) && name !== name.toUpperCase()),
    commaName: extra.patientNames.find((name) => name.includes(", ")),
    birthIso: isoDate(patient.birthDate),
    ...PIPELINE_STAFF[patient.number],
  };
}

function caseMetadata(patient, course) {
  const forms = patientForms(patient);
  const metadata = {
    patient_id: patient.id,
    patient_name: forms.natural,
    patient_birth_date: forms.birthIso,
    course_id: course.dir,
    course_key: `${patient.id}_${course.dir}`,
    reviewer_name: forms.reviewer,
    physicians_of_record: [patient.staff.ofRecord],
    referring_physician: forms.referring,
    operators_name: patient.staff.operator,
    plan_date: isoDate(course.planDate),
    review_date: isoDate(course.reviewDate),
    patient_age_at_plan: course.age,
    prescription_gy: 60,
    fractions: 30,
  };
  return `${JSON.stringify(metadata, null, 2)}\n`;
}

const STRUCTURES = [
  ["PTV", 58.9],
  ["CTV", 59.6],
  ["Parotid_L", 21.4],
];

/** DVH rows of one course: patient_id, course_id, structure, D95, plan_date. */
function dvhRows(patient, course) {
  return STRUCTURES.map(([structure, d95], index) => [
    patient.id,
    course.dir,
    structure,
    (d95 - index * 0.1 - patient.number * 0.2).toFixed(1),
    isoDate(course.planDate),
  ]);
}

const DVH_HEADER = ["patient_id", "course_id", "structure", "D95", "plan_date"];

function csvText(header, rows) {
  return [header, ...rows].map((row) => row.join(",")).join("\r\n") + "\r\n";
}

function xmlEscape(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Returns a column letter for a 0-based index below 26. */
function columnLetter(index) {
  return String.fromCharCode(65 + index);
}

/**
 * Builds the XML parts of a one-sheet workbook. Text cells go to the
 * shared strings table, numeric text (D95) is written as a number cell.
 */
function workbookParts(rows, creator, title) {
  const strings = [];
  const stringIndex = new Map();
  const shared = (text) => {
    if (!stringIndex.has(text)) {
      stringIndex.set(text, strings.length);
      strings.push(text);
    }
    return stringIndex.get(text);
  };
  const rowXml = rows.map((row, rowIndex) => {
    const cells = row.map((value, columnIndex) => {
      const ref = `${columnLetter(columnIndex)}${rowIndex + 1}`;
      if (typeof value === "number") return `<c r="${ref}"><v>${value}</v></c>`;
      return `<c r="${ref}" t="s"><v>${shared(value)}</v></c>`;
    });
    return `<row r="${rowIndex + 1}">${cells.join("")}</row>`;
  });
  const declaration = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n';
  const main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
  const officeRel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
  const packageRel = "http://schemas.openxmlformats.org/package/2006/relationships";
  return [
    [
      "[Content_Types].xml",
      `${declaration}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
        '<Default Extension="xml" ContentType="application/xml"/>' +
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>' +
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' +
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>' +
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>' +
        "</Types>",
    ],
    [
      "_rels/.rels",
      `${declaration}<Relationships xmlns="${packageRel}">` +
        `<Relationship Id="rId1" Type="${officeRel}/officeDocument" Target="xl/workbook.xml"/>` +
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>' +
        "</Relationships>",
    ],
    [
      "docProps/core.xml",
      `${declaration}<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" ` +
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" ' +
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
        `<dc:title>${xmlEscape(title)}</dc:title><dc:creator>${xmlEscape(creator)}</dc:creator>` +
        `<cp:lastModifiedBy>${xmlEscape(creator)}</cp:lastModifiedBy>` +
        "</cp:coreProperties>",
    ],
    [
      "xl/workbook.xml",
      `${declaration}<workbook xmlns="${main}" xmlns:r="${officeRel}"><sheets>` +
        '<sheet name="DVH" sheetId="1" r:id="rId1"/></sheets></workbook>',
    ],
    [
      "xl/_rels/workbook.xml.rels",
      `${declaration}<Relationships xmlns="${packageRel}">` +
        `<Relationship Id="rId1" Type="${officeRel}/worksheet" Target="worksheets/sheet1.xml"/>` +
        `<Relationship Id="rId2" Type="${officeRel}/sharedStrings" Target="sharedStrings.xml"/>` +
        "</Relationships>",
    ],
    [
      "xl/worksheets/sheet1.xml",
      `${declaration}<worksheet xmlns="${main}"><sheetData>${rowXml.join("")}</sheetData></worksheet>`,
    ],
    [
      "xl/sharedStrings.xml",
      `${declaration}<sst xmlns="${main}" count="${strings.length}" uniqueCount="${strings.length}">` +
        strings.map((text) => `<si><t>${xmlEscape(text)}</t></si>`).join("") +
        "</sst>",
    ],
  ].map(([name, text]) => ({ name, bytes: Buffer.from(text, "utf8") }));
}

/** Builds a zip archive of stored (uncompressed) members with a fixed date. */
async function zipBytes(members) {
  const archive = archiver("zip", { store: true });
  const sink = new PassThrough();
  const chunks = [];
  sink.on("data", (chunk) => chunks.push(chunk));
  const finished = new Promise((resolve, reject) => {
    sink.on("end", resolve);
    archive.on("error", reject);
  });
  archive.pipe(sink);
  for (const member of members) archive.append(member.bytes, { name: member.name, date: ZIP_ENTRY_DATE, mode: 0o644 });
  await archive.finalize();
  await finished;
  return Buffer.concat(chunks);
}

/**
 * Builds a workbook with an optional title row above the header row. D95
 * values become number cells, everything else shared strings.
 */
function workbook({ titleRow, header, rows, creator, title }) {
  const typed = rows.map((row) => row.map((value, index) => (header[index] === "D95" ? Number(value) : value)));
  return zipBytes(workbookParts([...(titleRow ? [titleRow] : []), header, ...typed], creator, title));
}

/** Wraps bytes in gzip with stored deflate blocks and a fixed header (mtime 0, OS Unix). */
function storedGzip(bytes) {
  const gz = gzipSync(bytes, { level: 0 });
  gz[9] = 3;
  return gz;
}

const NIFTI_HEADER_BYTES = 348;
const NIFTI_VOX_OFFSET = 352;
const DT_UINT8 = 2;
const DT_INT16 = 4;

/**
 * Builds a single-file NIfTI-1 image (n+1) of 4x4x2 voxels with 1 mm x 1 mm
 * x 3 mm spacing, an identity-like sform and the given descrip (80 bytes
 * at most). `datatype` is DT_INT16 or DT_UINT8.
 */
function niftiBytes({ datatype, descrip, voxel }) {
  const dims = [4, 4, 2];
  const bytesPerVoxel = datatype === DT_INT16 ? 2 : 1;
  const count = dims[0] * dims[1] * dims[2];
  const buffer = Buffer.alloc(NIFTI_VOX_OFFSET + count * bytesPerVoxel);
  buffer.writeInt32LE(NIFTI_HEADER_BYTES, 0);
  [3, ...dims, 1, 1, 1, 1].forEach((value, index) => buffer.writeInt16LE(value, 40 + index * 2));
  buffer.writeInt16LE(datatype, 70);
  buffer.writeInt16LE(bytesPerVoxel * 8, 72);
  [1, 1, 1, 3, 0, 0, 0, 0].forEach((value, index) => buffer.writeFloatLE(value, 76 + index * 4));
  buffer.writeFloatLE(NIFTI_VOX_OFFSET, 108);
  buffer.writeFloatLE(1, 112); // scl_slope
  buffer.writeUInt8(10, 123); // xyzt_units: mm and seconds
  buffer.write(descrip, 148, 80, "latin1");
  buffer.writeInt16LE(1, 252); // qform_code: scanner
  buffer.writeInt16LE(1, 254); // sform_code: scanner
  [1, 0, 0, -1.5].forEach((value, index) => buffer.writeFloatLE(value, 280 + index * 4));
  [0, 1, 0, -1.5].forEach((value, index) => buffer.writeFloatLE(value, 296 + index * 4));
  [0, 0, 3, 0].forEach((value, index) => buffer.writeFloatLE(value, 312 + index * 4));
  buffer.write("n+1\0", 344, "latin1");
  // The 4 bytes at 348 stay zero: no header extensions.
  for (let index = 0; index < count; index += 1) {
    const value = voxel(index);
    if (datatype === DT_INT16) buffer.writeInt16LE(value, NIFTI_VOX_OFFSET + index * 2);
    else buffer.writeUInt8(value, NIFTI_VOX_OFFSET + index);
  }
  return buffer;
}

/** Returns the dcm2niix-style sidecar of the CT volume. */
function niftiSidecar(patient, course) {
  const sidecar = {
    Modality: "CT",
    Manufacturer: "Synthetic",
    InstitutionName: patient.site.institutionName,
    PatientName: patient.name,
    PatientID: patient.id,
    PatientBirthDate: isoDate(patient.birthDate),
    AcquisitionDateTime: `${isoDateTime(course.studyDate, course.studyTime)}.000000`,
    SeriesDescription: patient.freeText.seriesDescription,
    SliceThickness: 3,
    ConversionSoftware: "dcm2niix",
  };
  return `${JSON.stringify(sidecar, null, "\t")}\n`;
}

function qcReport(patient, course) {
  const forms = patientForms(patient);
  return [
    `QC report for ${forms.commaName} (MRN ${patient.id})`,
    `Date of birth: ${germanDate(patient.birthDate)}`,
    `Planning CT acquired ${longDate(course.studyDate)}, plan dated ${usDate(course.planDate)}.`,
    `Reviewed ${isoDate(course.reviewDate)} by ${forms.reviewer}: contours accepted.`,
    "Result: PASS (gamma 3%/3mm 99.1%)",
    "",
  ].join("\n");
}

function runLog(patient, course) {
  const forms = patientForms(patient);
  // ISO 8601 date-times ("2019-04-18T10:15:00") put a letter right after the date.
  const stamp = `${isoDate(course.planDate)}T10:15:00`;
  return [
    `${stamp} INFO  start pipeline for patient ${patient.id} course ${course.dir}`,
    `${stamp} INFO  loaded CT of ${forms.natural}, study date ${course.studyDate}`,
    `${stamp} INFO  converted to NIfTI: NIFTI/ct.nii.gz (descrip "${forms.commaName} ${patient.id}")`,
    `${stamp} WARN  birth date ${usDate(patient.birthDate)} older than cohort median`,
    `${stamp} INFO  wrote dvh_metrics.csv for ${patient.name}, plan ${germanDate(course.planDate)}`,
    `${stamp} INFO  done`,
    "",
  ].join("\n");
}

/** Radiomics table: patient_id, feature, value and scan_date, stored uncompressed. */
function radiomicsParquet(patient, course) {
  const features = ["original_firstorder_Mean", "original_firstorder_Entropy", "original_shape_Volume"];
  const values = [31.5 + patient.number, 4.25, 120.5 * patient.number];
  const arrayBuffer = parquetWriteBuffer({
    columnData: [
      { name: "patient_id", data: features.map(() => patient.id), type: "STRING" },
      { name: "feature", data: features, type: "STRING" },
      { name: "value", data: values, type: "DOUBLE" },
      { name: "scan_date", data: features.map(() => isoDate(course.studyDate)), type: "STRING" },
    ],
    codec: "UNCOMPRESSED",
  });
  return Buffer.from(arrayBuffer);
}

/** Builds the pipeline files of one course folder. */
async function courseFiles(patient, course) {
  const forms = patientForms(patient);
  const folder = `${patient.id}/${course.dir}`;
  const rows = dvhRows(patient, course);
  const file = (relative, content) => ({
    path: `${folder}/${relative}`,
    bytes: Buffer.isBuffer(content) ? content : Buffer.from(content, "utf8"),
  });
  return [
    file("metadata/case_metadata.json", caseMetadata(patient, course)),
    file("dvh_metrics.csv", csvText(DVH_HEADER, rows)),
    file("dvh_metrics.xlsx", await workbook({ titleRow: [`DVH of ${forms.natural}`], header: DVH_HEADER, rows, creator: forms.reviewer, title: `DVH ${patient.id}` })),
    file("radiomics_ct.parquet", radiomicsParquet(patient, course)),
    file(
      "NIFTI/ct.nii.gz",
      storedGzip(niftiBytes({ datatype: DT_INT16, descrip: `${forms.commaName} ${patient.id}`, voxel: (index) => -1000 + index * 37 })),
    ),
    file("NIFTI/ct.json", niftiSidecar(patient, course)),
    file(
      "Segmentation_PTV/ptv.nii.gz",
      storedGzip(niftiBytes({ datatype: DT_UINT8, descrip: `PTV ${patient.id} ${isoDate(course.planDate)}`, voxel: (index) => (index % 16 >= 5 && index % 16 <= 10 ? 1 : 0) })),
    ),
    file("qc_reports/qc.txt", qcReport(patient, course)),
    file("logs/run.log", runLog(patient, course)),
  ];
}

/** Builds the cohort tables and the upload archive at the top of the tree. */
async function topLevelFiles(dicomFiles) {
  const courses = PATIENTS.flatMap((patient) => patient.courses.map((course) => ({ patient, course })));
  const cohortRows = courses.flatMap(({ patient, course }) => dvhRows(patient, course));
  const cohortSheet = courses.map(({ patient, course }) => [
    patient.id,
    course.dir,
    patient.name,
    isoDate(patient.birthDate),
    isoDate(course.planDate),
  ]);
  const firstPatient = PATIENTS[0];
  const firstCourse = firstPatient.courses[0];
  const uploadDicom = dicomFiles.find((file) => file.path.startsWith(`${firstPatient.id}/${firstCourse.dir}/CT/`));
  const uploadNote = [
    `Upload for ${patientForms(firstPatient).commaName}, MRN ${firstPatient.id}`,
    `Born ${longDate(firstPatient.birthDate)}; scanned ${germanDate(firstCourse.studyDate)}.`,
    "",
  ].join("\n");
  return [
    { path: "README.txt", bytes: Buffer.from(README_TEXT, "utf8") },
    { path: "_RESULTS/cohort_dvh.csv", bytes: Buffer.from(csvText(DVH_HEADER, cohortRows), "utf8") },
    {
      path: "Data/cohort.xlsx",
      bytes: await workbook({
        header: ["patient_id", "course_id", "patient_name", "birth_date", "plan_date"],
        rows: cohortSheet,
        creator: patientForms(PATIENTS[1]).reviewer,
        title: "Cohort",
      }),
    },
    {
      path: "upload.zip",
      bytes: await zipBytes([
        { name: `upload/${path.posix.basename(uploadDicom.path)}`, bytes: uploadDicom.bytes },
        { name: "upload/upload_note.txt", bytes: Buffer.from(uploadNote, "utf8") },
      ]),
    },
  ];
}

function unique(values) {
  return [...new Set(values)];
}

/**
 * Extends the sample tree's planted list with the spellings that only the
 * pipeline files use (ISO and other date forms, ISO date-times, course keys).
 */
function buildPipelinePlanted(samplePlanted) {
  const courses = PATIENTS.flatMap((patient) => patient.courses.map((course) => ({ patient, course })));
  const identifiers = structuredClone(samplePlanted.identifiers);
  identifiers.birthDates = unique([...identifiers.birthDates, ...PATIENTS.map((patient) => longDate(patient.birthDate))]);
  identifiers.dates = unique([
    ...identifiers.dates,
    ...courses.flatMap(({ course }) => [
      isoDate(course.studyDate),
      isoDate(course.planDate),
      isoDate(course.reviewDate),
      longDate(course.studyDate),
      germanDate(course.studyDate),
      germanDate(course.planDate),
      usDate(course.planDate),
    ]),
  ]);
  identifiers.dateTimes = unique([
    ...identifiers.dateTimes,
    ...courses.map(({ course }) => isoDateTime(course.studyDate, course.studyTime)),
    // The run logs' time stamps (see runLog).
    ...courses.map(({ course }) => `${isoDate(course.planDate)}T10:15:00`),
  ]);
  identifiers.courseKeys = courses.map(({ patient, course }) => `${patient.id}_${course.dir}`);
  return { ...samplePlanted, identifiers, decoys: [...samplePlanted.decoys] };
}

/** Builds the whole pipeline tree in memory: its files and the planted-identifier list. */
export async function buildPipelineTree() {
  const sample = buildSampleTree();
  const dicomFiles = sample.files.filter((file) => /\/(CT|RTSTRUCT|RTPLAN|RTDOSE)\//.test(file.path));
  const files = [...dicomFiles];
  for (const patient of PATIENTS) {
    for (const course of patient.courses) files.push(...(await courseFiles(patient, course)));
  }
  files.push(...(await topLevelFiles(dicomFiles)));
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, planted: buildPipelinePlanted(sample.planted) };
}

/** True if `dir` is missing, empty or a tree this script wrote, the only folders it may replace. */
function isReplaceable(dir) {
  if (!existsSync(dir) || readdirSync(dir).length === 0) return true;
  const readme = path.join(dir, "README.txt");
  return existsSync(readme) && readFileSync(readme, "utf8").startsWith(PIPELINE_README_MARKER);
}

/**
 * Writes the tree to `<outDir>.tmp` and renames it into place, so a run that
 * fails while writing leaves `outDir` as it was.
 */
function writeTree(outDir, files) {
  if (!isReplaceable(outDir)) {
    throw new Error(
      `${outDir} exists and is not a generated pipeline tree (no README.txt starting ` +
        `"${PIPELINE_README_MARKER}"); choose an empty or new output folder`,
    );
  }
  const staging = `${outDir}.tmp`;
  const previous = `${outDir}.old`;
  rmSync(staging, { recursive: true, force: true });
  for (const file of files) {
    const target = path.join(staging, ...file.path.split("/"));
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, file.bytes);
  }
  rmSync(previous, { recursive: true, force: true });
  if (existsSync(outDir)) renameSync(outDir, previous);
  renameSync(staging, outDir);
  rmSync(previous, { recursive: true, force: true });
}

async function main(args) {
  if (args.length > 1 || args[0] === "-h" || args[0] === "--help") {
    console.error("usage: node scripts/make-pipeline-fixtures.js [outDir]");
    process.exit(2);
  }
  const outDir = path.resolve(args[0] ?? DEFAULT_OUT_DIR);
  const { files, planted } = await buildPipelineTree();
  mkdirSync(path.dirname(outDir), { recursive: true });
  writeTree(outDir, files);
  const plantedPath = `${outDir}.planted.json`;
  writeFileSync(`${plantedPath}.tmp`, `${JSON.stringify(planted, null, 2)}\n`);
  renameSync(`${plantedPath}.tmp`, plantedPath);
  const bytes = files.reduce((total, file) => total + file.bytes.length, 0);
  console.log(`wrote ${files.length} files (${bytes} bytes) to ${outDir}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(`make-pipeline-fixtures: error: ${error.message}`);
    process.exit(1);
  });
}
