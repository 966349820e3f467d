import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, test } from "vitest";

import { isBulkRef, type Element, type Item } from "../../src/dicom/dataset.js";
import { openDicom } from "../../src/dicom/file-io.js";
import { DEFAULT_READ_LIMITS, looksLikeDicom, parseDicom, type ReadLimits } from "../../src/dicom/reader.js";
import { BufferSource, FileSource } from "../../src/dicom/source.js";
import { DicomParseError, LimitError } from "../../src/errors.js";
import {
  deflatedPart10,
  encapsulated,
  encodeDataset,
  encodeElement,
  EXPLICIT_BE,
  EXPLICIT_LE,
  fd,
  IMPLICIT_LE,
  item,
  part10,
  raw,
  readWithPydicom,
  samplePath,
  sequence,
  skipUnlessSample,
  skipUnlessTools,
  text,
  UNDEFINED_LENGTH,
  us,
  type ElementSpec,
} from "../helpers/dicom-bytes.js";

const workDir = mkdtempSync(join(tmpdir(), "deidkit-reader-test-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function parseBytes(bytes: Buffer, limits: Partial<ReadLimits> = {}) {
  return parseDicom(new BufferSource(bytes), { ...DEFAULT_READ_LIMITS, ...limits });
}

function parseFile(name: string, limits: Partial<ReadLimits> = {}) {
  const source = new FileSource(samplePath(name));
  try {
    return parseDicom(source, { ...DEFAULT_READ_LIMITS, ...limits });
  } finally {
    source.close();
  }
}

function child(item: Item, tag: number): Element {
  const element = item.elements.find((candidate) => candidate.tag === tag);
  if (!element) throw new Error(`element ${tag.toString(16)} not found`);
  return element;
}

function textOf(element: Element): string {
  return element.bytes?.toString("latin1") ?? "<no bytes>";
}

/** Runs `action` and returns what it threw, failing the test when nothing was thrown. */
function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error, but the call returned normally");
}

function expectParseError(error: unknown): DicomParseError {
  expect(error).toBeInstanceOf(DicomParseError);
  const parseError = error as DicomParseError;
  expect(parseError.code).toBe("DICOM_INVALID");
  return parseError;
}

const EXPLICIT_LE_UID = "1.2.840.10008.1.2.1";
const IMPLICIT_LE_UID = "1.2.840.10008.1.2";
const EXPLICIT_BE_UID = "1.2.840.10008.1.2.2";

