// The NIfTI handler. nibabel writes images (NIfTI-1 and -2, both byte orders,
// .nii and .nii.gz) with identifiers planted in every text field and
// extension. The handler de-identifies them and nibabel reads them back.
// Hand-built headers cover the cases nibabel does not write.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { QuarantineReason } from "../../src/deid/apply.js";
import { DEFAULT_READ_LIMITS, looksLikeDicom } from "../../src/dicom/reader.js";
import { TextCleaner, uidMapper } from "../../src/deid/cleaner.js";
import { IdentifierRegistry, type Patient } from "../../src/deid/identifiers.js";
import { LimitError } from "../../src/errors.js";
import { createNiftiFormat, niftiFormat } from "../../src/formats/nifti/index.js";
import type { FormatWriteResult, LearnContext, WriteContext } from "../../src/formats/types.js";
import { compileProfile } from "../../src/profile/profile.js";
import { initSodium } from "../../src/pseudonym/keyed-hash.js";
import { learnDicomFile } from "../../src/run/dicom-file.js";
import { anonymizeTree, expectExitMatchesReport } from "../helpers/cli.js";
import { listFiles, makeTestTree, TEST_SECRET } from "../helpers/tree.js";

const PYTHON = "/usr/bin/python3";
const CT_FILE = "12345678/C1_2019/CT/CT.1.2.826.0.1.3680043.10.1234.1.1.3.1.dcm";

/** Identifiers planted in the inputs, searched for case-insensitively in every output byte. */
const PLANTED = ["doe", "jane", "12345678", "19470316", "1947-03-16"];

function nibabelAvailable(): boolean {
  return spawnSync(PYTHON, ["-c", "import nibabel, pydicom"], { encoding: "utf8" }).status === 0;
}

const HAVE_NIBABEL = nibabelAvailable();
const IN_CI = process.env.CI === "true";

