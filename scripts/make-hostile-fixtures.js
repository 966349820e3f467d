#!/usr/bin/env node
// Writes fixtures/hostile/: small DICOM files that are damaged or hostile on
// purpose. They are cut short at each structural point, have lengths past the
// end, wrong VRs, a transfer syntax that lies, sequences nested 10,000 deep,
// identifiers with path characters, and more. It also writes
// fixtures/hostile.manifest.json, which lists each file's expected outcome
// and every identifier planted in the corpus.
//
// Usage: node scripts/make-hostile-fixtures.js [outDir]
//
// The output is deterministic: no clock, no random numbers. The encoder here
// is deliberately independent of src/dicom, so that a reader defect cannot
// cancel out against the same defect in the writer of the test data.

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { deflateRawSync } from "node:zlib";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const outDir = path.resolve(process.argv[2] ?? path.join(ROOT, "fixtures", "hostile"));
const manifestPath = `${outDir}.manifest.json`;

const EXPLICIT_LE = "1.2.840.10008.1.2.1";
const IMPLICIT_LE = "1.2.840.10008.1.2";
const EXPLICIT_BE = "1.2.840.10008.1.2.2";
const DEFLATED = "1.2.840.10008.1.2.1.99";
const CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2";
const UID_ROOT = "1.2.826.0.1.3680043.10.4242";
const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);
const UNDEFINED = 0xffffffff;

/** Identifiers planted in the corpus: none may appear in any output, path, report or terminal line. */
const planted = new Set();
function plant(value) {
  planted.add(value);
  return value;
}

function pad(bytes, vr) {
  if (bytes.length % 2 === 0) return bytes;
  return Buffer.concat([bytes, Buffer.from([vr === "UI" || vr === "OB" || vr === "UN" ? 0 : 0x20])]);
}

function tagBytes(tag, littleEndian) {
  const bytes = Buffer.alloc(4);
  if (littleEndian) {
    bytes.writeUInt16LE(tag >>> 16, 0);
    bytes.writeUInt16LE(tag & 0xffff, 2);
  } else {
    bytes.writeUInt16BE(tag >>> 16, 0);
    bytes.writeUInt16BE(tag & 0xffff, 2);
  }
  return bytes;
}

/**
 * Encodes one element. `value` is a Buffer or a string (latin1), `items`
 * a list of element lists; `length` replaces the computed length, and
 * `raw: true` leaves an odd value unpadded.
 */
function element(spec, encoding) {
  const { tag, vr } = spec;
  const le = encoding.littleEndian;
  let value;
  if (spec.items) {
    const parts = spec.items.map((elements) => {
      const body = Buffer.concat(elements.map((child) => element(child, encoding)));
      const header = Buffer.alloc(8);
      tagBytes(0xfffee000, le).copy(header, 0);
      if (le) header.writeUInt32LE(body.length, 4);
      else header.writeUInt32BE(body.length, 4);
      return Buffer.concat([header, body]);
    });
    value = Buffer.concat(parts);
  } else {
    value = typeof spec.value === "string" ? Buffer.from(spec.value, "latin1") : (spec.value ?? Buffer.alloc(0));
    if (!spec.raw) value = pad(value, vr);
  }
  const length = spec.length ?? value.length;
  let header;
  if (!encoding.explicitVr) {
    header = Buffer.alloc(8);
    tagBytes(tag, le).copy(header, 0);
    if (le) header.writeUInt32LE(length >>> 0, 4);
    else header.writeUInt32BE(length >>> 0, 4);
  } else if (LONG_VRS.has(vr) || length > 0xffff) {
    header = Buffer.alloc(12);
    tagBytes(tag, le).copy(header, 0);
    header.write(vr, 4, "latin1");
    if (le) header.writeUInt32LE(length >>> 0, 8);
    else header.writeUInt32BE(length >>> 0, 8);
  } else {
    header = Buffer.alloc(8);
    tagBytes(tag, le).copy(header, 0);
    header.write(vr, 4, "latin1");
    if (le) header.writeUInt16LE(length, 6);
    else header.writeUInt16BE(length, 6);
  }
  return Buffer.concat([header, value]);
}