describe("parseDicom on pydicom sample files", () => {
  const cases = [
    { name: "CT_small.dcm", uid: EXPLICIT_LE_UID, preamble: true, guessed: false },
    { name: "MR_small_implicit.dcm", uid: IMPLICIT_LE_UID, preamble: true, guessed: false },
    { name: "MR_small_bigendian.dcm", uid: EXPLICIT_BE_UID, preamble: true, guessed: false },
    { name: "ExplVR_BigEnd.dcm", uid: EXPLICIT_BE_UID, preamble: true, guessed: false },
    { name: "ExplVR_LitEndNoMeta.dcm", uid: EXPLICIT_LE_UID, preamble: false, guessed: true },
    { name: "ExplVR_BigEndNoMeta.dcm", uid: EXPLICIT_BE_UID, preamble: false, guessed: true },
    { name: "rtstruct.dcm", uid: IMPLICIT_LE_UID, preamble: false, guessed: true },
    { name: "JPEG2000.dcm", uid: "1.2.840.10008.1.2.4.91", preamble: true, guessed: false },
    { name: "MR_small_jpeg_ls_lossless.dcm", uid: "1.2.840.10008.1.2.4.80", preamble: true, guessed: false },
    { name: "SC_rgb_rle.dcm", uid: "1.2.840.10008.1.2.5", preamble: true, guessed: false },
    { name: "no_meta_group_length.dcm", uid: IMPLICIT_LE_UID, preamble: true, guessed: false },
  ];

  test.for(cases)("$name: transfer syntax $uid", ({ name, uid, preamble, guessed }, context) => {
    if (skipUnlessSample(name)) context.skip();
    const parsed = parseFile(name);
    expect(parsed.transferSyntax.uid).toBe(uid);
    expect(parsed.hasPreamble).toBe(preamble);
    expect(parsed.transferSyntaxGuessed).toBe(guessed);
    expect(parsed.dataset.elements.length).toBeGreaterThan(0);
  });

  test.skipIf(skipUnlessSample("CT_small.dcm", "MR_small_bigendian.dcm"))("values keep the input byte order", () => {
    const little = parseFile("CT_small.dcm");
    expect(textOf(child(little.dataset, 0x00100010))).toBe("CompressedSamples^CT1 ");
    expect(child(little.dataset, 0x00280010).bytes?.readUInt16LE(0)).toBe(128);

    const big = parseFile("MR_small_bigendian.dcm");
    expect(big.dataset.syntax).toEqual({ littleEndian: false, explicitVr: true });
    expect(child(big.dataset, 0x00280010).bytes?.readUInt16BE(0)).toBe(64);
    expect(textOf(child(big.dataset, 0x00100020))).toBe("4MR1");
  });

  test.skipIf(skipUnlessSample("MR_small_implicit.dcm"))("implicit VR takes VRs from the dictionary", () => {
    const parsed = parseFile("MR_small_implicit.dcm");
    expect(child(parsed.dataset, 0x00100010).vr).toBe("PN");
    expect(child(parsed.dataset, 0x00280010).vr).toBe("US");
    expect(child(parsed.dataset, 0x7fe00010).vr).toBe("OW");
    // The file meta is always explicit VR, whatever the data set uses.
    expect(child(parsed.meta, 0x00020010).vr).toBe("UI");
  });

  test.skipIf(skipUnlessSample("UN_sequence.dcm"))("UN_sequence.dcm: UN holding a sequence", () => {
    const parsed = parseFile("UN_sequence.dcm");
    const un = child(parsed.dataset, 0x4453100c);
    expect(un.vr).toBe("UN");
    expect(un.undefinedLength).toBe(true);
    expect(un.items).toHaveLength(1);
    const first = un.items![0];
    expect(first.syntax).toEqual({ littleEndian: true, explicitVr: false });
    const series = child(first, 0x00081115);
    expect(series.vr).toBe("SQ");
    const instance = child(series.items![0], 0x00081199).items![0];
    expect(textOf(child(instance, 0x00081150))).toBe("1.2.840.10008.5.1.4.1.1.2\0");
    expect(child(instance, 0x00081155).vr).toBe("UI");
  });

  test.skipIf(skipUnlessSample("nested_priv_SQ.dcm"))("nested_priv_SQ.dcm: private sequences in implicit VR", () => {
    const parsed = parseFile("nested_priv_SQ.dcm");
    const outer = child(parsed.dataset, 0x00010001);
    expect(outer.vr).toBe("UN");
    expect(outer.undefinedLength).toBe(true);
    const inner = child(outer.items![0], 0x00010001);
    expect(inner.items).toHaveLength(1);
    expect(textOf(child(inner.items![0], 0x00010001))).toBe("Double Nested SQ");
    expect(textOf(child(outer.items![0], 0x00010002))).toBe("Nested SQ");
  });

  test.skipIf(skipUnlessSample("priv_SQ.dcm"))("priv_SQ.dcm: defined-length private SQ stays opaque", () => {
    // In implicit VR nothing marks a defined-length private value as a
    // sequence, so the reader keeps its bytes (item headers included).
    const parsed = parseFile("priv_SQ.dcm");
    const value = child(parsed.dataset, 0x3f031001);
    expect(value.vr).toBe("UN");
    expect(value.items).toBeUndefined();
    expect(value.bytes?.readUInt32LE(0)).toBe(0xe000fffe);
    expect(textOf(child(parsed.dataset, 0x3f030010))).toBe("aaabbbccc MEDICAL SYSTEMS ");
  });

  test.skipIf(skipUnlessSample("JPEG2000.dcm", "SC_rgb_rle.dcm"))("encapsulated pixel data becomes fragments", () => {
    for (const name of ["JPEG2000.dcm", "SC_rgb_rle.dcm"]) {
      const pixels = child(parseFile(name).dataset, 0x7fe00010);
      expect(pixels.undefinedLength).toBe(true);
      expect(pixels.fragments?.length).toBeGreaterThanOrEqual(2);
      expect(pixels.bytes).toBeUndefined();
    }
  });

  test.skipIf(skipUnlessSample("rtstruct.dcm", "rtplan.dcm"))("sequence length forms are recorded", () => {
    const struct = parseFile("rtstruct.dcm");
    const contours = child(struct.dataset, 0x30060039);
    expect(contours.undefinedLength).toBe(true);
    expect(contours.items![0].undefinedLength).toBe(true);

    const plan = parseFile("rtplan.dcm");
    const beams = child(plan.dataset, 0x300a00b0);
    expect(beams.undefinedLength).toBe(false);
    expect(beams.items![0].undefinedLength).toBe(false);
  });

  const pydicomCases = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm", "reportsi.dcm"];
  test.for(pydicomCases)("%s: same top-level tags as pydicom", (name, context) => {
    if (skipUnlessSample(name) || skipUnlessTools({ pydicom: true })) context.skip();
    const parsed = parseFile(name);
    const ours = parsed.dataset.elements.map((element) => element.tag.toString(16).padStart(8, "0").toUpperCase());
    const [theirs] = readWithPydicom(samplePath(name), [["*tags"]]) as [string[]];
    expect(ours).toEqual(theirs);
  });
});