/** Runs a Python program with a JSON argument on stdin and returns its JSON output. */
function runPython<T>(program: string, input: unknown): T {
  const result = spawnSync(PYTHON, ["-c", program], { input: JSON.stringify(input), encoding: "utf8", maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`python failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

const PYTHON_COMMON = `
import hashlib, json, sys
import numpy as np
import nibabel as nib
from pydicom.dataset import Dataset

def data_hash(image):
    array = np.ascontiguousarray(np.asanyarray(image.dataobj.get_unscaled()))
    array = array.astype(array.dtype.newbyteorder("<"))
    return hashlib.sha256(array.tobytes()).hexdigest()
`;

/** Writes one image per case with nibabel. Its text fields and extensions carry the planted identifiers. */
const GENERATE = `${PYTHON_COMMON}
for case in json.load(sys.stdin):
    version, endian = case["version"], case["endian"]
    header_class = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    image_class = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    rng = np.random.default_rng(case["seed"])
    shape = tuple(case["shape"])
    if case["dtype"] == "f4":
        data = rng.standard_normal(shape).astype(endian + "f4")
    else:
        data = rng.integers(-3000, 3000, size=shape).astype(endian + "i2")
    affine = np.array([[-0.9, 0.1, 0, 120.5], [0, 1.1, 0.2, -80.25], [0, 0, 2.5, -40], [0, 0, 0, 1]])
    image = image_class(data, affine, header=header_class(endianness=endian))
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=2)
    header = image.header
    for field, text in case["fields"].items():
        header[field] = text.encode("utf-8")
    header.extensions.append(nib.nifti1.Nifti1Extension("comment", case["comment"].encode("utf-8")))
    patient = case.get("dicom", {"name": "DOE^JANE^M", "id": "12345678", "birth": "19470316"})
    dataset = Dataset()
    dataset.PatientName = patient["name"]
    dataset.PatientID = patient["id"]
    dataset.PatientBirthDate = patient["birth"]
    header.extensions.append(nib.nifti1.Nifti1DicomExtension(2, dataset))
    nib.save(image, case["path"])
print("[]")
`;

/** Reads each file with nibabel and returns what the tests compare. */
const INSPECT = `${PYTHON_COMMON}
out = []
for path in json.load(sys.stdin):
    image = nib.load(path)
    header = image.header
    fields = {}
    for name in ("descrip", "aux_file", "intent_name", "db_name"):
        if name in header:
            fields[name] = header[name].tobytes().decode("latin-1")
    out.append({
        "shape": list(image.shape),
        "affine": image.affine.tolist(),
        "dtype": image.get_data_dtype().str,
        "hash": data_hash(image),
        "fields": fields,
        "extensions": [[int(e.get_code()), e.get_content().decode("latin-1") if isinstance(e.get_content(), bytes) else ""] for e in header.extensions],
        "qform": int(image.get_qform(coded=True)[1]),
        "sform": int(image.get_sform(coded=True)[1]),
    })
print(json.dumps(out))
`;

interface Inspection {
  shape: number[];
  affine: number[][];
  dtype: string;
  hash: string;
  fields: Record<string, string>;
  extensions: Array<[number, string]>;
  qform: number;
  sform: number;
}

function makeRegistry(): { registry: IdentifierRegistry; patient: Patient } {
  const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates: true });
  const patient = registry.patient("12345678");
  registry.addPatientName("DOE^JANE^M", patient);
  registry.addDate("19470316", "birth-date", patient);
  return { registry, patient };
}

function makeContext(relativePath = "12345678/MR/image.nii"): { context: WriteContext; patient: Patient } {
  const { registry, patient } = makeRegistry();
  const context: WriteContext = {
    cleaner: new TextCleaner(registry.allTerms(), uidMapper(TEST_SECRET)),
    patientFor: (key) => registry.patient(key),
    patient,
    shiftDates: true,
    relativePath,
    writeNested: async () => {
      throw new Error("a NIfTI file has no nested files");
    },
  };
  return { context, patient };
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Asserts that no planted identifier occurs in `bytes`. With `wholeWords`,
 * an identifier inside a longer run of letters and digits (512345678) does
 * not count, as for the cleaner.
 */
function expectNoPlanted(bytes: Buffer, label: string, wholeWords = false): void {
  const text = bytes.toString("latin1").toLowerCase();
  for (const identifier of PLANTED) {
    const found = wholeWords ? new RegExp(`(?<![a-z0-9])${identifier}(?![a-z0-9])`).test(text) : text.includes(identifier);
    expect(found, `${label} contains "${identifier}"`).toBe(false);
  }
}

/** Returns the uncompressed bytes of a .nii or .nii.gz file. */
function plainBytes(bytes: Buffer): Buffer {
  return bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
}

interface RawHeader {
  version: 1 | 2;
  littleEndian: boolean;
  headerSize: number;
  voxOffset: number;
}

/** Reads sizeof_hdr and vox_offset directly, independently of the handler's parser. */
function readRawHeader(bytes: Buffer): RawHeader {
  const littleEndian = bytes.readInt32LE(0) === 348 || bytes.readInt32LE(0) === 540;
  const headerSize = littleEndian ? bytes.readInt32LE(0) : bytes.readInt32BE(0);
  if (headerSize === 348) {
    const voxOffset = littleEndian ? bytes.readFloatLE(108) : bytes.readFloatBE(108);
    return { version: 1, littleEndian, headerSize, voxOffset };
  }
  const voxOffset = Number(littleEndian ? bytes.readBigInt64LE(168) : bytes.readBigInt64BE(168));
  return { version: 2, littleEndian, headerSize, voxOffset };
}

/** Byte ranges of the header the handler may change: the text fields and vox_offset. */
function changeableRanges(version: 1 | 2): Array<[number, number]> {
  return version === 1
    ? [[4, 14], [14, 32], [108, 112], [148, 228], [228, 252], [328, 344]]
    : [[168, 176], [240, 320], [320, 344], [508, 524], [525, 540]];
}

function maskRanges(header: Buffer, ranges: Array<[number, number]>): Buffer {
  const copy = Buffer.from(header);
  for (const [start, end] of ranges) copy.fill(0, start, end);
  return copy;
}

let scratch: string;
let counter = 0;

beforeAll(async () => {
  await initSodium();
  scratch = await mkdtemp(join(tmpdir(), "deidkit-nifti-"));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function runHandler(
  bytes: Buffer,
  name = "image.nii",
  handler = niftiFormat,
): Promise<{ output: Buffer; result: FormatWriteResult; inputPath: string; outputPath: string }> {
  counter++;
  const inputPath = join(scratch, `in-${counter}-${name}`);
  const outputPath = join(scratch, `out-${counter}-${name}`);
  await writeFile(inputPath, bytes);
  const { context } = makeContext();
  const result = await handler.write(inputPath, outputPath, context);
  return { output: await readFile(outputPath), result, inputPath, outputPath };
}

async function expectQuarantine(bytes: Buffer, reason: string, name = "image.nii"): Promise<void> {
  const attempt = runHandler(bytes, name);
  await expect(attempt).rejects.toBeInstanceOf(QuarantineReason);
  await expect(attempt).rejects.toMatchObject({ reasonCode: reason });
}

// ---------------------------------------------------------------------------
// Hand-built NIfTI files

interface BuildOptions {
  version?: 1 | 2;
  littleEndian?: boolean;
  magic?: string;
  fields?: Record<string, string>;
  extensions?: Array<{ code: number; content: Buffer; size?: number }>;
  /** Extender byte 0; defaults to 1 when there are extensions. */
  extender?: number;
  voxOffset?: number;
  /** Bytes between the extensions and vox_offset. */
  padding?: Buffer;
  data?: Buffer;
}

const FIELD_OFFSETS: Record<1 | 2, Record<string, [number, number]>> = {
  1: { data_type: [4, 10], db_name: [14, 18], descrip: [148, 80], aux_file: [228, 24], intent_name: [328, 16] },
  2: { descrip: [240, 80], aux_file: [320, 24], intent_name: [508, 16], unused_str: [525, 15] },
};

/** Builds a NIfTI file byte by byte: a 2x2x2 uint8 image unless `data` is given. */
function buildNifti(options: BuildOptions = {}): Buffer {
  const version = options.version ?? 1;
  const littleEndian = options.littleEndian ?? true;
  const headerSize = version === 1 ? 348 : 540;
  const header = Buffer.alloc(headerSize);
  const int16 = (value: number, offset: number) => (littleEndian ? header.writeInt16LE(value, offset) : header.writeInt16BE(value, offset));
  const int32 = (value: number, offset: number) => (littleEndian ? header.writeInt32LE(value, offset) : header.writeInt32BE(value, offset));
  const int64 = (value: number, offset: number) =>
    littleEndian ? header.writeBigInt64LE(BigInt(value), offset) : header.writeBigInt64BE(BigInt(value), offset);
  const float32 = (value: number, offset: number) => (littleEndian ? header.writeFloatLE(value, offset) : header.writeFloatBE(value, offset));
  const float64 = (value: number, offset: number) => (littleEndian ? header.writeDoubleLE(value, offset) : header.writeDoubleBE(value, offset));

  const extensions = (options.extensions ?? []).map(({ code, content, size }) => {
    const esize = size ?? Math.ceil((content.length + 8) / 16) * 16;
    const raw = Buffer.alloc(Math.max(esize, 8 + content.length));
    if (littleEndian) {
      raw.writeInt32LE(esize, 0);
      raw.writeInt32LE(code, 4);
    } else {
      raw.writeInt32BE(esize, 0);
      raw.writeInt32BE(code, 4);
    }
    content.copy(raw, 8);
    return raw.subarray(0, Math.max(esize, 8));
  });
  const padding = options.padding ?? Buffer.alloc(0);
  const used = headerSize + 4 + extensions.reduce((sum, raw) => sum + raw.length, 0) + padding.length;
  const voxOffset = options.voxOffset ?? used;
  const data = options.data ?? Buffer.from([1, 2, 3, 4, 250, 251, 252, 253]);

  int32(headerSize, 0);
  if (version === 1) {
    int16(3, 40);
    for (const [index, size] of [2, 2, 2, 1, 1, 1, 1].entries()) int16(size, 42 + index * 2);
    int16(2, 70); // datatype uint8
    int16(8, 72); // bitpix
    float32(1, 76);
    for (let index = 1; index <= 3; index++) float32(1.5, 76 + index * 4);
    float32(voxOffset, 108);
    float32(1, 112); // scl_slope
    int16(1, 252); // qform_code
    header.write(options.magic ?? "n+1\0", 344, "latin1");
  } else {
    header.write(options.magic ?? "n+2\0\r\n\x1a\n", 4, "latin1");
    int16(2, 12);
    int16(8, 14);
    int64(3, 16);
    for (const [index, size] of [2, 2, 2, 1, 1, 1, 1].entries()) int64(size, 24 + index * 8);
    float64(1, 104);
    for (let index = 1; index <= 3; index++) float64(1.5, 104 + index * 8);
    int64(voxOffset, 168);
    float64(1, 176);
    int32(1, 344); // qform_code
  }
  for (const [name, text] of Object.entries(options.fields ?? {})) {
    const [offset, length] = FIELD_OFFSETS[version][name];
    const bytes = Buffer.from(text, "utf8");
    bytes.copy(header, offset, 0, Math.min(bytes.length, length));
  }
  const extender = Buffer.from([options.extender ?? (extensions.length ? 1 : 0), 0, 0, 0]);
  const region = Buffer.concat([header, extender, ...extensions, padding]);
  const gap = Buffer.alloc(Math.max(0, voxOffset - region.length));
  return Buffer.concat([region, gap, data]);
}

describe.skipIf(!HAVE_NIBABEL && !IN_CI)("NIfTI images written by nibabel", () => {
  it("nibabel is installed", () => {
    // Under CI=true a missing nibabel fails here instead of skipping the suite.
    expect(HAVE_NIBABEL, "install python3-nibabel (Debian) for /usr/bin/python3").toBe(true);
  });

  const cases = [1, 2].flatMap((version) =>
    ["<", ">"].flatMap((endian) =>
      [false, true].map((compressed) => ({
        version: version as 1 | 2,
        endian,
        compressed,
        name: `doe_jane_v${version}_${endian === "<" ? "le" : "be"}.nii${compressed ? ".gz" : ""}`,
      })),
    ),
  );

  const fieldsOf = (version: 1 | 2): Record<string, string> => ({
    descrip: "Doe, Jane 12345678 born 19470316 planning MR",
    aux_file: "DOE^JANE^M.txt",
    intent_name: "id 12345678",
    ...(version === 1 ? { db_name: "Jane Doe" } : {}),
  });

  let inputs: Array<(typeof cases)[number] & { path: string }> = [];
  let originals: Inspection[] = [];

  beforeAll(() => {
    if (!HAVE_NIBABEL) return;
    inputs = cases.map((entry) => ({ ...entry, path: join(scratch, entry.name) }));
    runPython(
      GENERATE,
      inputs.map((entry, index) => ({
        path: entry.path,
        version: entry.version,
        endian: entry.endian,
        seed: index + 1,
        shape: entry.version === 1 ? [7, 6, 5] : [4, 5, 3, 2],
        dtype: index % 2 === 0 ? "i2" : "f4",
        fields: fieldsOf(entry.version),
        comment: "Patient Doe, Jane (MRN 12345678), born 1947-03-16; contoured on the planning CT.",
      })),
    );
    originals = runPython<Inspection[]>(INSPECT, inputs.map((entry) => entry.path));
  });

  it("generated inputs carry the planted identifiers", () => {
    expect(originals).toHaveLength(cases.length);
    for (const original of originals) {
      expect(original.fields.descrip).toContain("Doe, Jane 12345678");
      expect(original.extensions.map(([code]) => code)).toEqual([6, 2]);
    }
  });

  it.each(cases)("de-identifies $name", async (entry) => {
    const index = cases.indexOf(entry);
    const input = inputs[index];
    const inputBytes = await readFile(input.path);
    const outputPath = join(scratch, `deid-${entry.version}-${entry.endian === "<" ? "le" : "be"}${entry.compressed ? ".nii.gz" : ".nii"}`);
    const { context, patient } = makeContext();

    const result = await niftiFormat.write(input.path, outputPath, context);
    const output = await readFile(outputPath);

    // Same image, read by nibabel.
    const [inspected] = runPython<Inspection[]>(INSPECT, [outputPath]);
    const original = originals[index];
    expect(inspected.shape).toEqual(original.shape);
    expect(inspected.affine).toEqual(original.affine);
    expect(inspected.dtype).toBe(original.dtype);
    expect(inspected.hash).toBe(original.hash);
    expect(inspected.qform).toBe(1);
    expect(inspected.sform).toBe(2);

    // Text fields and the comment are cleaned, the DICOM extension is gone.
    for (const [name, text] of Object.entries(inspected.fields)) {
      for (const identifier of PLANTED) expect(text.toLowerCase(), name).not.toContain(identifier);
    }
    expect(inspected.fields.descrip).toContain(patient.pseudonymName);
    expect(inspected.extensions.map(([code]) => code)).toEqual([6]);
    expect(inspected.extensions[0][1]).toContain("contoured on the planning CT");
    expect(inspected.extensions[0][1]).toContain(patient.pseudonymName);
    expect(result.replacements).toBeGreaterThanOrEqual(8);

    // No planted identifier in any byte, the gzip header included.
    const isGzip = output[0] === 0x1f && output[1] === 0x8b;
    expect(isGzip).toBe(entry.compressed);
    expectNoPlanted(output, "output file");
    const plainInput = plainBytes(inputBytes);
    const plainOutput = plainBytes(output);
    expectNoPlanted(plainOutput, "uncompressed output");

    // The header is byte-identical outside the text fields and vox_offset,
    // and the voxel data is byte-identical after the new vox_offset.
    const before = readRawHeader(plainInput);
    const after = readRawHeader(plainOutput);
    expect(after.littleEndian).toBe(entry.endian === "<");
    expect(after.version).toBe(entry.version);
    const ranges = changeableRanges(entry.version);
    expect(maskRanges(plainOutput.subarray(0, after.headerSize), ranges).equals(maskRanges(plainInput.subarray(0, before.headerSize), ranges))).toBe(true);
    expect(after.voxOffset % 16).toBe(0);
    expect(after.voxOffset).toBeLessThan(before.voxOffset);
    expect(plainOutput.subarray(after.voxOffset).equals(plainInput.subarray(before.voxOffset))).toBe(true);

    // The input file is untouched.
    expect(sha256(await readFile(input.path))).toBe(sha256(inputBytes));
  });

  it("CLI run cleans a .nii.gz next to a DICOM file", async () => {
    const tree = await makeTestTree({ include: [CT_FILE] });
    try {
      const folder = join(tree.input, "12345678", "C1_2019", "MR");
      await mkdir(folder, { recursive: true });
      const niftiPath = join(folder, "planning_mr.nii.gz");
      runPython(GENERATE, [
        {
          path: niftiPath,
          version: 1,
          endian: "<",
          seed: 99,
          shape: [6, 5, 4],
          dtype: "i2",
          fields: { descrip: "Doe, Jane 12345678" },
          comment: "acquired for DOE^JANE^M",
        },
      ]);
      const [original] = runPython<Inspection[]>(INSPECT, [niftiPath]);
      // This patient is known only from the image's own DICOM extension.
      await mkdir(join(tree.input, "converted"));
      runPython(GENERATE, [
        {
          path: join(tree.input, "converted", "other.nii"),
          version: 2,
          endian: ">",
          seed: 98,
          shape: [3, 3, 3],
          dtype: "i2",
          fields: { descrip: "Roe, Richard 87654321" },
          comment: "RICHARD ROE born 1950-01-01",
          dicom: { name: "ROE^RICHARD", id: "87654321", birth: "19500101" },
        },
      ]);

      const run = await anonymizeTree(tree, "out");
      expect(await expectExitMatchesReport(run)).toBe(0);
      const report = JSON.parse(await readFile(run.reportPath, "utf8")) as { filesWritten: number; patients: number };
      expect(report.filesWritten).toBe(3);
      expect(report.patients).toBe(2);

      const outputs = await listFiles(run.output);
      const otherOutputs = outputs.filter((path) => path.endsWith(".nii"));
      expect(otherOutputs).toHaveLength(1);
      const other = await readFile(join(run.output, ...otherOutputs[0].split("/")));
      expect(other.toString("latin1")).not.toMatch(/roe|richard|87654321|1950-01-01|19500101/i);

      const niftiOutputs = outputs.filter((path) => path.endsWith(".nii.gz"));
      expect(niftiOutputs).toHaveLength(1);
      const outputPath = join(run.output, ...niftiOutputs[0].split("/"));
      const [inspected] = runPython<Inspection[]>(INSPECT, [outputPath]);
      expect(inspected.shape).toEqual(original.shape);
      expect(inspected.affine).toEqual(original.affine);
      expect(inspected.hash).toBe(original.hash);
      expect(inspected.fields.descrip.toLowerCase()).not.toContain("doe");
      expect(inspected.fields.descrip).not.toContain("12345678");
      expect(inspected.extensions.map(([code]) => code)).toEqual([6]);
      expectNoPlanted(plainBytes(await readFile(outputPath)), "NIfTI output");
      for (const path of outputs) expectNoPlanted(plainBytes(await readFile(join(run.output, ...path.split("/")))), path, true);
      expect(run.stdout + run.stderr).not.toMatch(/doe|jane|12345678/i);
    } finally {
      await tree.cleanup();
    }
  });
});

describe("NIfTI header rewrite", () => {
  it("copies an image without identifiers byte for byte", async () => {
    for (const version of [1, 2] as const) {
      const input = buildNifti({ version, fields: { descrip: "T1 planning MR, 1.5 mm" }, extensions: [{ code: 6, content: Buffer.from("resampled to CT grid") }] });
      const { output, result } = await runHandler(input);
      expect(output.equals(input), `version ${version}`).toBe(true);
      expect(result.replacements).toBe(0);
    }
  });

  it("keeps a .nii.gz without identifiers identical after gunzip", async () => {
    const input = buildNifti({ version: 2, littleEndian: false, fields: { descrip: "dose grid" } });
    const { output } = await runHandler(gzipSync(input), "image.nii.gz");
    expect(gunzipSync(output).equals(input)).toBe(true);
  });

  it("drops the gzip header name and comment", async () => {
    const compressed = gzipSync(buildNifti({ fields: { descrip: "dose grid" } }));
    // FNAME (0x08) and FCOMMENT (0x10) follow the 10-byte gzip header as NUL-terminated strings.
    const named = Buffer.concat([
      compressed.subarray(0, 3),
      Buffer.from([0x18]),
      compressed.subarray(4, 10),
      Buffer.from("Doe_Jane_12345678.nii\0Jane Doe 19470316\0", "latin1"),
      compressed.subarray(10),
    ]);
    expect(gunzipSync(named).equals(gunzipSync(compressed))).toBe(true);
    const { output } = await runHandler(named, "image.nii.gz");
    expect(output[3] & 0x18).toBe(0);
    expectNoPlanted(output, "output");
  });

  it("cleans text after the first NUL", async () => {
    const input = buildNifti({ fields: { descrip: "MR\0Doe, Jane", aux_file: "\0\0\x0012345678" } });
    const { output, result } = await runHandler(input);
    expectNoPlanted(output, "output");
    expect(output.subarray(148, 150).toString("latin1")).toBe("MR");
    expect(result.replacements).toBe(2);
  });

  it("cuts a longer result at a word", async () => {
    const { context, patient } = makeContext();
    const pseudonym = patient.pseudonymId;
    const filled = Array.from({ length: 10 }, () => "12345678").join(" ").slice(0, 80);
    const input = buildNifti({ fields: { descrip: filled, intent_name: "12345678 12345" } });
    const { output } = await runHandler(input);
    expect(output.length).toBe(input.length);

    const descrip = output.subarray(148, 228).toString("latin1");
    const words = descrip.replace(/\0+$/, "").split(" ");
    const fitting = Math.floor((80 + 1) / (pseudonym.length + 1));
    expect(words).toEqual(Array.from({ length: fitting }, () => pseudonym));
    expect(context.cleaner.contains(descrip)).toBe(false);

    const intentName = output.subarray(328, 344).toString("latin1");
    expect(intentName).toBe(pseudonym.padEnd(16, "\0"));
    expectNoPlanted(output, "output");
  });

  it("keeps UTF-8 whole when truncating", async () => {
    const { registry, patient } = makeRegistry();
    registry.addPatientName("MÜLLER^JÖRG", patient);
    const cleaner = new TextCleaner(registry.allTerms(), uidMapper(TEST_SECRET));
    const input = buildNifti({ fields: { intent_name: "ééé Müller" } });
    const inputPath = join(scratch, "utf8-in.nii");
    const outputPath = join(scratch, "utf8-out.nii");
    await writeFile(inputPath, input);
    const { context } = makeContext();
    await niftiFormat.write(inputPath, outputPath, { ...context, cleaner });
    const output = await readFile(outputPath);
    const field = output.subarray(328, 344);
    const end = field.indexOf(0) < 0 ? 16 : field.indexOf(0);
    expect(Buffer.from(field.subarray(0, end).toString("utf8"), "utf8").equals(field.subarray(0, end))).toBe(true);
    expect(field.toString("utf8")).not.toMatch(/müller/i);
  });

  it("removes DICOM and unknown extensions and moves the data", async () => {
    const data = Buffer.from(Array.from({ length: 8 }, (_, index) => index * 31));
    const input = buildNifti({
      version: 1,
      littleEndian: false,
      data,
      extensions: [
        { code: 2, content: Buffer.from("\x10\x00\x10\x00PN\x0a\x00DOE^JANE^M", "latin1") },
        { code: 6, content: Buffer.from("kept comment") },
        { code: 36, content: Buffer.alloc(40, 7) },
      ],
    });
    const { output, result } = await runHandler(input);
    const raw = readRawHeader(output);
    expect(raw.voxOffset).toBe(352 + 32);
    expect(output.readInt32BE(352)).toBe(32);
    expect(output.readInt32BE(356)).toBe(6);
    expect(output.subarray(360, 372).toString("latin1")).toBe("kept comment");
    expect(output.subarray(raw.voxOffset).equals(data)).toBe(true);
    expect(result.replacements).toBe(2);
    expectNoPlanted(output, "output");
  });

  it("clears the extender when no extension is left", async () => {
    const input = buildNifti({ version: 2, extensions: [{ code: 2, content: Buffer.from("DOE^JANE") }] });
    const { output } = await runHandler(input);
    expect(output[540]).toBe(0);
    expect(readRawHeader(output).voxOffset).toBe(544);
    expect(output.length).toBe(544 + 8);
  });

  it("removes a text extension whose content is binary", async () => {
    const input = buildNifti({ extensions: [{ code: 6, content: Buffer.from([0x44, 0x01, 0x02, 0x6f, 0x65]) }] });
    const { output } = await runHandler(input);
    expect(output[348]).toBe(0);
    expect(readRawHeader(output).voxOffset).toBe(352);
  });

  it("re-pads a cleaned extension to 16 bytes", async () => {
    const input = buildNifti({ extensions: [{ code: 44, content: Buffer.from('{"PatientName": "DOE^JANE^M", "SpectrometerFrequency": [123.2]}') }] });
    const { output } = await runHandler(input);
    const esize = output.readInt32LE(352);
    expect(esize % 16).toBe(0);
    const json = output.subarray(360, 352 + esize).toString("utf8").replace(/\0+$/, "");
    expect(JSON.parse(json)).toMatchObject({ SpectrometerFrequency: [123.2] });
    expect(json.toLowerCase()).not.toContain("doe");
    expect(readRawHeader(output).voxOffset).toBe(352 + esize);
  });

  it("drops non-zero bytes before vox_offset", async () => {
    const input = buildNifti({ padding: Buffer.from("Doe, Jane\0\0\0\0\0\0\0", "latin1") });
    const { output, result } = await runHandler(input);
    expect(readRawHeader(output).voxOffset).toBe(352);
    expect(result.replacements).toBe(1);
    expectNoPlanted(output, "output");
  });

  it("accepts an extender whose extension area is all zeros", async () => {
    const input = buildNifti({ extender: 1, padding: Buffer.alloc(32) });
    const { output } = await runHandler(input);
    expect(output.equals(input)).toBe(true);
  });

  it("keeps unaligned vox_offset for field edits", async () => {
    const input = buildNifti({ fields: { descrip: "Doe" }, padding: Buffer.alloc(4) });
    expect(readRawHeader(input).voxOffset).toBe(356);
    const { output } = await runHandler(input);
    expect(readRawHeader(output).voxOffset).toBe(356);
    expect(output.length).toBe(input.length);
  });

  it("rejects an existing target", async () => {
    const inputPath = join(scratch, "exists-in.nii");
    const outputPath = join(scratch, "exists-out.nii");
    await writeFile(inputPath, buildNifti());
    await writeFile(outputPath, "already here");
    const { context } = makeContext();
    await expect(niftiFormat.write(inputPath, outputPath, context)).rejects.toMatchObject({ code: "EEXIST" });
    expect(await readFile(outputPath, "utf8")).toBe("already here");
  });
});

describe("NIfTI DICOM extension learning", () => {
  /** Encodes one explicit VR little endian element with a 16-bit length. */
  function element(group: number, elementNumber: number, vr: string, value: Buffer): Buffer {
    const head = Buffer.alloc(8);
    head.writeUInt16LE(group, 0);
    head.writeUInt16LE(elementNumber, 2);
    head.write(vr, 4, "latin1");
    head.writeUInt16LE(value.length, 6);
    return Buffer.concat([head, value]);
  }

  const name = element(0x0010, 0x0010, "PN", Buffer.from("ROE^RICHARD ", "latin1"));
  const id = element(0x0010, 0x0020, "LO", Buffer.from("87654321", "latin1"));
  // (0020,000D) UI padded with a NUL, so the data set itself ends in a NUL byte.
  const uid = element(0x0020, 0x000d, "UI", Buffer.from("1.2.826.0.1.3680043.10.99.123\0", "latin1"));
  // (0040,0275) SQ of undefined length whose delimiter ends the data set in four NUL bytes.
  const sequence = Buffer.concat([
    Buffer.from([0x40, 0x00, 0x75, 0x02, 0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff]),
    Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]),
    element(0x0040, 0x1001, "SH", Buffer.from("RP-87654321 ", "latin1")),
    Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]),
    Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]),
  ]);

  function learnContext(registry: IdentifierRegistry, relativePath: string): LearnContext {
    const profile = compileProfile([]);
    return {
      registry,
      relativePath,
      learnNested: async (path) => {
        if (!looksLikeDicom((await readFile(path)).subarray(0, 256))) {
          throw new QuarantineReason("UNSUPPORTED_FORMAT", "not DICOM");
        }
        await learnDicomFile(path, registry, profile, { limits: DEFAULT_READ_LIMITS, maxInflatedBytes: 1 << 20 });
      },
    };
  }

  async function learnAndWrite(dataset: Buffer, compressed: boolean): Promise<{ registry: IdentifierRegistry; output: Buffer }> {
    const plain = buildNifti({
      fields: { descrip: "Roe, Richard 87654321" },
      extensions: [{ code: 2, content: dataset }, { code: 6, content: Buffer.from("RICHARD ROE") }],
    });
    counter++;
    const inputPath = join(scratch, `learn-${counter}.nii${compressed ? ".gz" : ""}`);
    await writeFile(inputPath, compressed ? gzipSync(plain) : plain);
    const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates: true });
    await niftiFormat.learn!(inputPath, learnContext(registry, "converted/image.nii"));

    const outputPath = `${inputPath}.out`;
    const { context } = makeContext();
    await niftiFormat.write(inputPath, outputPath, { ...context, cleaner: new TextCleaner(registry.allTerms(), uidMapper(TEST_SECRET)) });
    return { registry, output: plainBytes(await readFile(outputPath)) };
  }

  it.each([
    ["ending in a padded UI value", Buffer.concat([name, id, uid]), false],
    ["ending in a sequence delimiter", Buffer.concat([name, id, sequence]), true],
  ])("learns a data set %s", async (_label, dataset, compressed) => {
    const { registry, output } = await learnAndWrite(dataset, compressed);
    expect(registry.findPatient("87654321")).toBeDefined();
    expect(output.toString("latin1")).not.toMatch(/roe|richard|87654321/i);
    expect(output[348]).toBe(1);
    expect(output.readInt32LE(356)).toBe(6);
  });

  it("leaves out an unreadable DICOM extension", async () => {
    const input = buildNifti({ extensions: [{ code: 2, content: Buffer.from("not a data set at all") }] });
    const inputPath = join(scratch, "unreadable-dicom-extension.nii");
    await writeFile(inputPath, input);
    const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates: true });
    const attempt = niftiFormat.learn!(inputPath, learnContext(registry, "image.nii"));
    await expect(attempt).rejects.toMatchObject({ reasonCode: "NIFTI_DICOM_EXTENSION_INVALID" });
  });

  it("skips images without a DICOM extension", async () => {
    const inputPath = join(scratch, "no-dicom-extension.nii.gz");
    await writeFile(inputPath, gzipSync(buildNifti({ extensions: [{ code: 6, content: Buffer.from("note") }] })));
    const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates: true });
    const context = learnContext(registry, "image.nii.gz");
    let calls = 0;
    await niftiFormat.learn!(inputPath, { ...context, learnNested: async () => void calls++ });
    expect(calls).toBe(0);
  });

  it("rejects an Analyze header in pass 1", async () => {
    const inputPath = join(scratch, "analyze-learn.hdr");
    await writeFile(inputPath, buildNifti({ magic: "\0\0\0\0" }));
    const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates: true });
    await expect(niftiFormat.learn!(inputPath, learnContext(registry, "analyze.hdr"))).rejects.toMatchObject({ reasonCode: "ANALYZE_UNSUPPORTED" });
  });
});

describe("NIfTI files left out", () => {
  it("Analyze 7.5 header", async () => {
    await expectQuarantine(buildNifti({ magic: "\0\0\0\0" }), "ANALYZE_UNSUPPORTED", "image.hdr");
  });

  it("NIfTI-1 and NIfTI-2 pair headers", async () => {
    await expectQuarantine(buildNifti({ magic: "ni1\0" }), "NIFTI_PAIR_UNSUPPORTED", "image.hdr");
    await expectQuarantine(buildNifti({ version: 2, magic: "ni2\0\r\n\x1a\n" }), "NIFTI_PAIR_UNSUPPORTED", "image.hdr");
  });

  it("NIfTI-2 magic damaged by a text-mode transfer", async () => {
    await expectQuarantine(buildNifti({ version: 2, magic: "n+2\0\n\x1a\n\0" }), "NIFTI_INVALID");
  });

  it("unknown sizeof_hdr", async () => {
    const input = buildNifti();
    input.writeInt32LE(349, 0);
    await expectQuarantine(input, "NIFTI_INVALID");
  });

  it("vox_offset inside the header or fractional", async () => {
    const low = buildNifti();
    low.writeFloatLE(348, 108);
    await expectQuarantine(low, "NIFTI_INVALID");
    const fractional = buildNifti();
    fractional.writeFloatLE(352.5, 108);
    await expectQuarantine(fractional, "NIFTI_INVALID");
  });

  it("file that ends before vox_offset", async () => {
    const input = buildNifti({ extensions: [{ code: 6, content: Buffer.from("note") }] });
    await expectQuarantine(input.subarray(0, 360), "NIFTI_INVALID");
    await expectQuarantine(gzipSync(input.subarray(0, 200)), "NIFTI_INVALID", "image.nii.gz");
  });

  it("extension size below 16 or past vox_offset", async () => {
    await expectQuarantine(buildNifti({ extensions: [{ code: 6, content: Buffer.alloc(8), size: 8 }], padding: Buffer.alloc(8) }), "NIFTI_EXTENSION_INVALID");
    const past = buildNifti({ extensions: [{ code: 6, content: Buffer.from("comment") }] });
    past.writeInt32LE(64, 352);
    await expectQuarantine(past, "NIFTI_EXTENSION_INVALID");
  });

  it("damaged gzip stream", async () => {
    const compressed = gzipSync(buildNifti({ data: Buffer.alloc(4096, 9) }));
    await expectQuarantine(compressed.subarray(0, compressed.length - 12), "NIFTI_GZIP_INVALID", "image.nii.gz");
    const corrupt = Buffer.from(compressed);
    corrupt.fill(0xff, 20, 40);
    await expectQuarantine(corrupt, "NIFTI_GZIP_INVALID", "image.nii.gz");
  });
});

describe("NIfTI caps", () => {
  async function expectLimit(bytes: Buffer, name: string, limits: Parameters<typeof createNiftiFormat>[0], capName: string) {
    const attempt = runHandler(bytes, name, createNiftiFormat(limits));
    await expect(attempt).rejects.toBeInstanceOf(LimitError);
    await expect(attempt).rejects.toThrow(capName);
  }

  it("caps vox_offset", async () => {
    const input = buildNifti({ extensions: [{ code: 6, content: Buffer.alloc(1000, 0x41) }] });
    await expectLimit(input, "image.nii", { maxHeaderRegionBytes: 1024 }, "maxHeaderRegionBytes");
  });

  it("caps the number of extensions", async () => {
    const extensions = Array.from({ length: 5 }, () => ({ code: 6, content: Buffer.from("x") }));
    await expectLimit(buildNifti({ extensions }), "image.nii", { maxExtensions: 4 }, "maxExtensions");
  });

  it("caps the decompressed size of a .nii.gz", async () => {
    const input = gzipSync(buildNifti({ data: Buffer.alloc(1 << 20) }));
    await expectLimit(input, "image.nii.gz", { maxStreamBytes: 1 << 19 }, "maxStreamBytes, counted after gunzip");
  });
});

describe("NIfTI detection", () => {
  const head = (bytes: Buffer) => bytes.subarray(0, 256);

  it.each([
    ["NIfTI-1 little endian", buildNifti()],
    ["NIfTI-1 big endian", buildNifti({ littleEndian: false })],
    ["NIfTI-2 little endian", buildNifti({ version: 2 })],
    ["NIfTI-2 big endian", buildNifti({ version: 2, littleEndian: false })],
  ])("matches %s by content", (_label, bytes) => {
    expect(niftiFormat.matches("scan.bin", head(bytes))).toBe(true);
    expect(niftiFormat.matches("scan.gz", head(gzipSync(bytes)))).toBe(true);
  });

  it("matches by name", () => {
    expect(niftiFormat.matches("a/b/Scan.NII", Buffer.alloc(0))).toBe(true);
    expect(niftiFormat.matches("a/b/scan.nii.gz", Buffer.from([0x1f, 0x8b]))).toBe(true);
  });

  it("ignores other files", () => {
    expect(niftiFormat.matches("notes.gz", head(gzipSync(Buffer.from("Doe, Jane\n".repeat(100)))))).toBe(false);
    expect(niftiFormat.matches("data.bin", Buffer.from("hello world, this is not an image"))).toBe(false);
    const noDims = buildNifti();
    noDims.writeInt16LE(0, 40);
    expect(niftiFormat.matches("data.bin", head(noDims))).toBe(false);
    expect(niftiFormat.matches("image.img", Buffer.alloc(256, 3))).toBe(false);
  });
});

describe("NIfTI in a tree", () => {
  it("leaves an Analyze pair out with its reason", async () => {
    const tree = await makeTestTree({ include: [CT_FILE] });
    try {
      const folder = join(tree.input, "12345678", "C1_2019", "MR");
      await mkdir(folder, { recursive: true });
      await writeFile(join(folder, "old.hdr"), buildNifti({ magic: "\0\0\0\0" }).subarray(0, 348));
      await copyFile(join(tree.input, CT_FILE), join(folder, "copy.dcm"));
      const run = await anonymizeTree(tree, "out");
      const report = JSON.parse(await readFile(run.reportPath, "utf8")) as { quarantined: Array<{ reason: string; message: string }> };
      expect(report.quarantined.map((entry) => entry.reason)).toEqual(["ANALYZE_UNSUPPORTED"]);
      expect(run.code).toBe(1);
    } finally {
      await tree.cleanup();
    }
  });
});
