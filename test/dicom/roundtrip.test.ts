// Parse, then write without changes: the data set bytes must come back
// identical, for every transfer syntax, length form and value size.

import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateRawSync } from "node:zlib";

import { afterAll, describe, expect, test } from "vitest";

import { isBulkRef, type Element, type Item } from "../../src/dicom/dataset.js";
import { emitDeflated, emitParts, openDicom } from "../../src/dicom/file-io.js";
import { DEFAULT_READ_LIMITS, parseDicom, type ReadLimits } from "../../src/dicom/reader.js";
import { BufferSource, FileSource, type ByteSource } from "../../src/dicom/source.js";
import { writeDataset, writePart10, type Part } from "../../src/dicom/writer.js";
import {
  deflatedPart10,
  encapsulated,
  encodeDataset,
  EXPLICIT_BE,
  EXPLICIT_LE,
  fd,
  IMPLICIT_LE,
  item,
  part10,
  raw,
  samplePath,
  sequence,
  skipUnlessSample,
  text,
  ul,
  us,
  type ElementSpec,
  type Encoding,
} from "../helpers/dicom-bytes.js";

const workDir = mkdtempSync(join(tmpdir(), "deidkit-roundtrip-test-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

let fileCounter = 0;

/** Writes parts with emitParts to a new file and returns its bytes. */
function emitToBytes(parts: Part[]): Buffer {
  const path = join(workDir, `out-${++fileCounter}.dcm`);
  const fd = openSync(path, "wx");
  let written: number;
  try {
    written = emitParts(parts, fd);
  } finally {
    closeSync(fd);
  }
  const bytes = readFileSync(path);
  expect(written).toBe(bytes.length);
  return bytes;
}

function limitsWith(inlineLimit: number): ReadLimits {
  return { ...DEFAULT_READ_LIMITS, inlineLimit };
}

/** Visits every element of a data set, items included. */
function* walk(item: Item): Generator<Element> {
  for (const element of item.elements) {
    yield element;
    for (const child of element.items ?? []) yield* walk(child);
  }
}

/** Records every range the parser reads through `read()`. */
class RecordingSource implements ByteSource {
  readonly reads: Array<[number, number]> = [];

  constructor(private readonly inner: ByteSource) {}

  get size(): number {
    return this.inner.size;
  }

  read(offset: number, length: number): Buffer {
    this.reads.push([offset, offset + length]);
    return this.inner.read(offset, length);
  }

  readInto(offset: number, target: Buffer, length: number): number {
    return this.inner.readInto(offset, target, length);
  }

  close(): void {
    this.inner.close();
  }
}

describe("round trip of pydicom sample files", () => {
  // Each file is written back with writePart10 (or writeDataset when it has
  // no file meta), once with every value in memory and once with values
  // over 1 KiB left in the input as BulkRefs.
  const samples = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "ExplVR_BigEnd.dcm",
    "ExplVR_LitEndNoMeta.dcm",
    "ExplVR_BigEndNoMeta.dcm",
    "JPEG2000.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "SC_rgb_rle.dcm",
    "JPEG-lossy.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "rtdose.dcm",
    "UN_sequence.dcm",
    "nested_priv_SQ.dcm",
    "priv_SQ.dcm",
    "reportsi.dcm",
    "no_meta_group_length.dcm",
    "MR_small_expb.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_small_odd.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
    "waveform_ecg.dcm",
    "test-SR.dcm",
  ];
  const cases = samples.flatMap((name) => [
    { name, inlineLimit: DEFAULT_READ_LIMITS.inlineLimit },
    { name, inlineLimit: 1024 },
  ]);

  test.for(cases)("$name, inlineLimit $inlineLimit", async ({ name, inlineLimit }, context) => {
    if (skipUnlessSample(name)) context.skip();
    const input = readFileSync(samplePath(name));
    const opened = await openDicom(samplePath(name), { limits: limitsWith(inlineLimit) });
    try {
      const original = input.subarray(opened.datasetOffset);
      if (opened.meta.elements.length === 0) {
        expect(emitToBytes(writeDataset(opened.dataset))).toEqual(original);
      } else {
        const output = emitToBytes(writePart10(opened.meta.elements, opened.dataset));
        const reparsed = parseDicom(new BufferSource(output));
        expect(output.subarray(reparsed.datasetOffset)).toEqual(original);
        expect(output.subarray(0, 128)).toEqual(Buffer.alloc(128));
        if (opened.meta.elements[0].tag === 0x00020000) {
          // The meta had a group length, so the meta group is identical too.
          expect(output.subarray(128)).toEqual(input.subarray(128));
        }
      }
    } finally {
      opened.close();
    }
    expect(readFileSync(samplePath(name)).equals(input), "input file unchanged").toBe(true);
  });

  test.skipIf(skipUnlessSample("image_dfl.dcm"))("image_dfl.dcm: deflated data set", async () => {
    const input = readFileSync(samplePath("image_dfl.dcm"));
    const opened = await openDicom(samplePath("image_dfl.dcm"), { limits: limitsWith(1024) });
    const target = join(workDir, "image_dfl-out.dcm");
    try {
      expect(opened.transferSyntax.deflated).toBe(true);
      expect(opened.dataset.elements.some((element) => element.bulk !== undefined)).toBe(true);
      await emitDeflated(writePart10(opened.meta.elements, undefined), writeDataset(opened.dataset), target);
    } finally {
      opened.close();
    }
    const output = readFileSync(target);
    const metaEnd = opened.datasetOffset;
    expect(output.subarray(128, metaEnd)).toEqual(input.subarray(128, metaEnd));
    expect(inflateRawSync(output.subarray(metaEnd))).toEqual(inflateRawSync(input.subarray(metaEnd)));
  });

  test.skipIf(skipUnlessSample("CT_small.dcm"))("pixel data is never read while parsing", () => {
    const source = new RecordingSource(new FileSource(samplePath("CT_small.dcm")));
    try {
      const parsed = parseDicom(source, limitsWith(1024));
      const pixels = parsed.dataset.elements.find((element) => element.tag === 0x7fe00010)!;
      expect(pixels.bytes).toBeUndefined();
      const bulk = pixels.bulk!;
      expect(bulk.length).toBe(128 * 128 * 2);
      const overlapping = source.reads.filter(([start, end]) => start < bulk.offset + bulk.length && end > bulk.offset);
      expect(overlapping).toEqual([]);

      const output = emitToBytes(writePart10(parsed.meta.elements, parsed.dataset));
      expect(output.subarray(128)).toEqual(readFileSync(samplePath("CT_small.dcm")).subarray(128));
    } finally {
      source.close();
    }
  });

  test.skipIf(skipUnlessSample("JPEG-lossy.dcm"))("large fragments stay BulkRefs", () => {
    const source = new RecordingSource(new FileSource(samplePath("JPEG-lossy.dcm")));
    try {
      const parsed = parseDicom(source, limitsWith(1024));
      const fragments = parsed.dataset.elements.find((element) => element.tag === 0x7fe00010)!.fragments!;
      const bulk = fragments.filter(isBulkRef);
      expect(bulk.length).toBeGreaterThan(0);
      for (const fragment of bulk) {
        const overlapping = source.reads.filter(
          ([start, end]) => start < fragment.offset + fragment.length && end > fragment.offset,
        );
        expect(overlapping).toEqual([]);
      }
      const output = emitToBytes(writePart10(parsed.meta.elements, parsed.dataset));
      expect(output.subarray(128)).toEqual(readFileSync(samplePath("JPEG-lossy.dcm")).subarray(128));
    } finally {
      source.close();
    }
  });

  test.skipIf(skipUnlessSample("UN_sequence.dcm", "nested_priv_SQ.dcm"))("UN sequences keep implicit VR items", async () => {
    for (const name of ["UN_sequence.dcm", "nested_priv_SQ.dcm"]) {
      const opened = await openDicom(samplePath(name));
      try {
        const unElements = [...walk(opened.dataset)].filter((element) => element.vr === "UN" && element.items);
        expect(unElements.length, name).toBeGreaterThan(0);
        for (const element of unElements) {
          for (const child of element.items!) expect(child.syntax).toEqual({ littleEndian: true, explicitVr: false });
        }
      } finally {
        opened.close();
      }
    }
  });
});

describe("round trip of hand-built data sets", () => {
  /**
   * Builds one data set with every structure the engine handles: both length
   * forms, empty sequences and items, UN holding a sequence, private
   * creators with a private SQ three levels down, multi-valued and
   * odd-length values.
   */
  function kitchenSink(encoding: Encoding): ElementSpec[] {
    const privateSequenceVr = encoding.explicitVr ? "SQ" : "UN";
    return [
      text(0x00080005, "CS", "ISO_IR 100"),
      text(0x00080008, "CS", "ORIGINAL\\PRIMARY\\AXIAL"),
      raw(0x00080016, "UI", Buffer.from("1.2.840.10008.5.1.4.1.1.7", "latin1")),
      text(0x00080060, "CS", "OT"),
      raw(0x00081030, "LO", Buffer.from("odd", "latin1")),
      sequence(0x00081115, [
        item([
          sequence(0x00081199, [item([text(0x00081150, "UI", "1.2.3"), text(0x00081155, "UI", "1.2.3.4")], { undefinedLength: true })], {
            undefinedLength: true,
          }),
          text(0x0020000e, "UI", "1.2.3.4.5"),
        ]),
        item([], { undefinedLength: true }),
        item([]),
      ]),
      sequence(0x00081140, [], { undefinedLength: true }),
      sequence(0x00081150 + 0x10, []),
      text(0x00090010, "LO", "ACME 1.0"),
      text(0x00090011, "LO", "OTHER"),
      sequence(
        0x00091001,
        [
          item([
            text(0x00090010, "LO", "ACME 1.0"),
            sequence(
              0x00091002,
              [
                item(
                  [
                    text(0x00090010, "LO", "ACME 1.0"),
                    sequence(0x00091003, [item([text(0x00091004, privateSequenceVr === "SQ" ? "LO" : "UN", "deep")], { undefinedLength: true })], {
                      undefinedLength: true,
                      vr: privateSequenceVr,
                    }),
                  ],
                  { undefinedLength: true },
                ),
              ],
              { undefinedLength: true, vr: privateSequenceVr },
            ),
          ], { undefinedLength: true }),
        ],
        { undefinedLength: true, vr: privateSequenceVr },
      ),
      raw(0x00091101, encoding.explicitVr ? "OB" : "UN", Buffer.from([1, 2, 3])),
      text(0x00100010, "PN", "Doe^Jane"),
      fd(0x00189089, 0.25, -3.5),
      us(0x00280010, 2),
      us(0x00280011, 3),
      us(0x00280034, 1, 1),
      text(0x00290010, "LO", "ACME 1.0"),
      ul(0x00291010, 7, 8),
      ...(encoding.explicitVr
        ? [
            sequence(0x00400260, [item([text(0x00080100, "SH", "CODE")])], { vr: "UN" }),
            sequence(0x00400275, [item([text(0x00321060, "LO", "via UN")], { undefinedLength: true })], {
              vr: "UN",
              undefinedLength: true,
            }),
          ]
        : []),
      raw(0x7fe00010, "OW", Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])),
    ];
  }

  const encodings = [
    { label: "explicit VR little endian", encoding: EXPLICIT_LE, uid: "1.2.840.10008.1.2.1" },
    { label: "implicit VR little endian", encoding: IMPLICIT_LE, uid: "1.2.840.10008.1.2" },
    { label: "explicit VR big endian", encoding: EXPLICIT_BE, uid: "1.2.840.10008.1.2.2" },
  ];

  test.each(encodings)("$label: writeDataset is byte-identical", ({ encoding, uid }) => {
    const dataset = encodeDataset(kitchenSink(encoding), encoding);
    const parsed = parseDicom(new BufferSource(part10(uid, dataset)));
    expect(Buffer.concat(writeDataset(parsed.dataset) as Buffer[])).toEqual(dataset);
  });

  test.each(encodings)("$label: writePart10 is byte-identical", ({ encoding, uid }) => {
    const file = part10(uid, encodeDataset(kitchenSink(encoding), encoding));
    const parsed = parseDicom(new BufferSource(file), limitsWith(4));
    const output = emitToBytes(writePart10(parsed.meta.elements, parsed.dataset));
    expect(output).toEqual(file);
  });

  test("encapsulated fragments as BulkRefs at any inline limit", () => {
    const fragments = [Buffer.alloc(0), Buffer.alloc(5000, 0x11), Buffer.alloc(3, 0x22), Buffer.alloc(4096, 0x33)];
    const file = part10("1.2.840.10008.1.2.4.50", encodeDataset([text(0x00080060, "CS", "OT"), encapsulated(fragments)], EXPLICIT_LE));
    for (const inlineLimit of [1 << 20, 4096, 0]) {
      const parsed = parseDicom(new BufferSource(file), limitsWith(inlineLimit));
      const stored = parsed.dataset.elements.at(-1)!.fragments!;
      expect(stored.map(isBulkRef)).toEqual(fragments.map(() => true));
      expect(emitToBytes(writePart10(parsed.meta.elements, parsed.dataset))).toEqual(file);
    }
  });

  test("encapsulated fragments with OW", () => {
    const file = part10("1.2.840.10008.1.2.5", encodeDataset([encapsulated([Buffer.from([0, 0, 0, 0]), Buffer.from([1, 2])], "OW")], EXPLICIT_LE));
    const parsed = parseDicom(new BufferSource(file));
    expect(emitToBytes(writePart10(parsed.meta.elements, parsed.dataset))).toEqual(file);
  });

  test("bulk values larger than the 4 MiB copy chunk", () => {
    const pixels = Buffer.alloc(9 * 1024 * 1024 + 3);
    for (let index = 0; index < pixels.length; index += 4096) pixels[index] = index & 0xff;
    const file = part10("1.2.840.10008.1.2.1", encodeDataset([text(0x00080060, "CS", "OT"), raw(0x7fe00010, "OB", pixels)], EXPLICIT_LE));
    const parsed = parseDicom(new BufferSource(file), limitsWith(1024));
    expect(parsed.dataset.elements.at(-1)!.bulk?.length).toBe(pixels.length);
    expect(emitToBytes(writePart10(parsed.meta.elements, parsed.dataset)).equals(file)).toBe(true);
  });

  test("deflated data set through openDicom and emitDeflated", async () => {
    const dataset = encodeDataset(kitchenSink(EXPLICIT_LE), EXPLICIT_LE);
    const input = deflatedPart10(dataset);
    const source = join(workDir, "kitchen-deflated.dcm");
    const target = join(workDir, "kitchen-deflated-out.dcm");
    writeFileSync(source, input);
    const opened = await openDicom(source, { limits: limitsWith(2) });
    try {
      await emitDeflated(writePart10(opened.meta.elements, undefined), writeDataset(opened.dataset), target);
    } finally {
      opened.close();
    }
    const output = readFileSync(target);
    expect(output.subarray(0, opened.datasetOffset)).toEqual(input.subarray(0, opened.datasetOffset));
    expect(inflateRawSync(output.subarray(opened.datasetOffset))).toEqual(dataset);
  });
});
