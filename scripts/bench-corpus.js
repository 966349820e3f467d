// Writes the benchmark corpora with deidkit's own DICOM writer
// (dist/dicom/writer.js). Pixel values are a repeated ramp: cheap to make,
// but every file has its real size.

import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";

import { writePart10 } from "../dist/dicom/writer.js";

const EXPLICIT_LE = "1.2.840.10008.1.2.1";
const CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2";
const RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2";
const RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3";
const RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5";
const PIXEL_CHUNK = 8 * 1024 * 1024;

const UID_ROOT = "1.2.826.0.1.3680043.9.7433";

const FIRST_NAMES = ["JANE", "JOHN", "MARIA", "WEI", "AMIRA", "OLAF", "PRIYA", "TOMAS", "ELENA", "KENJI"];
const LAST_NAMES = ["DOE", "SMITH", "GARCIA", "CHEN", "HADDAD", "LARSEN", "NAIR", "NOVAK", "ROSSI", "SATO"];

const SPACE_PADDED = new Set(["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT"]);

/** Builds an element from a tag, a VR and a string, number list or Buffer value. */
function el(tag, vr, value) {
  let bytes;
  if (Buffer.isBuffer(value)) bytes = value;
  else if (vr === "US") {
    const values = Array.isArray(value) ? value : [value];
    bytes = Buffer.alloc(values.length * 2);
    values.forEach((number, index) => bytes.writeUInt16LE(number, index * 2));
  } else {
    let text = String(value);
    if (text.length % 2) text += vr === "UI" ? "\0" : SPACE_PADDED.has(vr) ? " " : "\0";
    bytes = Buffer.from(text, "latin1");
  }
  return { tag, vr, undefinedLength: false, bytes };
}

const SYNTAX = { littleEndian: true, explicitVr: true };

function item(elements) {
  return { elements: [...elements].sort((a, b) => a.tag - b.tag), undefinedLength: false, syntax: SYNTAX };
}

function seq(tag, items) {
  return { tag, vr: "SQ", undefinedLength: false, items };
}

function meta(sopClass, sopInstance) {
  return [
    el(0x00020001, "OB", Buffer.from([0, 1])),
    el(0x00020002, "UI", sopClass),
    el(0x00020003, "UI", sopInstance),
    el(0x00020010, "UI", EXPLICIT_LE),
    el(0x00020012, "UI", `${UID_ROOT}.1`),
  ];
}

/** A ramp pattern of PIXEL_CHUNK bytes, shared by every file. */
let pattern;
function pixelPattern() {
  if (!pattern) {
    pattern = Buffer.alloc(PIXEL_CHUNK);
    for (let index = 0; index < pattern.length; index += 2) pattern.writeUInt16LE(index & 0x0fff, index);
  }
  return pattern;
}

/**
 * Writes a Part 10 file whose last element is Pixel Data of `pixelBytes`
 * bytes, streamed in chunks so that a 1 GiB file needs no 1 GiB buffer.
 */
function writeDicom(file, sopClass, sopInstance, elements, pixelBytes = 0, pixelVr = "OW") {
  const dataset = item(elements);
  const parts = writePart10(meta(sopClass, sopInstance), dataset);
  const fd = openSync(file, "w");
  try {
    for (const part of parts) writeSync(fd, part);
    if (pixelBytes > 0) {
      const header = Buffer.alloc(12);
      header.writeUInt16LE(0x7fe0, 0);
      header.writeUInt16LE(0x0010, 2);
      header.write(pixelVr, 4, "latin1");
      header.writeUInt32LE(pixelBytes, 8);
      writeSync(fd, header);
      const source = pixelPattern();
      let left = pixelBytes;
      while (left > 0) {
        const size = Math.min(left, source.length);
        writeSync(fd, source, 0, size);
        left -= size;
      }
    }
  } finally {
    closeSync(fd);
  }
}

function person(index) {
  const first = FIRST_NAMES[index % FIRST_NAMES.length];
  const last = LAST_NAMES[Math.floor(index / FIRST_NAMES.length) % LAST_NAMES.length];
  const suffix = index >= 100 ? String.fromCharCode(65 + (Math.floor(index / 100) % 26)) + String(index) : "";
  return {
    name: `${last}${suffix}^${first}`,
    last: `${last}${suffix}`,
    first,
    id: `MRN${String(100000 + index)}`,
    birth: `19${String(40 + (index % 50)).padStart(2, "0")}0${1 + (index % 9)}1${index % 10}`,
  };
}