function dataset(elements, encoding) {
  return Buffer.concat(elements.map((spec) => element(spec, encoding)));
}

const LE_EXPLICIT = { littleEndian: true, explicitVr: true };
const LE_IMPLICIT = { littleEndian: true, explicitVr: false };
const BE_EXPLICIT = { littleEndian: false, explicitVr: true };

function meta(sopInstanceUid, transferSyntax) {
  const elements = [
    { tag: 0x00020001, vr: "OB", value: Buffer.from([0, 1]) },
    { tag: 0x00020002, vr: "UI", value: CT_IMAGE_STORAGE },
    { tag: 0x00020003, vr: "UI", value: sopInstanceUid },
    { tag: 0x00020010, vr: "UI", value: transferSyntax },
    { tag: 0x00020012, vr: "UI", value: `${UID_ROOT}.0.1` },
  ];
  const body = dataset(elements, LE_EXPLICIT);
  const groupLength = element({ tag: 0x00020000, vr: "UL", value: uint32(body.length) }, LE_EXPLICIT);
  return Buffer.concat([Buffer.alloc(128), Buffer.from("DICM", "latin1"), groupLength, body]);
}

function uint32(value) {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value, 0);
  return bytes;
}

/** Builds the elements of a small CT image for the case `id` (a number that makes its identifiers unique). */
function patientElements(id, overrides = {}) {
  const instance = `${UID_ROOT}.${id}.3`;
  planted.add(instance);
  return [
    { tag: 0x00080005, vr: "CS", value: overrides.charset ?? "ISO_IR 100" },
    { tag: 0x00080016, vr: "UI", value: CT_IMAGE_STORAGE },
    { tag: 0x00080018, vr: "UI", value: instance },
    { tag: 0x00080020, vr: "DA", value: plant(`2019${String(100 + (id % 12)).slice(1)}${String(10 + (id % 18))}`) },
    { tag: 0x00080050, vr: "SH", value: plant(`ACC-HX${id}`) },
    { tag: 0x00080060, vr: "CS", value: "CT" },
    { tag: 0x00080090, vr: "PN", value: plant(`REFDOC^HX${id}`) },
    { tag: 0x00081030, vr: "LO", value: `Study of ${overrides.nameText ?? `PATIENT^HX${id}`}` },
    { tag: 0x00100010, vr: "PN", value: overrides.name ?? plant(`PATIENT^HX${id}`) },
    { tag: 0x00100020, vr: "LO", value: overrides.patientId ?? plant(`HXID-${id}`) },
    { tag: 0x00100030, vr: "DA", value: plant(`19${String(30 + (id % 60))}0${1 + (id % 9)}1${id % 10}`) },
    { tag: 0x0020000d, vr: "UI", value: plant(`${UID_ROOT}.${id}.1`) },
    { tag: 0x0020000e, vr: "UI", value: plant(`${UID_ROOT}.${id}.2`) },
    { tag: 0x00200010, vr: "SH", value: plant(`STUDY-HX${id}`) },
    { tag: 0x00280010, vr: "US", value: Buffer.from([2, 0]) },
    { tag: 0x00280011, vr: "US", value: Buffer.from([2, 0]) },
    { tag: 0x7fe00010, vr: "OW", value: Buffer.from([1, 0, 2, 0, 3, 0, 4, 0]) },
  ];
}

function validFile(id, options = {}) {
  const syntax = options.syntax ?? EXPLICIT_LE;
  let encoding = LE_EXPLICIT;
  if (syntax === IMPLICIT_LE) encoding = LE_IMPLICIT;
  if (syntax === EXPLICIT_BE) encoding = BE_EXPLICIT;
  return Buffer.concat([meta(`${UID_ROOT}.${id}.3`, syntax), dataset(patientElements(id, options), encoding)]);
}

