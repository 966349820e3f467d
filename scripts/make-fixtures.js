#!/usr/bin/env node
// Writes the synthetic radiotherapy sample tree that the demo and the tests
// run on, and the list of identifiers planted in it.
//
// Usage: node scripts/make-fixtures.js [outDir]
//   outDir defaults to fixtures/sample; the list goes to <outDir>.planted.json.
//
// The output is byte-for-byte deterministic: every value is fixed in
// scripts/fixtures/, nothing depends on the clock or on random numbers.

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
import { fileURLToPath } from "node:url";

import { courseUids } from "./fixtures/common.js";
import { buildCtSlice } from "./fixtures/ct.js";
import { SLICE_Z } from "./fixtures/geometry.js";
import {
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  encodePart10,
} from "./fixtures/part10.js";
import { PATIENTS } from "./fixtures/people.js";
import { README_MARKER, README_TEXT, buildPlanted, courseNotes } from "./fixtures/planted.js";
import { buildDose } from "./fixtures/rtdose.js";
import { buildPlan } from "./fixtures/rtplan.js";
import { buildStructureSet } from "./fixtures/rtstruct.js";

const DEFAULT_OUT_DIR = fileURLToPath(new URL("../fixtures/sample", import.meta.url));

// Files that do not follow <Modality>.<SOPInstanceUID>.dcm, keyed by
// "<PatientID>/<course folder>/<object>". They cover a file name that
// contains the patient name, files without an extension (found by content)
// and one implicit VR little endian file.
const SPECIAL_FILES = {
  "12345678/C1_2019/CT4": { name: "Doe_Jane_CT_4.dcm" },
  "12345678/C2_2021/CT1": { name: "IM0001" },
  "AB-0042/Course_2/RS": { name: "Mueller_Joerg_RS.dcm" },
  "AB-0042/Course_2/RD": { name: "RD0001", transferSyntaxUid: IMPLICIT_VR_LITTLE_ENDIAN },
};

/**
 * Encodes one object and returns its tree entry. `key` is the object's short
 * name (CT1..CT4, RS, RP, RD), `folder` its modality folder.
 */
function objectFile(context, object, folder, key) {
  const { patient, course } = context;
  const special = SPECIAL_FILES[`${patient.id}/${course.dir}/${key}`] ?? {};
  const prefix = key.startsWith("CT") ? "CT" : key;
  const name = special.name ?? `${prefix}.${object.dataset.SOPInstanceUID}.dcm`;
  const bytes = encodePart10({
    dataset: object.dataset,
    privateElements: object.privateElements,
    transferSyntaxUid: special.transferSyntaxUid ?? EXPLICIT_VR_LITTLE_ENDIAN,
    sourceAeTitle: patient.site.tpsAeTitle,
  });
  return { path: path.posix.join(patient.id, course.dir, folder, name), bytes };
}

/** Returns every UID of one course, in a fixed order. */
function listCourseUids(uids) {
  const single = Object.values(uids).filter((value) => typeof value === "string");
  return [...single, ...SLICE_Z.map((_, slice) => uids.ctInstance(slice))];
}

/** Builds the files of one course: 4 CT slices, RTSTRUCT, RTPLAN, RTDOSE and notes.txt. */
function buildCourse(patient, course, courseIndex) {
  const uids = courseUids(patient, courseIndex);
  const context = { patient, course, courseIndex, uids };

  const ctObjects = SLICE_Z.map((_, slice) => buildCtSlice(context, slice));
  const ctUids = ctObjects.map((object) => object.dataset.SOPInstanceUID);
  const files = ctObjects.map((object, slice) =>
    objectFile(context, object, "CT", `CT${slice + 1}`),
  );
  files.push(objectFile(context, buildStructureSet(context, ctUids), "RTSTRUCT", "RS"));
  files.push(objectFile(context, buildPlan(context), "RTPLAN", "RP"));
  files.push(objectFile(context, buildDose(context), "RTDOSE", "RD"));
  files.push({
    path: path.posix.join(patient.id, course.dir, "notes.txt"),
    bytes: Buffer.from(courseNotes(patient, course), "utf8"),
  });
  return { files, uids: listCourseUids(uids) };
}

/** Builds the whole tree in memory: its files and the planted-identifier list. */
export function buildSampleTree() {
  const files = [{ path: "README.txt", bytes: Buffer.from(README_TEXT, "utf8") }];
  const uids = [];
  for (const patient of PATIENTS) {
    patient.courses.forEach((course, courseIndex) => {
      const built = buildCourse(patient, course, courseIndex);
      files.push(...built.files);
      uids.push(...built.uids);
    });
  }
  const namedFiles = Object.values(SPECIAL_FILES)
    .map((special) => special.name)
    .filter((name) => name.includes("_"));
  return { files, planted: buildPlanted(uids, namedFiles) };
}

/**
 * Returns true if `dir` is missing, empty or a tree this script wrote, the
 * only folders it may replace.
 */
function isReplaceable(dir) {
  if (!existsSync(dir) || readdirSync(dir).length === 0) return true;
  const readme = path.join(dir, "README.txt");
  return existsSync(readme) && readFileSync(readme, "utf8").startsWith(README_MARKER);
}

/**
 * Writes the tree to `<outDir>.tmp` and renames it into place, so a run that
 * fails while writing leaves `outDir` as it was.
 */
function writeTree(outDir, files) {
  if (!isReplaceable(outDir)) {
    throw new Error(
      `${outDir} exists and is not a generated sample tree (no README.txt starting ` +
        `"${README_MARKER}"); choose an empty or new output folder`,
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

function writeFileAtomically(target, text) {
  const staging = `${target}.tmp`;
  writeFileSync(staging, text);
  renameSync(staging, target);
}

function main(args) {
  if (args.length > 1 || args[0] === "-h" || args[0] === "--help") {
    console.error("usage: node scripts/make-fixtures.js [outDir]");
    process.exit(2);
  }
  const outDir = path.resolve(args[0] ?? DEFAULT_OUT_DIR);
  const { files, planted } = buildSampleTree();
  mkdirSync(path.dirname(outDir), { recursive: true });
  writeTree(outDir, files);
  writeFileAtomically(`${outDir}.planted.json`, `${JSON.stringify(planted, null, 2)}\n`);
  const bytes = files.reduce((total, file) => total + file.bytes.length, 0);
  console.log(`wrote ${files.length} files (${bytes} bytes) to ${outDir}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    console.error(`make-fixtures: error: ${error.message}`);
    process.exit(1);
  }
}