function patientElements(patient, uids, date) {
  return [
    el(0x00080005, "CS", "ISO_IR 100"),
    el(0x00080020, "DA", date),
    el(0x00080030, "TM", "101500"),
    el(0x00080050, "SH", `ACC${patient.id.slice(3)}`),
    el(0x00080080, "LO", "Bench General Hospital"),
    el(0x00080090, "PN", "WELBY^MARCUS"),
    el(0x00081030, "LO", `RT planning ${patient.last} ${patient.first}`),
    el(0x00100010, "PN", patient.name),
    el(0x00100020, "LO", patient.id),
    el(0x00100030, "DA", patient.birth),
    el(0x00100040, "CS", "F"),
    el(0x0020000d, "UI", uids.study),
    el(0x00200010, "SH", "1"),
  ];
}

function courseUids(patientIndex) {
  const base = `${UID_ROOT}.${patientIndex + 1}`;
  return {
    study: `${base}.1`,
    ctSeries: `${base}.2`,
    frame: `${base}.3`,
    ctInstance: (slice) => `${base}.4.${slice + 1}`,
    rsSeries: `${base}.5`,
    rs: `${base}.5.1`,
    rpSeries: `${base}.6`,
    rp: `${base}.6.1`,
    rdSeries: `${base}.7`,
    rd: `${base}.7.1`,
  };
}

function ctSlice(patient, uids, date, slice, size) {
  return [
    ...patientElements(patient, uids, date),
    el(0x00080016, "UI", CT_IMAGE),
    el(0x00080018, "UI", uids.ctInstance(slice)),
    el(0x00080060, "CS", "CT"),
    el(0x0020000e, "UI", uids.ctSeries),
    el(0x00200013, "IS", slice + 1),
    el(0x00200032, "DS", `-250\\-250\\${(slice * 2.5).toFixed(1)}`),
    el(0x00200037, "DS", "1\\0\\0\\0\\1\\0"),
    el(0x00200052, "UI", uids.frame),
    el(0x00280002, "US", 1),
    el(0x00280004, "CS", "MONOCHROME2"),
    el(0x00280010, "US", size),
    el(0x00280011, "US", size),
    el(0x00280030, "DS", "0.9765625\\0.9765625"),
    el(0x00280100, "US", 16),
    el(0x00280101, "US", 16),
    el(0x00280102, "US", 15),
    el(0x00280103, "US", 1),
  ];
}

function contourPoints(slice) {
  const values = [];
  for (let point = 0; point < 64; point++) {
    const angle = (point / 64) * 2 * Math.PI;
    values.push((60 * Math.cos(angle)).toFixed(2), (60 * Math.sin(angle)).toFixed(2), (slice * 2.5).toFixed(1));
  }
  return values.join("\\");
}

function structureSet(patient, uids, date, slices) {
  const imageRefs = () =>
    Array.from({ length: slices }, (_, slice) =>
      item([el(0x00081150, "UI", CT_IMAGE), el(0x00081155, "UI", uids.ctInstance(slice))]),
    );
  const rois = ["PTV", "CTV", "SPINAL_CORD"];
  return [
    ...patientElements(patient, uids, date),
    el(0x00080016, "UI", RT_STRUCT),
    el(0x00080018, "UI", uids.rs),
    el(0x00080060, "CS", "RTSTRUCT"),
    el(0x0020000e, "UI", uids.rsSeries),
    el(0x30060002, "SH", "Bench RS"),
    el(0x30060008, "DA", date),
    seq(0x30060010, [
      item([
        el(0x00200052, "UI", uids.frame),
        seq(0x30060012, [
          item([
            el(0x00081150, "UI", "1.2.840.10008.3.1.2.3.1"),
            el(0x00081155, "UI", uids.study),
            seq(0x30060014, [item([el(0x0020000e, "UI", uids.ctSeries), seq(0x30060016, imageRefs())])]),
          ]),
        ]),
      ]),
    ]),
    seq(
      0x30060020,
      rois.map((name, index) =>
        item([el(0x30060022, "IS", index + 1), el(0x30060024, "UI", uids.frame), el(0x30060026, "LO", name)]),
      ),
    ),
    seq(
      0x30060039,
      rois.map((_, index) =>
        item([
          el(0x3006002a, "IS", "255\\0\\0"),
          el(0x30060084, "IS", index + 1),
          seq(
            0x30060040,
            Array.from({ length: slices }, (_, slice) =>
              item([
                seq(0x30060016, [item([el(0x00081150, "UI", CT_IMAGE), el(0x00081155, "UI", uids.ctInstance(slice))])]),
                el(0x30060042, "CS", "CLOSED_PLANAR"),
                el(0x30060046, "IS", 64),
                el(0x30060050, "DS", contourPoints(slice)),
              ]),
            ),
          ),
        ]),
      ),
    ),
  ];
}