describe("parseDicom on hand-built data sets", () => {
  const patientModule: ElementSpec[] = [
    text(0x00080060, "CS", "RTPLAN"),
    text(0x00100010, "PN", "Doe^Jane"),
    text(0x00100020, "LO", "PID-42"),
    us(0x00280010, 512),
  ];

  const encodings = [
    { label: "explicit VR little endian", encoding: EXPLICIT_LE, uid: EXPLICIT_LE_UID },
    { label: "implicit VR little endian", encoding: IMPLICIT_LE, uid: IMPLICIT_LE_UID },
    { label: "explicit VR big endian", encoding: EXPLICIT_BE, uid: EXPLICIT_BE_UID },
  ];

  test.each(encodings)("$label: elements, VRs and values", ({ encoding, uid }) => {
    const parsed = parseBytes(part10(uid, encodeDataset(patientModule, encoding)));
    expect(parsed.transferSyntax.uid).toBe(uid);
    expect(parsed.dataset.elements.map((element) => element.tag)).toEqual([0x00080060, 0x00100010, 0x00100020, 0x00280010]);
    expect(parsed.dataset.elements.map((element) => element.vr)).toEqual(["CS", "PN", "LO", "US"]);
    expect(textOf(child(parsed.dataset, 0x00100010))).toBe("Doe^Jane");
    const rows = child(parsed.dataset, 0x00280010).bytes!;
    expect(encoding.littleEndian ? rows.readUInt16LE(0) : rows.readUInt16BE(0)).toBe(512);
  });

  test.each(encodings)("$label: raw data set without meta", ({ encoding, uid }) => {
    const parsed = parseBytes(encodeDataset(patientModule, encoding));
    expect(parsed.hasPreamble).toBe(false);
    expect(parsed.meta.elements).toHaveLength(0);
    expect(parsed.transferSyntaxGuessed).toBe(true);
    expect(parsed.transferSyntax.uid).toBe(uid);
    expect(parsed.datasetOffset).toBe(0);
    expect(textOf(child(parsed.dataset, 0x00100020))).toBe("PID-42");
  });

  test("sequence and item length forms", () => {
    const dataset = encodeDataset(
      [
        sequence(0x00081115, [item([text(0x0020000e, "UI", "1.2.3")])]),
        sequence(0x00081140, [item([text(0x00081155, "UI", "1.2.4")], { undefinedLength: true })], {
          undefinedLength: true,
        }),
        sequence(0x00081199, [item([text(0x00081155, "UI", "1.2.5")], { undefinedLength: true })]),
        sequence(0x0040a730, [item([text(0x00080100, "SH", "A")])], { undefinedLength: true }),
      ],
      EXPLICIT_LE,
    );
    const parsed = parseBytes(part10(EXPLICIT_LE_UID, dataset));
    const forms = parsed.dataset.elements.map((element) => [element.undefinedLength, element.items![0].undefinedLength]);
    expect(forms).toEqual([
      [false, false],
      [true, true],
      [false, true],
      [true, false],
    ]);
  });

  test("empty sequences and empty items", () => {
    const dataset = encodeDataset(
      [
        sequence(0x00081115, []),
        sequence(0x00081140, [], { undefinedLength: true }),
        sequence(0x00081199, [item([]), item([], { undefinedLength: true })]),
      ],
      EXPLICIT_LE,
    );
    const parsed = parseBytes(part10(EXPLICIT_LE_UID, dataset));
    expect(parsed.dataset.elements.map((element) => element.items?.length)).toEqual([0, 0, 2]);
    expect(child(parsed.dataset, 0x00081199).items!.map((entry) => entry.elements.length)).toEqual([0, 0]);
  });

  test("UN undefined length contains implicit items", () => {
    // A standard sequence sent as UN by a node that did not know it: the
    // items inside are implicit VR little endian although the file is explicit.
    const un = sequence(
      0x00081115,
      [item([sequence(0x00081199, [item([text(0x00081155, "UI", "1.2.5")])]), text(0x0020000e, "UI", "1.2.3.4")], { undefinedLength: true })],
      { vr: "UN", undefinedLength: true },
    );
    const parsed = parseBytes(part10(EXPLICIT_LE_UID, encodeDataset([un, text(0x00100010, "PN", "After^Un")], EXPLICIT_LE)));
    const element = child(parsed.dataset, 0x00081115);
    expect(element.vr).toBe("UN");
    expect(element.items![0].syntax).toEqual({ littleEndian: true, explicitVr: false });
    expect(child(element.items![0], 0x0020000e).vr).toBe("UI");
    const nested = child(child(element.items![0], 0x00081199).items![0], 0x00081155);
    expect(textOf(nested)).toBe("1.2.5\0");
    expect(textOf(child(parsed.dataset, 0x00100010))).toBe("After^Un");
  });

  test("UN defined length with sequence tag", () => {
    const un = sequence(0x00081115, [item([text(0x0020000e, "UI", "1.2.3.4")])], { vr: "UN" });
    const parsed = parseBytes(part10(EXPLICIT_LE_UID, encodeDataset([un], EXPLICIT_LE)));
    const element = child(parsed.dataset, 0x00081115);
    expect(element.undefinedLength).toBe(false);
    expect(element.items).toHaveLength(1);
    expect(textOf(child(element.items![0], 0x0020000e))).toBe("1.2.3.4\0");
  });

  test("UN with undefined length in a big endian file", () => {
    const un = sequence(0x00081115, [item([text(0x0020000e, "UI", "1.2.3.4")], { undefinedLength: true })], {
      vr: "UN",
      undefinedLength: true,
    });
    const parsed = parseBytes(part10(EXPLICIT_BE_UID, encodeDataset([un, us(0x00280010, 7)], EXPLICIT_BE)));
    const element = child(parsed.dataset, 0x00081115);
    expect(element.items![0].syntax).toEqual({ littleEndian: true, explicitVr: false });
    expect(textOf(child(element.items![0], 0x0020000e))).toBe("1.2.3.4\0");
    expect(child(parsed.dataset, 0x00280010).bytes?.readUInt16BE(0)).toBe(7);
  });

  test("private creators and a private SQ at depth 3", () => {
    const innermost = item([
      text(0x00290010, "LO", "ACME 1.0"),
      text(0x00291001, "LO", "deep private value"),
    ]);
    const dataset = encodeDataset(
      [
        text(0x00090010, "LO", "ACME 1.0"),
        text(0x00090011, "LO", "OTHER CO"),
        sequence(0x00091001, [
          item([
            sequence(0x00081115, [
              item([text(0x00290010, "LO", "ACME 1.0"), sequence(0x00291002, [innermost], { undefinedLength: true })]),
            ]),
          ]),
        ]),
        raw(0x00091101, "OB", Buffer.from([1, 2, 3])),
      ],
      EXPLICIT_LE,
    );
    const parsed = parseBytes(part10(EXPLICIT_LE_UID, dataset));
    expect(textOf(child(parsed.dataset, 0x00090011))).toBe("OTHER CO");
    const level1 = child(parsed.dataset, 0x00091001).items![0];
    const level2 = child(level1, 0x00081115).items![0];
    const level3 = child(level2, 0x00291002).items![0];
    expect(textOf(child(level3, 0x00291001))).toBe("deep private value");
    expect(child(parsed.dataset, 0x00091101).bytes).toEqual(Buffer.from([1, 2, 3]));
  });

  test("implicit VR: private creator is LO, private data is UN", () => {
    const dataset = encodeDataset(
      [
        text(0x00090010, "LO", "ACME 1.0"),
        sequence(0x00091001, [item([sequence(0x00091002, [item([text(0x00091003, "LO", "x")], { undefinedLength: true })], { undefinedLength: true })], { undefinedLength: true })], {
          undefinedLength: true,
        }),
        text(0x00091010, "LO", "flat"),
      ],
      IMPLICIT_LE,
    );
    const parsed = parseBytes(part10(IMPLICIT_LE_UID, dataset));
    expect(child(parsed.dataset, 0x00090010).vr).toBe("LO");
    const outer = child(parsed.dataset, 0x00091001);
    expect(outer.vr).toBe("UN");
    const inner = child(outer.items![0], 0x00091002);
    expect(textOf(child(inner.items![0], 0x00091003))).toBe("x ");
    expect(child(parsed.dataset, 0x00091010).vr).toBe("UN");
  });

  test("multi-valued elements keep every value", () => {
    const dataset = encodeDataset(
      [text(0x00080008, "CS", "ORIGINAL\\PRIMARY\\AXIAL"), fd(0x00189089, 0.5, -1, 2e10), us(0x00280034, 1, 2, 3, 65535)],
      EXPLICIT_BE,
    );
    const parsed = parseBytes(part10(EXPLICIT_BE_UID, dataset));
    expect(textOf(child(parsed.dataset, 0x00080008)).split("\\")).toEqual(["ORIGINAL", "PRIMARY", "AXIAL"]);
    const doubles = child(parsed.dataset, 0x00189089).bytes!;
    expect([0, 8, 16].map((offset) => doubles.readDoubleBE(offset))).toEqual([0.5, -1, 2e10]);
    const shorts = child(parsed.dataset, 0x00280034).bytes!;
    expect([0, 2, 4, 6].map((offset) => shorts.readUInt16BE(offset))).toEqual([1, 2, 3, 65535]);
  });

  test("odd-length values are kept as they are", () => {
    const dataset = encodeDataset(
      [raw(0x00100010, "PN", Buffer.from("Odd^Name", "latin1").subarray(0, 7)), raw(0x00189999, "OB", Buffer.from([9]))],
      EXPLICIT_LE,
    );
    const parsed = parseBytes(part10(EXPLICIT_LE_UID, dataset));
    expect(child(parsed.dataset, 0x00100010).bytes).toEqual(Buffer.from("Odd^Nam", "latin1"));
    expect(child(parsed.dataset, 0x00189999).bytes).toEqual(Buffer.from([9]));
  });

  test("encapsulated fragments, empty offset table first", () => {
    const fragments = [Buffer.alloc(0), Buffer.from([1, 2, 3, 4]), Buffer.from([5, 6])];
    const parsed = parseBytes(part10("1.2.840.10008.1.2.4.50", encodeDataset([encapsulated(fragments)], EXPLICIT_LE)));
    const pixels = child(parsed.dataset, 0x7fe00010);
    expect(pixels.undefinedLength).toBe(true);
    // Fragments always stay in the file as references, however small.
    const source = new BufferSource(part10("1.2.840.10008.1.2.4.50", encodeDataset([encapsulated(fragments)], EXPLICIT_LE)));
    const read = pixels.fragments!.map((fragment) => (isBulkRef(fragment) ? source.read(fragment.offset, fragment.length) : fragment));
    expect(pixels.fragments!.every(isBulkRef)).toBe(true);
    expect(read.map((bytes) => Buffer.from(bytes))).toEqual(fragments);
  });

  test("file meta without group length", () => {
    const parsed = parseBytes(part10(IMPLICIT_LE_UID, encodeDataset(patientModule, IMPLICIT_LE), { omitGroupLength: true }));
    expect(parsed.meta.elements[0].tag).toBe(0x00020001);
    expect(parsed.transferSyntax.uid).toBe(IMPLICIT_LE_UID);
    expect(textOf(child(parsed.dataset, 0x00100010))).toBe("Doe^Jane");
  });

  test("deflated data set through openDicom", async () => {
    const path = join(workDir, "deflated.dcm");
    writeFileSync(path, deflatedPart10(encodeDataset(patientModule, EXPLICIT_LE)));
    const opened = await openDicom(path);
    try {
      expect(opened.transferSyntax.deflated).toBe(true);
      expect(textOf(child(opened.dataset, 0x00100010))).toBe("Doe^Jane");
    } finally {
      opened.close();
    }
  });
});