/** Returns the offset just after the element with `tag` in a file made by `validFile` (explicit VR LE). */
function offsetAfter(bytes, tag) {
  const needle = tagBytes(tag, true);
  const at = bytes.indexOf(needle, 132);
  if (at < 0) throw new Error(`tag ${tag.toString(16)} not found`);
  const vr = bytes.toString("latin1", at + 4, at + 6);
  if (LONG_VRS.has(vr)) return at + 12 + bytes.readUInt32LE(at + 8);
  return at + 8 + bytes.readUInt16LE(at + 6);
}

function offsetOf(bytes, tag) {
  return bytes.indexOf(tagBytes(tag, true), 132);
}

const cases = [];
function add(name, bytes, expect, note) {
  cases.push({ name, bytes, expect, note });
}

// Cut short at every structural point.
{
  const full = validFile(1);
  add("truncated/in-preamble.dcm", full.subarray(0, 64), "quarantine", "64 zero bytes: not DICOM");
  add("truncated/after-prefix.dcm", full.subarray(0, 132), "quarantine", "preamble and DICM only");
  add("truncated/in-meta.dcm", full.subarray(0, 170), "quarantine", "cut inside the file meta");
  const datasetStart = offsetOf(full, 0x00080005);
  add("truncated/after-meta.dcm", full.subarray(0, datasetStart), "quarantine", "file meta and no data set");
  add("truncated/in-element-header.dcm", full.subarray(0, offsetOf(full, 0x00100010) + 5), "quarantine", "cut inside the header of Patient's Name");
  add("truncated/in-value.dcm", full.subarray(0, offsetOf(full, 0x00100010) + 12), "quarantine", "cut inside the value of Patient's Name");
  add("truncated/in-pixel-data.dcm", full.subarray(0, full.length - 3), "quarantine", "cut inside Pixel Data");

  const withSequence = Buffer.concat([
    meta(`${UID_ROOT}.2.3`, EXPLICIT_LE),
    dataset(
      [
        ...patientElements(2).slice(0, 8),
        { tag: 0x00081115, vr: "SQ", items: [[{ tag: 0x0020000e, vr: "UI", value: plant(`${UID_ROOT}.2.9`) }]] },
        ...patientElements(2).slice(8),
      ],
      LE_EXPLICIT,
    ),
  ]);
  add("truncated/in-item.dcm", withSequence.subarray(0, offsetOf(withSequence, 0x00081115) + 12 + 8 + 10), "quarantine", "cut inside a sequence item");
}

// Lengths that do not fit the file.
{
  const full = validFile(3);
  const lengthPastEnd = Buffer.from(full);
  lengthPastEnd.writeUInt16LE(0xfff0, offsetOf(full, 0x00100020) + 6);
  add("lengths/value-past-end.dcm", lengthPastEnd, "quarantine", "Patient ID length points past the end");

  const pixelPastEnd = Buffer.from(full);
  pixelPastEnd.writeUInt32LE(0x7ffffff0, offsetOf(full, 0x7fe00010) + 8);
  add("lengths/pixel-data-past-end.dcm", pixelPastEnd, "quarantine", "Pixel Data length of 2 GiB in a small file");

  const itemPastEnd = Buffer.concat([
    meta(`${UID_ROOT}.4.3`, EXPLICIT_LE),
    dataset(
      [
        ...patientElements(4).slice(0, 8),
        { tag: 0x00081115, vr: "SQ", items: [[{ tag: 0x0020000e, vr: "UI", value: plant(`${UID_ROOT}.4.9`) }]] },
        ...patientElements(4).slice(8),
      ],
      LE_EXPLICIT,
    ),
  ]);
  itemPastEnd.writeUInt32LE(0x00fffff0, offsetOf(itemPastEnd, 0x00081115) + 12 + 4);
  add("lengths/item-past-end.dcm", itemPastEnd, "quarantine", "item length larger than its sequence");

  const odd = Buffer.concat([
    meta(`${UID_ROOT}.5.3`, EXPLICIT_LE),
    dataset(patientElements(5).map((spec) => (spec.tag === 0x00100010 ? { ...spec, value: plant("ODD^HXLEN"), raw: true } : spec)), LE_EXPLICIT),
  ]);
  add("lengths/odd-length.dcm", odd, "either", "Patient's Name with an odd length (9 bytes)");

  const undefinedLo = Buffer.concat([
    meta(`${UID_ROOT}.6.3`, IMPLICIT_LE),
    dataset(patientElements(6).map((spec) => (spec.tag === 0x00100020 ? { ...spec, length: UNDEFINED } : spec)), LE_IMPLICIT),
  ]);
  add("lengths/undefined-length-lo.dcm", undefinedLo, "quarantine", "undefined length on Patient ID (LO), implicit VR");
}