function plan(patient, uids, date) {
  const beams = Array.from({ length: 5 }, (_, beam) =>
    item([
      el(0x300a00b2, "SH", "TrueBeam1"),
      el(0x300a00c0, "IS", beam + 1),
      el(0x300a00c2, "LO", `Beam ${beam + 1}`),
      el(0x300a0110, "IS", 100),
      seq(
        0x300a0111,
        Array.from({ length: 100 }, (_, point) =>
          item([
            el(0x300a0112, "IS", point),
            el(0x300a011e, "DS", (beam * 72).toFixed(1)),
            el(0x300a0134, "DS", (point / 99).toFixed(4)),
          ]),
        ),
      ),
    ]),
  );
  return [
    ...patientElements(patient, uids, date),
    el(0x00080016, "UI", RT_PLAN),
    el(0x00080018, "UI", uids.rp),
    el(0x00080060, "CS", "RTPLAN"),
    el(0x0020000e, "UI", uids.rpSeries),
    el(0x300a0002, "SH", "Bench plan"),
    el(0x300a0006, "DA", date),
    el(0x300a000c, "CS", "PATIENT"),
    seq(0x300a00b0, beams),
    seq(0x300c0060, [item([el(0x00081150, "UI", RT_STRUCT), el(0x00081155, "UI", uids.rs)])]),
  ];
}

function dose(patient, uids, date, size, frames) {
  const offsets = Array.from({ length: frames }, (_, frame) => (frame * 2.5).toFixed(1)).join("\\");
  return [
    ...patientElements(patient, uids, date),
    el(0x00080016, "UI", RT_DOSE),
    el(0x00080018, "UI", uids.rd),
    el(0x00080060, "CS", "RTDOSE"),
    el(0x0020000e, "UI", uids.rdSeries),
    el(0x00200032, "DS", "-250\\-250\\0"),
    el(0x00200037, "DS", "1\\0\\0\\0\\1\\0"),
    el(0x00200052, "UI", uids.frame),
    el(0x00280002, "US", 1),
    el(0x00280004, "CS", "MONOCHROME2"),
    el(0x00280008, "IS", frames),
    el(0x00280009, "AT", Buffer.from([0x04, 0x30, 0x0c, 0x00])),
    el(0x00280010, "US", size),
    el(0x00280011, "US", size),
    el(0x00280030, "DS", "2\\2"),
    el(0x00280100, "US", 32),
    el(0x00280101, "US", 32),
    el(0x00280102, "US", 31),
    el(0x00280103, "US", 0),
    el(0x30040002, "CS", "GY"),
    el(0x30040004, "CS", "PHYSICAL"),
    el(0x3004000a, "CS", "PLAN"),
    el(0x3004000c, "DS", offsets),
    el(0x3004000e, "DS", "0.0001"),
    seq(0x300c0002, [item([el(0x00081150, "UI", RT_PLAN), el(0x00081155, "UI", uids.rp)])]),
  ];
}