describe("parseDicom errors", () => {
  test.for(["MR_truncated.dcm", "rtplan_truncated.dcm"])("%s throws DICOM_INVALID", (name, context) => {
    if (skipUnlessSample(name)) context.skip();
    const size = readFileSync(samplePath(name)).length;
    const error = expectParseError(thrown(() => parseFile(name)));
    expect(error.offset).toBeGreaterThan(132);
    expect(error.offset).toBeLessThan(size);
    expect(error.message).toMatch(/^truncated/);
    expect(error.hint).toBeTruthy();
  });

  /**
   * Builds a file with nested sequences of both length forms and native pixel
   * data. `boundaries` lists the offsets where a cut leaves a valid file:
   * the end of the file meta and the end of each top-level element.
   */
  function truncationSubject(): { file: Buffer; boundaries: Set<number> } {
    const elements: ElementSpec[] = [
      sequence(0x00081115, [
        item([sequence(0x00081199, [item([text(0x00081155, "UI", "1.2.4")], { undefinedLength: true })], { undefinedLength: true }), text(0x0020000e, "UI", "1.2.3")]),
      ]),
      text(0x00100010, "PN", "Secret^Patient"),
      sequence(0x0040a730, [item([text(0x00080100, "SH", "CODE")], { undefinedLength: true })], { undefinedLength: true }),
      raw(0x7fe00010, "OW", Buffer.alloc(64, 0xab)),
    ];
    const meta = part10(EXPLICIT_LE_UID, Buffer.alloc(0));
    const boundaries = new Set<number>([meta.length]);
    let offset = meta.length;
    for (const element of elements) {
      offset += encodeElement(element, EXPLICIT_LE).length;
      boundaries.add(offset);
    }
    return { file: part10(EXPLICIT_LE_UID, encodeDataset(elements, EXPLICIT_LE)), boundaries };
  }

  test("every truncation point fails unless it ends an element", () => {
    const { file, boundaries } = truncationSubject();
    const wrong: string[] = [];
    for (let cut = 0; cut < file.length; cut++) {
      let outcome: string;
      try {
        parseBytes(file.subarray(0, cut));
        outcome = "parsed";
      } catch (error) {
        outcome = error instanceof DicomParseError && error.code === "DICOM_INVALID" ? "DICOM_INVALID" : String(error);
      }
      const expected = boundaries.has(cut) ? "parsed" : "DICOM_INVALID";
      if (outcome !== expected) wrong.push(`cut at ${cut}: ${outcome}, expected ${expected}`);
    }
    expect(wrong).toEqual([]);
  });

  test("truncation at named places", () => {
    const { file } = truncationSubject();
    const pixelHeader = file.length - 64 - 12;
    const places = [
      { label: "inside the preamble", cut: 64, message: /not recognisable/ },
      { label: "after DICM", cut: 132, message: /missing after the DICM prefix|not recognisable/ },
      { label: "inside the file meta", cut: 150, message: /^truncated/ },
      { label: "inside a header", cut: pixelHeader + 6, message: /^truncated header/ },
      { label: "inside pixel data", cut: file.length - 1, message: /^truncated value of \(7FE0,0010\)/ },
    ];
    for (const place of places) {
      const error = expectParseError(thrown(() => parseBytes(file.subarray(0, place.cut))));
      expect(error.message, place.label).toMatch(place.message);
      expect(error.offset, place.label).toBeLessThanOrEqual(place.cut);
    }
  });

  test("truncated encapsulated fragment", () => {
    const file = part10("1.2.840.10008.1.2.4.50", encodeDataset([encapsulated([Buffer.alloc(0), Buffer.alloc(100, 1)])], EXPLICIT_LE));
    const error = expectParseError(thrown(() => parseBytes(file.subarray(0, file.length - 20))));
    expect(error.message).toMatch(/^truncated pixel data fragment/);
    const withoutDelimiter = expectParseError(thrown(() => parseBytes(file.subarray(0, file.length - 8))));
    expect(withoutDelimiter.message).toMatch(/missing sequence delimiter/);
  });

  test("error messages leave out values from the file", () => {
    const { file } = truncationSubject();
    const nameEnd = file.indexOf("Secret^Patient") + 8;
    const error = expectParseError(thrown(() => parseBytes(file.subarray(0, nameEnd))));
    expect(error.message).not.toContain("Secret");
    expect(error.message).toContain("(0010,0010)");
  });

  test("length beyond the end of the file", () => {
    const huge = { ...text(0x00100010, "LO", "x"), vr: "UT", lengthOverride: 0x7ffffff0 };
    const error = expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, encodeDataset([huge], EXPLICIT_LE)))));
    expect(error.message).toMatch(/^truncated value of \(0010,0010\)/);

    const item = { elements: [text(0x00080100, "SH", "A")], lengthOverride: 0x10000 };
    const sequenceSpec = { ...sequence(0x00081115, [item]), lengthOverride: 8 + 0x10000 };
    const itemError = expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, encodeDataset([sequenceSpec], EXPLICIT_LE)))));
    expect(itemError.message).toMatch(/^truncated/);
  });

  test("item longer than its sequence", () => {
    const overrun = { elements: [text(0x00080100, "SH", "ABCD")], lengthOverride: 20 };
    const spec = sequence(0x00081115, [overrun]);
    const bytes = encodeDataset([spec, text(0x00100010, "PN", "Z^Z")], EXPLICIT_LE);
    expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, bytes))));
  });

  test.each([
    { label: "UT explicit", vr: "UT", encoding: EXPLICIT_LE, uid: EXPLICIT_LE_UID, tag: 0x00081030 },
    { label: "UC explicit", vr: "UC", encoding: EXPLICIT_LE, uid: EXPLICIT_LE_UID, tag: 0x00081030 },
    { label: "PN implicit", vr: "PN", encoding: IMPLICIT_LE, uid: IMPLICIT_LE_UID, tag: 0x00100010 },
    { label: "private creator implicit", vr: "LO", encoding: IMPLICIT_LE, uid: IMPLICIT_LE_UID, tag: 0x00090010 },
  ])("undefined length on $label is rejected", ({ vr, encoding, uid, tag }) => {
    const spec: ElementSpec = { tag, vr, value: Buffer.from("ABCD"), lengthOverride: UNDEFINED_LENGTH };
    const error = expectParseError(thrown(() => parseBytes(part10(uid, encodeDataset([spec], encoding)))));
    expect(error.message).toMatch(/undefined length is not allowed/);
  });

  test.each(["ZZ", "ob", "\0\0", "  "])("invalid VR %j is rejected", (vr) => {
    const spec: ElementSpec = { tag: 0x00100010, vr, value: Buffer.from("AB") };
    const error = expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, encodeDataset([text(0x00080060, "CS", "CT"), spec], EXPLICIT_LE)))));
    expect(error.message).toMatch(/^invalid VR for \(0010,0010\)/);
  });

  test("elements out of ascending order are rejected", () => {
    const bytes = encodeDataset([text(0x00100020, "LO", "B"), text(0x00100010, "PN", "A")], EXPLICIT_LE);
    const error = expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, bytes))));
    expect(error.message).toMatch(/out of ascending order/);
  });

  test("repeated tag is rejected", () => {
    const bytes = encodeDataset([text(0x00100010, "PN", "A^B"), text(0x00100010, "PN", "C^D")], EXPLICIT_LE);
    const error = expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, bytes))));
    expect(error.message).toMatch(/^element \(0010,0010\) out of ascending order/);
  });

  test("sequence delimiter inside a defined-length sequence", () => {
    const spec = { ...sequence(0x00081115, [item([text(0x00080100, "SH", "A")])], { undefinedLength: true }), lengthOverride: 26 };
    const error = expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, encodeDataset([spec], EXPLICIT_LE)))));
    expect(error.message).toMatch(/sequence delimiter inside a sequence of defined length/);
  });

  test("stray item tag among data elements", () => {
    const stray: ElementSpec = { tag: 0xfffee000, vr: "OB", value: Buffer.alloc(4) };
    const bytes = Buffer.concat([encodeDataset([text(0x00080060, "CS", "CT")], EXPLICIT_LE), encodeDataset([stray], IMPLICIT_LE)]);
    const error = expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, bytes))));
    expect(error.message).toMatch(/unexpected \(FFFE,E000\)/);
  });

  test("non-item inside a sequence", () => {
    const spec = sequence(0x00081115, []);
    const bad = Buffer.concat([encodeElement({ ...spec, lengthOverride: 10 }, EXPLICIT_LE), encodeElement(text(0x00100010, "PN", "X"), EXPLICIT_LE)]);
    const error = expectParseError(thrown(() => parseBytes(part10(EXPLICIT_LE_UID, bad))));
    expect(error.message).toMatch(/expected an item/);
  });

  test("unknown transfer syntax UID", () => {
    const error = expectParseError(thrown(() => parseBytes(part10("1.2.3.4.5.6", Buffer.alloc(0)))));
    expect(error.message).toBe("unknown transfer syntax in the file meta");
  });

  test("DICM prefix without file meta", () => {
    const file = Buffer.concat([Buffer.alloc(128), Buffer.from("DICM"), encodeDataset([text(0x00080060, "CS", "CT")], EXPLICIT_LE)]);
    const error = expectParseError(thrown(() => parseBytes(file)));
    expect(error.message).toMatch(/file meta information is missing/);
  });

  test("empty input", () => {
    expectParseError(thrown(() => parseBytes(Buffer.alloc(0))));
  });

  test("truncated deflated stream throws DICOM_INVALID", async () => {
    const file = deflatedPart10(encodeDataset([text(0x00100010, "PN", "Doe^Jane"), raw(0x7fe00010, "OB", Buffer.alloc(4096, 7))], EXPLICIT_LE));
    const path = join(workDir, "deflated-truncated.dcm");
    writeFileSync(path, file.subarray(0, file.length - 10));
    await expect(openDicom(path)).rejects.toSatisfy((error) => {
      expectParseError(error);
      return true;
    });
  });

  test("corrupt deflated stream throws DICOM_INVALID", async () => {
    const file = part10("1.2.840.10008.1.2.1.99", Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02, 0x03]));
    const path = join(workDir, "deflated-corrupt.dcm");
    writeFileSync(path, file);
    await expect(openDicom(path)).rejects.toSatisfy((error) => {
      expectParseError(error);
      return true;
    });
  });

  test("limits raise LimitError, not DicomParseError", () => {
    const bytes = part10(EXPLICIT_LE_UID, encodeDataset([text(0x00080060, "CS", "CT"), text(0x00100010, "PN", "A^B")], EXPLICIT_LE));
    const error = thrown(() => parseBytes(bytes, { maxNodes: 3 }));
    expect(error).toBeInstanceOf(LimitError);
  });
});