// Sequences nested 10,000 levels deep, with undefined lengths (36 bytes a level).
{
  const levels = 10_000;
  const open = Buffer.concat([
    element({ tag: 0x00081115, vr: "SQ", length: UNDEFINED, value: Buffer.alloc(0) }, LE_EXPLICIT),
    Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]),
  ]);
  const close = Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0, 0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  const elements = patientElements(7);
  const before = dataset(elements.slice(0, 8), LE_EXPLICIT);
  const after = dataset(elements.slice(8), LE_EXPLICIT);
  const nested = Buffer.concat([Buffer.concat(Array(levels).fill(open)), Buffer.concat(Array(levels).fill(close))]);
  add("limits/nested-10000.dcm", Buffer.concat([meta(`${UID_ROOT}.7.3`, EXPLICIT_LE), before, nested, after]), "quarantine", "10,000 nested sequences");
}

// Wrong VRs and encodings that switch or lie.
{
  const unknownVr = validFile(8);
  unknownVr.write("ZZ", offsetOf(unknownVr, 0x00100020) + 4, "latin1");
  add("encoding/unknown-vr.dcm", unknownVr, "quarantine", "VR ZZ on Patient ID");

  const wrongVr = Buffer.concat([
    meta(`${UID_ROOT}.9.3`, EXPLICIT_LE),
    dataset(patientElements(9).map((spec) => (spec.tag === 0x00100010 ? { tag: spec.tag, vr: "US", value: Buffer.from(plant("WRONGVR^HXNINE"), "latin1") } : spec)), LE_EXPLICIT),
  ]);
  add("encoding/name-as-us.dcm", wrongVr, "either", "Patient's Name encoded with VR US");

  const elements = patientElements(10);
  const switched = Buffer.concat([
    meta(`${UID_ROOT}.10.3`, EXPLICIT_LE),
    dataset(elements.slice(0, 8), LE_EXPLICIT),
    dataset(elements.slice(8), LE_IMPLICIT),
  ]);
  add("encoding/explicit-then-implicit.dcm", switched, "quarantine", "explicit VR, then implicit VR from Patient's Name on");

  const liesImplicit = Buffer.concat([meta(`${UID_ROOT}.11.3`, IMPLICIT_LE), dataset(patientElements(11), LE_EXPLICIT)]);
  add("encoding/says-implicit-is-explicit.dcm", liesImplicit, "either", "meta says implicit VR, data set is explicit VR");

  const liesBig = Buffer.concat([meta(`${UID_ROOT}.12.3`, EXPLICIT_BE), dataset(patientElements(12), LE_EXPLICIT)]);
  add("encoding/says-big-endian.dcm", liesBig, "quarantine", "meta says big endian, data set is little endian");

  const liesDeflate = Buffer.concat([meta(`${UID_ROOT}.13.3`, DEFLATED), dataset(patientElements(13), LE_EXPLICIT)]);
  add("encoding/says-deflated.dcm", liesDeflate, "quarantine", "meta says deflated, data set is not");

  const liesPlain = Buffer.concat([meta(`${UID_ROOT}.14.3`, EXPLICIT_LE), deflateRawSync(dataset(patientElements(14), LE_EXPLICIT))]);
  add("encoding/deflated-not-declared.dcm", liesPlain, "quarantine", "deflated data set under an explicit VR transfer syntax");

  const unknownSyntax = Buffer.concat([meta(`${UID_ROOT}.15.3`, "1.2.3.4.5.6.7"), dataset(patientElements(15), LE_EXPLICIT)]);
  add("encoding/unknown-transfer-syntax.dcm", unknownSyntax, "quarantine", "unknown transfer syntax UID");

  const badUtf8 = Buffer.concat([
    meta(`${UID_ROOT}.16.3`, EXPLICIT_LE),
    dataset(
      patientElements(16, { charset: "ISO_IR 192", name: Buffer.concat([Buffer.from(plant("BADUTF^HX"), "latin1"), Buffer.from([0xff, 0xfe, 0xc3])]) }),
      LE_EXPLICIT,
    ),
  ]);
  add("encoding/invalid-utf8-name.dcm", badUtf8, "either", "UTF-8 declared, Patient's Name has invalid bytes");

  const unknownCharset = Buffer.concat([meta(`${UID_ROOT}.17.3`, EXPLICIT_LE), dataset(patientElements(17, { charset: "ISO_IR 999" }), LE_EXPLICIT)]);
  add("encoding/unknown-charset.dcm", unknownCharset, "quarantine", "unknown Specific Character Set");
}