function courseTexts(patient, date) {
  const iso = `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)}`;
  const dvhRows = ["structure,dose_gy,volume_pct"];
  for (let row = 0; row < 400; row++) dvhRows.push(`PTV,${(row * 0.2).toFixed(1)},${Math.max(0, 100 - row / 4).toFixed(2)}`);
  const log = [];
  for (let line = 0; line < 300; line++) {
    log.push(`${iso} 10:${String(line % 60).padStart(2, "0")} fraction ${line % 30} delivered for ${patient.id}, couch shift 0.${line % 9} mm`);
  }
  return {
    "plan_summary.json": JSON.stringify(
      { patient_id: patient.id, patient_name: patient.name.replace("^", " "), plan_date: iso, prescription_gy: 60, fractions: 30, beams: 5 },
      null,
      2,
    ),
    "clinical.json": JSON.stringify({ mrn: patient.id, birth_date: patient.birth, diagnosis: "C34.1", notes: `Seen by Dr Welby with ${patient.first} ${patient.last}` }),
    "dvh.csv": dvhRows.join("\n") + "\n",
    "notes.txt": `Patient ${patient.first} ${patient.last} (${patient.id}) started treatment on ${iso}.\nNo acute toxicity.\n`,
    "treatment_log.txt": log.join("\n") + "\n",
    "README.md": `# Course of ${patient.last}\n\nPlanning CT, structures, plan and dose exported ${iso}.\n`,
  };
}

/**
 * The medium tree: `patients` patients with one course each, a CT series of
 * `slices` slices, an RTSTRUCT that references every slice, an RTPLAN, a
 * multi-frame RTDOSE, text files per course and cohort tables at the top.
 */
export function writeMediumTree(root, { patients = 10, slices = 150, ctSize = 512, doseSize = 256, doseFrames = 256 } = {}) {
  const cohort = ["patient_id,name,birth_date,first_treatment"];
  for (let index = 0; index < patients; index++) {
    const patient = person(index);
    const uids = courseUids(index);
    const date = `2021${String(1 + (index % 12)).padStart(2, "0")}15`;
    const course = path.join(root, patient.id, "course1");
    mkdirSync(path.join(course, "CT"), { recursive: true });
    for (let slice = 0; slice < slices; slice++) {
      const file = path.join(course, "CT", `CT.${uids.ctInstance(slice)}.dcm`);
      writeDicom(file, CT_IMAGE, uids.ctInstance(slice), ctSlice(patient, uids, date, slice, ctSize), ctSize * ctSize * 2);
    }
    writeDicom(path.join(course, `RS.${uids.rs}.dcm`), RT_STRUCT, uids.rs, structureSet(patient, uids, date, slices));
    writeDicom(path.join(course, `RP.${uids.rp}.dcm`), RT_PLAN, uids.rp, plan(patient, uids, date));
    writeDicom(path.join(course, `RD.${uids.rd}.dcm`), RT_DOSE, uids.rd, dose(patient, uids, date, doseSize, doseFrames), doseSize * doseSize * doseFrames * 4);
    for (const [name, text] of Object.entries(courseTexts(patient, date))) writeFileSync(path.join(course, name), text);
    cohort.push(`${patient.id},${patient.name.replace("^", " ")},${patient.birth},${date}`);
  }
  writeFileSync(path.join(root, "cohort.csv"), cohort.join("\n") + "\n");
  writeFileSync(path.join(root, "cohort_notes.txt"), `Cohort of ${patients} patients, one course each.\n`);
}

/** One multi-frame RTDOSE of 512 x 512 x 1024 32-bit voxels: a 1 GiB Pixel Data value. */
export function writeLargeFile(root) {
  mkdirSync(root, { recursive: true });
  const patient = person(0);
  const uids = courseUids(0);
  writeDicom(path.join(root, "RD.large.dcm"), RT_DOSE, uids.rd, dose(patient, uids, "20210115", 512, 1024), 512 * 512 * 1024 * 4);
}

/**
 * The many-patients tree: per patient one small CT slice (64 x 64), a note
 * and a JSON summary, so that the learnt identifiers grow with the cohort
 * while the bytes per patient stay small.
 */
export function writeManyPatientsTree(root, patients) {
  for (let index = 0; index < patients; index++) {
    const patient = person(index);
    const uids = courseUids(index);
    const date = `2022${String(1 + (index % 12)).padStart(2, "0")}0${1 + (index % 9)}`;
    const folder = path.join(root, patient.id);
    mkdirSync(folder, { recursive: true });
    writeDicom(path.join(folder, "CT1.dcm"), CT_IMAGE, uids.ctInstance(0), ctSlice(patient, uids, date, 0, 64), 64 * 64 * 2);
    const texts = courseTexts(patient, date);
    writeFileSync(path.join(folder, "notes.txt"), texts["notes.txt"]);
    writeFileSync(path.join(folder, "plan_summary.json"), texts["plan_summary.json"]);
  }
}