describe("looksLikeDicom", () => {
  const patient = [text(0x00080060, "CS", "CT"), text(0x00100010, "PN", "Doe^Jane")];

  test.each([
    { label: "Part 10 file", head: part10(EXPLICIT_LE_UID, encodeDataset(patient, EXPLICIT_LE)) },
    { label: "Part 10 file, non-zero preamble", head: part10(EXPLICIT_LE_UID, Buffer.alloc(0), { preamble: Buffer.alloc(128, 0x41) }) },
    { label: "DICM without preamble", head: Buffer.concat([Buffer.from("DICM"), Buffer.alloc(8)]) },
    { label: "raw explicit VR little endian", head: encodeDataset(patient, EXPLICIT_LE) },
    { label: "raw implicit VR little endian", head: encodeDataset(patient, IMPLICIT_LE) },
    { label: "raw explicit VR big endian", head: encodeDataset(patient, EXPLICIT_BE) },
  ])("true for $label", ({ head }) => {
    expect(looksLikeDicom(head)).toBe(true);
  });

  test.each([
    { label: "empty file", head: Buffer.alloc(0) },
    { label: "text", head: Buffer.from("Patient list\nDoe, Jane\n", "utf8") },
    { label: "CSV", head: Buffer.from("id,name\n1,x\n") },
    { label: "PNG header", head: Buffer.from("89504e470d0a1a0a0000000d49484452000000100000001008060000", "hex") },
    { label: "zeros", head: Buffer.alloc(256) },
    { label: "ZIP header", head: Buffer.from("504b0304140000000800", "hex") },
    { label: "short DICOM-like start", head: encodeDataset(patient, EXPLICIT_LE).subarray(0, 6) },
  ])("false for $label", ({ head }) => {
    expect(looksLikeDicom(head)).toBe(false);
  });

  test.for(["CT_small.dcm", "MR_small_implicit.dcm", "ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "rtstruct.dcm"])(
    "true for %s",
    (name, context) => {
      if (skipUnlessSample(name)) context.skip();
      expect(looksLikeDicom(readFileSync(samplePath(name)).subarray(0, 256))).toBe(true);
    },
  );

  test.for(["README.txt", "test1.json"])("false for %s", (name, context) => {
    if (skipUnlessSample(name)) context.skip();
    expect(looksLikeDicom(readFileSync(samplePath(name)).subarray(0, 256))).toBe(false);
  });
});

describe("file meta and inlineLimit", () => {
  test("meta values load whatever inlineLimit is", () => {
    const file = part10(IMPLICIT_LE_UID, encodeDataset([text(0x00100010, "PN", "Doe^Jane")], IMPLICIT_LE));
    const parsed = parseBytes(file, { inlineLimit: 2 });
    expect(parsed.transferSyntaxGuessed).toBe(false);
    expect(parsed.transferSyntax.uid).toBe(IMPLICIT_LE_UID);
    expect(parsed.meta.elements.every((element) => element.bytes !== undefined)).toBe(true);
    expect(child(parsed.dataset, 0x00100010).bulk?.length).toBe(8);
  });

  test("deflated file opens with a tiny inlineLimit", async () => {
    const path = join(workDir, "deflated-small-inline.dcm");
    writeFileSync(path, deflatedPart10(encodeDataset([text(0x00100010, "PN", "Doe^Jane")], EXPLICIT_LE)));
    const opened = await openDicom(path, { limits: { ...DEFAULT_READ_LIMITS, inlineLimit: 2 } });
    try {
      expect(opened.transferSyntax.deflated).toBe(true);
      expect(opened.dataset.elements.map((element) => element.tag)).toEqual([0x00100010]);
    } finally {
      opened.close();
    }
  });
});

describe("FileSource", () => {
  test("values across 1 MiB window edges", () => {
    // Values from 1 byte to 700 KiB put element headers and values on both
    // sides of the FileSource window edges, and some values exceed half a
    // window, which FileSource reads outside the window.
    const sizes = [1, 2, 1000, 300_000, 700_000, 5, 524_289, 1_048_576, 3];
    const elements = sizes.map((size, index) => raw(0x00091000 + index, "OB", Buffer.alloc(size, index + 1)));
    const file = part10(EXPLICIT_LE_UID, encodeDataset([text(0x00090010, "LO", "ACME"), ...elements], EXPLICIT_LE));
    const path = join(workDir, "windows.dcm");
    writeFileSync(path, file);
    const limits = { ...DEFAULT_READ_LIMITS, inlineLimit: 2 * 1024 * 1024 };
    const source = new FileSource(path);
    try {
      const fromFile = parseDicom(source, limits);
      const fromBuffer = parseDicom(new BufferSource(file), limits);
      expect(fromFile.dataset.elements.length).toBe(sizes.length + 1);
      fromFile.dataset.elements.forEach((element, index) => {
        expect(element.bytes?.equals(fromBuffer.dataset.elements[index].bytes!), `element ${index}`).toBe(true);
      });
    } finally {
      source.close();
    }
  });
});