// Structure around the data set.
{
  const garbage = Buffer.alloc(64);
  for (let index = 0; index < garbage.length; index++) garbage[index] = (index * 73 + 41) & 0xff;
  add("structure/garbage-after-dataset.dcm", Buffer.concat([validFile(18), garbage]), "either", "64 bytes of garbage after the data set");

  add("structure/missing-meta.dcm", Buffer.concat([Buffer.alloc(128), Buffer.from("DICM"), dataset(patientElements(19), LE_EXPLICIT)]), "quarantine", "DICM prefix without file meta");

  const once = validFile(20);
  const metaEnd = offsetOf(once, 0x00080005);
  add("structure/duplicated-meta.dcm", Buffer.concat([once.subarray(0, metaEnd), once.subarray(132, metaEnd), once.subarray(metaEnd)]), "quarantine", "file meta group twice");

  add("structure/raw-implicit-dataset.dcm", dataset(patientElements(21), LE_IMPLICIT), "write", "implicit VR data set without preamble or meta");
  add("structure/no-extension", validFile(22), "write", "valid DICOM without a file name extension");
  add("structure/not-dicom.dcm", Buffer.from(`${plant("NOTDICOM^HXTEXT")} ${plant("HXID-TEXT-77")}\nthis is not DICOM\n`, "latin1"), "quarantine", "text named .dcm");
}

// Identifiers that are hostile as values.
{
  const pathId = plant("../HXPATH/..\\x");
  add("values/id-with-path-characters.dcm", validFile(23, { patientId: pathId }), "write", "Patient ID with /, \\ and ..");
  const nulId = Buffer.from(`${plant("HXNUL")}\0${plant("AFTERNUL")}`, "latin1");
  add("values/id-with-nul.dcm", validFile(24, { patientId: nulId }), "either", "Patient ID with a NUL byte");
  add("values/name-with-newline.dcm", validFile(25, { name: `${plant("NEWLINE^HX")}\n${plant("SECONDLINE")}` }), "either", "Patient's Name with a newline");
  const longName = `${plant("LONGNAME^HX")}${"A".repeat(8_000)}`;
  add("values/very-long-name.dcm", validFile(26, { name: longName }), "either", "Patient's Name of 8,011 bytes");
  add("values/empty-id.dcm", validFile(27, { patientId: "" }), "write", "empty Patient ID");
  add("values/blank-id.dcm", validFile(28, { patientId: "        " }), "write", "Patient ID of spaces only");
}

rmSync(outDir, { recursive: true, force: true });
for (const { name, bytes } of cases) {
  const target = path.join(outDir, ...name.split("/"));
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, bytes);
}
const manifest = {
  note: "Written by scripts/make-hostile-fixtures.js; expect is write, quarantine or either.",
  files: cases.map(({ name, expect, note }) => ({ name, expect, note })),
  planted: [...planted].filter((value) => value.length >= 5).sort(),
};
writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
const total = cases.reduce((sum, { bytes }) => sum + bytes.length, 0);
process.stdout.write(`wrote ${cases.length} files (${total} bytes) to ${path.relative(process.cwd(), outDir) || "."}\n`);
