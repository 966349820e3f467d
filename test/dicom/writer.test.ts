import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, test } from "vitest";

import { findElement, putElement, removeElement, type Element, type Item } from "../../src/dicom/dataset.js";
import { emitDeflated, emitParts, openDicom, type OpenedDicom } from "../../src/dicom/file-io.js";
import { DEFAULT_READ_LIMITS, parseDicom } from "../../src/dicom/reader.js";
import { BufferSource } from "../../src/dicom/source.js";
import { elementLength, writeDataset, writePart10, type Part } from "../../src/dicom/writer.js";
import {
  dciodvfyReadErrors,
  encodeDataset,
  encodeElement,
  encodeFileMeta,
  EXPLICIT_BE,
  EXPLICIT_LE,
  IMPLICIT_LE,
  item,
  part10,
  raw,
  readWithPydicom,
  runDcmdump,
  samplePath,
  sequence,
  skipUnlessSample,
  skipUnlessTools,
  text,
  us,
  type ElementSpec,
  type Encoding,
} from "../helpers/dicom-bytes.js";

const workDir = mkdtempSync(join(tmpdir(), "deidkit-writer-test-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

let fileCounter = 0;

function newPath(label: string): string {
  return join(workDir, `${++fileCounter}-${label}.dcm`);
}

/** Writes parts to a new file with emitParts and returns the path. */
function emitToFile(parts: Part[], label: string): string {
  const path = newPath(label);
  const fd = openSync(path, "wx");
  try {
    emitParts(parts, fd);
  } finally {
    closeSync(fd);
  }
  return path;
}

function concatParts(parts: Part[]): Buffer {
  return Buffer.concat(
    parts.map((part) => {
      if (Buffer.isBuffer(part)) return part;
      const copy = Buffer.alloc(part.length);
      part.source.readInto(part.offset, copy, part.length);
      return copy;
    }),
  );
}

/** Follows tags and item indexes from a data set to an element. */
function at(root: Item, ...path: Array<number | [number, number]>): Element {
  let current: Item = root;
  let element: Element | undefined;
  for (const step of path) {
    const [tag, index] = Array.isArray(step) ? step : [step, undefined];
    element = findElement(current, tag);
    if (!element) throw new Error(`element ${tag.toString(16)} not found`);
    if (index !== undefined) current = element.items![index];
  }
  return element!;
}

function itemAt(root: Item, ...path: Array<[number, number]>): Item {
  let current = root;
  for (const [tag, index] of path) current = findElement(current, tag)!.items![index];
  return current;
}

function setText(element: Element, value: string): void {
  element.bytes = Buffer.from(value, "latin1");
}

/** Returns the 32-bit length after the only occurrence of a tag's bytes. */
function lengthAfterTag(bytes: Buffer, tag: number, encoding: Encoding): number {
  const pattern = Buffer.alloc(4);
  pattern.writeUInt16LE(tag >>> 16, 0);
  pattern.writeUInt16LE(tag & 0xffff, 2);
  const first = bytes.indexOf(pattern);
  expect(first, `tag ${tag.toString(16)} present`).toBeGreaterThanOrEqual(0);
  expect(bytes.lastIndexOf(pattern), `tag ${tag.toString(16)} unique`).toBe(first);
  const lengthOffset = encoding.explicitVr ? first + 8 : first + 4;
  return bytes.readUInt32LE(lengthOffset);
}

describe("elementLength", () => {
  const specs: Array<{ label: string; spec: ElementSpec }> = [
    { label: "short VR", spec: text(0x00100010, "PN", "Doe^Jane") },
    { label: "long VR", spec: raw(0x00081030 + 0, "UT", Buffer.alloc(70_000, 0x41)) },
    { label: "odd value", spec: raw(0x00100010, "PN", Buffer.from("abc")) },
    {
      label: "nested sequences, both length forms",
      spec: sequence(0x00081115, [
        item([sequence(0x00081199, [item([text(0x00081155, "UI", "1.2.3")], { undefinedLength: true })], { undefinedLength: true })]),
        item([], { undefinedLength: true }),
      ]),
    },
    { label: "empty undefined-length sequence", spec: sequence(0x00081140, [], { undefinedLength: true }) },
  ];
  const encodings = [
    { name: "explicit LE", encoding: EXPLICIT_LE, uid: "1.2.840.10008.1.2.1" },
    { name: "implicit LE", encoding: IMPLICIT_LE, uid: "1.2.840.10008.1.2" },
    { name: "explicit BE", encoding: EXPLICIT_BE, uid: "1.2.840.10008.1.2.2" },
  ];
  const cases = specs.flatMap((spec) => encodings.map((encoding) => ({ ...spec, ...encoding })));

  test.each(cases)("$label, $name", ({ spec, encoding, uid }) => {
    const parsed = parseDicom(new BufferSource(part10(uid, encodeElement(spec, encoding))));
    expect(elementLength(parsed.dataset.elements[0], encoding)).toBe(encodeElement(spec, encoding).length);
  });
});

describe("writeDataset after changes", () => {
  /** Builds a plan-like tree of beams with a nested device sequence, in the requested length form. */
  function beams(name: string, options: { dropDistance?: boolean; extraItem?: boolean; undefinedLength?: boolean } = {}): ElementSpec[] {
    const undefinedLength = options.undefinedLength ?? false;
    const devices = [
      item([text(0x300a00b8, "CS", "X"), text(0x300a00bc, "IS", "1")], { undefinedLength }),
      item([text(0x300a00b8, "CS", "Y"), text(0x300a00bc, "IS", "1")], { undefinedLength }),
    ];
    if (options.extraItem) devices.push(item([text(0x300a00b8, "CS", "MLCX"), text(0x300a00bc, "IS", "60")], { undefinedLength }));
    const beam = [
      text(0x300a00b2, "SH", name),
      ...(options.dropDistance ? [] : [text(0x300a00b4, "DS", "1000")]),
      sequence(0x300a00b6, devices, { undefinedLength }),
      us(0x300a00c0, 1),
    ];
    return [
      text(0x00100010, "PN", "Doe^Jane"),
      sequence(0x300a00b0, [item(beam, { undefinedLength }), item([text(0x300a00b2, "SH", "other")], { undefinedLength })], { undefinedLength }),
    ];
  }

  const encodings = [
    { name: "explicit LE", encoding: EXPLICIT_LE, uid: "1.2.840.10008.1.2.1" },
    { name: "implicit LE", encoding: IMPLICIT_LE, uid: "1.2.840.10008.1.2" },
    { name: "explicit BE", encoding: EXPLICIT_BE, uid: "1.2.840.10008.1.2.2" },
  ];
  const forms = encodings.flatMap((encoding) => [
    { ...encoding, undefinedLength: false },
    { ...encoding, undefinedLength: true },
  ]);

  function parseSpec(elements: ElementSpec[], encoding: Encoding, uid: string): Item {
    return parseDicom(new BufferSource(part10(uid, encodeDataset(elements, encoding)))).dataset;
  }

  test.each(forms)("$name, undefinedLength $undefinedLength: longer value", ({ encoding, uid, undefinedLength }) => {
    const dataset = parseSpec(beams("unit1", { undefinedLength }), encoding, uid);
    setText(at(dataset, [0x300a00b0, 0], 0x300a00b2), "LINAC-NUMBER-2");
    const expected = encodeDataset(beams("LINAC-NUMBER-2", { undefinedLength }), encoding);
    expect(concatParts(writeDataset(dataset))).toEqual(expected);
  });

  test.each(forms)("$name, undefinedLength $undefinedLength: dropped element", ({ encoding, uid, undefinedLength }) => {
    const dataset = parseSpec(beams("unit1", { undefinedLength }), encoding, uid);
    removeElement(itemAt(dataset, [0x300a00b0, 0]), 0x300a00b4);
    const expected = encodeDataset(beams("unit1", { undefinedLength, dropDistance: true }), encoding);
    expect(concatParts(writeDataset(dataset))).toEqual(expected);
  });

  test.each(forms)("$name, undefinedLength $undefinedLength: added item", ({ encoding, uid, undefinedLength }) => {
    const dataset = parseSpec(beams("unit1", { undefinedLength }), encoding, uid);
    const devices = at(dataset, [0x300a00b0, 0], 0x300a00b6);
    const added = parseSpec(
      [sequence(0x300a00b6, [item([text(0x300a00b8, "CS", "MLCX"), text(0x300a00bc, "IS", "60")], { undefinedLength })], { undefinedLength })],
      encoding,
      uid,
    );
    devices.items!.push(added.elements[0].items![0]);
    const expected = encodeDataset(beams("unit1", { undefinedLength, extraItem: true }), encoding);
    expect(concatParts(writeDataset(dataset))).toEqual(expected);
  });

  test("UN sequence in big endian after a change", () => {
    const spec = (uid: string): ElementSpec[] => [
      sequence(0x00081115, [item([text(0x0020000e, "UI", uid)])], { vr: "UN" }),
      sequence(0x00081199, [item([text(0x00081155, "UI", uid)], { undefinedLength: true })], { vr: "UN", undefinedLength: true }),
      us(0x00280010, 4),
    ];
    const dataset = parseSpec(spec("1.2.3"), EXPLICIT_BE, "1.2.840.10008.1.2.2");
    setText(at(dataset, [0x00081115, 0], 0x0020000e), "1.2.3.444\0");
    setText(at(dataset, [0x00081199, 0], 0x00081155), "1.2.3.444\0");
    expect(concatParts(writeDataset(dataset))).toEqual(encodeDataset(spec("1.2.3.444"), EXPLICIT_BE));
  });

  test("putElement keeps tag order", () => {
    const dataset = parseSpec([text(0x00080060, "CS", "RTPLAN"), text(0x00100020, "LO", "ID")], EXPLICIT_LE, "1.2.840.10008.1.2.1");
    putElement(dataset, { tag: 0x00100010, vr: "PN", undefinedLength: false, bytes: Buffer.from("New^Name") });
    const expected = encodeDataset([text(0x00080060, "CS", "RTPLAN"), text(0x00100010, "PN", "New^Name"), text(0x00100020, "LO", "ID")], EXPLICIT_LE);
    expect(concatParts(writeDataset(dataset))).toEqual(expected);
  });

  test("value too long for a 16-bit length throws", () => {
    const dataset = parseSpec([text(0x00100010, "PN", "A^B")], EXPLICIT_LE, "1.2.840.10008.1.2.1");
    setText(at(dataset, 0x00100010), "x".repeat(0x10000));
    expect(() => writeDataset(dataset)).toThrow(/too long for a 16-bit length/);
    // Implicit VR has a 32-bit length for every element, so the same value fits.
    const implicit = parseSpec([text(0x00100010, "PN", "A^B")], IMPLICIT_LE, "1.2.840.10008.1.2");
    setText(at(implicit, 0x00100010), "x".repeat(0x10000));
    expect(concatParts(writeDataset(implicit)).length).toBe(8 + 0x10000);
  });
});

describe("writePart10", () => {
  test("meta group and group length", () => {
    const dataset = encodeDataset([text(0x00100010, "PN", "Doe^Jane")], EXPLICIT_LE);
    const parsed = parseDicom(new BufferSource(part10("1.2.840.10008.1.2.1", dataset, { omitGroupLength: true })));
    const output = concatParts(writePart10(parsed.meta.elements, parsed.dataset));
    expect(output).toEqual(part10("1.2.840.10008.1.2.1", dataset));
  });

  test("group length follows a changed meta", () => {
    const dataset = encodeDataset([text(0x00100010, "PN", "Doe^Jane")], IMPLICIT_LE);
    const parsed = parseDicom(new BufferSource(part10("1.2.840.10008.1.2", dataset)));
    const versionName = text(0x00020013, "SH", "DEIDKIT_TEST");
    putElement(parsed.meta, { tag: versionName.tag, vr: "SH", undefinedLength: false, bytes: versionName.value as Buffer });
    const output = concatParts(writePart10(parsed.meta.elements, parsed.dataset));
    const expectedMeta = encodeFileMeta("1.2.840.10008.1.2", { extraMeta: [versionName] });
    expect(output.subarray(0, 128)).toEqual(Buffer.alloc(128));
    expect(output.toString("latin1", 128, 132)).toBe("DICM");
    expect(output.subarray(132, 132 + expectedMeta.length)).toEqual(expectedMeta);
    expect(output.subarray(132 + expectedMeta.length)).toEqual(dataset);
  });

  test("meta only, for a deflated data set", () => {
    const parsed = parseDicom(new BufferSource(part10("1.2.840.10008.1.2.1", Buffer.alloc(0))));
    expect(concatParts(writePart10(parsed.meta.elements, undefined))).toEqual(part10("1.2.840.10008.1.2.1", Buffer.alloc(0)));
  });
});

describe("emitParts and emitDeflated", () => {
  const file = part10(
    "1.2.840.10008.1.2.1",
    encodeDataset([text(0x00100010, "PN", "Doe^Jane"), raw(0x7fe00010, "OW", Buffer.alloc(6000, 0x5a))], EXPLICIT_LE),
  );

  test("emitParts copies BulkRefs and returns the byte count", () => {
    const parsed = parseDicom(new BufferSource(file), { ...DEFAULT_READ_LIMITS, inlineLimit: 1024 });
    const parts = writePart10(parsed.meta.elements, parsed.dataset);
    expect(parts.some((part) => !Buffer.isBuffer(part))).toBe(true);
    const path = newPath("emit");
    const fd = openSync(path, "wx");
    let count: number;
    try {
      count = emitParts(parts, fd);
    } finally {
      closeSync(fd);
    }
    expect(count).toBe(file.length);
    expect(readFileSync(path)).toEqual(file);
  });

  test("emitParts throws when a BulkRef runs past its source", () => {
    const parsed = parseDicom(new BufferSource(file), { ...DEFAULT_READ_LIMITS, inlineLimit: 1024 });
    const pixels = at(parsed.dataset, 0x7fe00010);
    pixels.bulk = { ...pixels.bulk!, length: pixels.bulk!.length + 10 };
    const path = newPath("shrank");
    const fd = openSync(path, "wx");
    try {
      expect(() => emitParts(writeDataset(parsed.dataset), fd)).toThrow(/shrank/);
    } finally {
      closeSync(fd);
    }
  });

  test("emitDeflated will not replace an existing file", async () => {
    const path = newPath("existing");
    writeFileSync(path, "keep me");
    const parsed = parseDicom(new BufferSource(file));
    await expect(emitDeflated(writePart10(parsed.meta.elements, undefined), writeDataset(parsed.dataset), path)).rejects.toMatchObject({
      code: "EEXIST",
    });
    expect(readFileSync(path, "utf8")).toBe("keep me");
  });

  test("emitDeflated with 64 KiB of leading parts and an existing file", async () => {
    // More leading bytes than the stream buffers at once, so the write
    // waits for "drain" while the open fails.
    const path = newPath("existing-large");
    writeFileSync(path, "keep me");
    const leading = [Buffer.alloc(64 * 1024)];
    await expect(emitDeflated(leading, [Buffer.alloc(10)], path)).rejects.toMatchObject({ code: "EEXIST" });
    expect(readFileSync(path, "utf8")).toBe("keep me");
  });

  test("emitDeflated output opens with openDicom", async () => {
    const source = newPath("plain");
    writeFileSync(source, file);
    const parsed = parseDicom(new BufferSource(file));
    const meta = parsed.meta.elements.map((element) =>
      element.tag === 0x00020010 ? { ...element, bytes: Buffer.from("1.2.840.10008.1.2.1.99", "latin1") } : element,
    );
    const target = newPath("deflated");
    await emitDeflated(writePart10(meta, undefined), writeDataset(parsed.dataset), target);
    const opened = await openDicom(target);
    try {
      expect(opened.transferSyntax.deflated).toBe(true);
      expect(concatParts(writeDataset(opened.dataset))).toEqual(file.subarray(parsed.datasetOffset));
    } finally {
      opened.close();
    }
  });
});

describe("interoperability with dcmdump, dciodvfy and pydicom", () => {
  const tools = { dcmdump: true, dciodvfy: true, pydicom: true };

  /** Writes an opened file back as Part 10 and returns the output path. */
  function writeBack(opened: OpenedDicom, label: string, meta?: Element[]): string {
    return emitToFile(writePart10(meta ?? opened.meta.elements, opened.dataset), label);
  }

  function expectToolsAccept(path: string): void {
    const dump = runDcmdump(path);
    expect(dump.status, dump.stderr).toBe(0);
    expect(dciodvfyReadErrors(path)).toEqual([]);
  }

  test.skipIf(skipUnlessSample("rtplan.dcm") || skipUnlessTools(tools))("oracles catch a wrong sequence length", () => {
    const input = readFileSync(samplePath("rtplan.dcm"));
    const length = lengthAfterTag(input, 0x300a00b0, IMPLICIT_LE);
    const lengthOffset = input.indexOf(Buffer.from("0a30b000", "hex")) + 4;
    for (const wrong of [length + 2, length - 2]) {
      const damaged = Buffer.from(input);
      damaged.writeUInt32LE(wrong, lengthOffset);
      const path = newPath(`damaged-${wrong}`);
      writeFileSync(path, damaged);
      const dumpFailed = runDcmdump(path).status !== 0;
      const verifyFailed = dciodvfyReadErrors(path).length > 0;
      expect(dumpFailed || verifyFailed, `length ${wrong} instead of ${length}`).toBe(true);
    }
  });

  const handBuilt = [
    { name: "explicit LE", encoding: EXPLICIT_LE, uid: "1.2.840.10008.1.2.1" },
    { name: "implicit LE", encoding: IMPLICIT_LE, uid: "1.2.840.10008.1.2" },
    { name: "explicit BE", encoding: EXPLICIT_BE, uid: "1.2.840.10008.1.2.2" },
  ];

  test.for(handBuilt)("$name: private SQ at depth 3 changed", ({ encoding, uid }, context) => {
    if (skipUnlessTools(tools)) context.skip();
    // In implicit VR only an undefined length marks a private value as a
    // sequence, so the reader keeps defined-length ones as opaque bytes.
    const privateVr = encoding.explicitVr ? "SQ" : "UN";
    const privateUndefinedLength = !encoding.explicitVr;
    const deep = (value: string): ElementSpec[] => [
      text(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
      text(0x00080018, "UI", "1.2.826.0.1.3680043.10.1234.1.1"),
      text(0x00090010, "LO", "ACME 1.0"),
      sequence(
        0x00091001,
        [
          item([
            text(0x00090010, "LO", "ACME 1.0"),
            sequence(
              0x00091002,
              [
                item([
                  text(0x00090010, "LO", "ACME 1.0"),
                  sequence(0x00091003, [item([text(0x00091004, "LO", value)])], { vr: privateVr, undefinedLength: privateUndefinedLength }),
                ]),
              ],
              { vr: privateVr, undefinedLength: true },
            ),
          ]),
        ],
        { vr: privateVr, undefinedLength: privateUndefinedLength },
      ),
      text(0x00100010, "PN", "Doe^Jane"),
      // pydicom 2.3 and dciodvfy byte-swap UN items in big endian files, so
      // this UN appears only in little endian. The next test covers big endian.
      sequence(0x00400275, [item([text(0x00321060, "LO", value)], { undefinedLength: true })], {
        vr: encoding === EXPLICIT_LE ? "UN" : "SQ",
        undefinedLength: true,
      }),
    ];
    const parsed = parseDicom(new BufferSource(part10(uid, encodeDataset(deep("original"), encoding))));
    const level3 = itemAt(parsed.dataset, [0x00091001, 0], [0x00091002, 0], [0x00091003, 0]);
    setText(at(level3, 0x00091004), "changed value at depth 3");
    setText(at(parsed.dataset, [0x00400275, 0], 0x00321060), "changed value at depth 3");
    const output = emitToFile(writePart10(parsed.meta.elements, parsed.dataset), `private-${uid}`);

    expect(readFileSync(output)).toEqual(part10(uid, encodeDataset(deep("changed value at depth 3"), encoding)));
    expectToolsAccept(output);
    const [value, requested, privateSequence] = readWithPydicom(output, [
      ["00091001", 0, "00091002", 0, "00091003", 0, "00091004"],
      ["00400275", 0, "00321060"],
      ["00091001", 0, "00091002"],
    ]);
    // pydicom returns an unknown private LO read in implicit VR as raw bytes.
    const expectedValue = encoding.explicitVr
      ? "changed value at depth 3"
      : { hex: Buffer.from("changed value at depth 3").toString("hex") };
    expect(value).toEqual(expectedValue);
    expect(requested).toBe("changed value at depth 3");
    expect(privateSequence).toEqual({ undefinedLength: true, items: 1 });
  });

  test.skipIf(skipUnlessTools({ dcmdump: true }))("explicit BE: dcmdump reads a changed UN sequence", () => {
    // PS3.5 section 6.2.2: the items of a UN value stay implicit VR little
    // endian whatever the transfer syntax. dcmtk reads them that way.
    const spec = (first: string, second: string): ElementSpec[] => [
      text(0x00100010, "PN", "Doe^Jane"),
      us(0x00280010, 5),
      sequence(0x00400260, [item([text(0x00080100, "SH", second)])], { vr: "UN" }),
      sequence(0x00400275, [item([text(0x00321060, "LO", first)], { undefinedLength: true })], { vr: "UN", undefinedLength: true }),
    ];
    const uid = "1.2.840.10008.1.2.2";
    const parsed = parseDicom(new BufferSource(part10(uid, encodeDataset(spec("before", "CODE1"), EXPLICIT_BE))));
    setText(at(parsed.dataset, [0x00400275, 0], 0x00321060), "after change");
    setText(at(parsed.dataset, [0x00400260, 0], 0x00080100), "CODE-22 ");
    const output = emitToFile(writePart10(parsed.meta.elements, parsed.dataset), "be-un");
    expect(readFileSync(output)).toEqual(part10(uid, encodeDataset(spec("after change", "CODE-22"), EXPLICIT_BE)));
    // +L prints long values in full. dcmdump reads the undefined-length UN
    // as a sequence and shows the defined-length one as raw bytes.
    const dump = runDcmdump(output, ["+L"]);
    expect(dump.status, dump.stderr).toBe(0);
    expect(dump.stdout).toMatch(/\(0032,1060\) LO \[after change\]/);
    const itemHeaderLittleEndian = "fe\\ff\\00\\e0";
    const codeValueHex = [...Buffer.from("CODE-22 ")].map((byte) => byte.toString(16).padStart(2, "0")).join("\\");
    expect(dump.stdout).toContain(`(0040,0260) UN ${itemHeaderLittleEndian}`);
    expect(dump.stdout).toContain(codeValueHex);
    expect(dump.stdout).toMatch(/\(0028,0010\) US 5 /);
  });

  test.skipIf(skipUnlessSample("rtplan.dcm") || skipUnlessTools(tools))("rtplan.dcm: defined lengths recomputed", async () => {
    const inputPath = samplePath("rtplan.dcm");
    const input = readFileSync(inputPath);
    const opened = await openDicom(inputPath);
    let output: string;
    try {
      const beam = itemAt(opened.dataset, [0x300a00b0, 0]);
      // "unit001 " (8 bytes) becomes 14 bytes: +6.
      setText(at(beam, 0x300a00b2), "LINAC-NUMBER-2");
      // (300A,00B4) with a 16-byte value and an 8-byte implicit header: -24.
      removeElement(beam, 0x300a00b4);
      // (300A,00BC) with a 2-byte value, two levels further down: -10.
      removeElement(itemAt(beam, [0x300a00b6, 1]), 0x300a00bc);
      output = writeBack(opened, "rtplan");
    } finally {
      opened.close();
    }
    const written = readFileSync(output);
    expect(lengthAfterTag(written, 0x300a00b0, IMPLICIT_LE)).toBe(lengthAfterTag(input, 0x300a00b0, IMPLICIT_LE) + 6 - 24 - 10);
    expect(lengthAfterTag(written, 0x300a00b6, IMPLICIT_LE)).toBe(lengthAfterTag(input, 0x300a00b6, IMPLICIT_LE) - 10);
    expectToolsAccept(output);

    const [name, beams, beamItem, beamTags, devices, deviceTags] = readWithPydicom(output, [
      ["300A00B0", 0, "300A00B2"],
      ["300A00B0"],
      ["300A00B0", 0],
      ["300A00B0", 0, "*tags"],
      ["300A00B0", 0, "300A00B6"],
      ["300A00B0", 0, "300A00B6", 1, "*tags"],
    ]);
    expect(name).toBe("LINAC-NUMBER-2");
    expect(beams).toEqual({ undefinedLength: false, items: 1 });
    expect(beamItem).toEqual({ itemUndefinedLength: false });
    expect(beamTags).not.toContain("300A00B4");
    expect(beamTags).toContain("300A00B3");
    expect(devices).toEqual({ undefinedLength: false, items: 2 });
    expect(deviceTags).toEqual(["300A00B8"]);
  });

  test.skipIf(skipUnlessSample("rtstruct.dcm") || skipUnlessTools(tools))("rtstruct.dcm: undefined lengths stay", async () => {
    const opened = await openDicom(samplePath("rtstruct.dcm"));
    let output: string;
    try {
      expect(opened.meta.elements).toEqual([]);
      const roi = itemAt(opened.dataset, [0x30060020, 1]);
      setText(at(roi, 0x30060026), "Renamed ROI ");
      removeElement(roi, 0x30060028);
      removeElement(itemAt(opened.dataset, [0x30060010, 0], [0x30060012, 0], [0x30060014, 0]), 0x0020000e);
      const meta = parseDicom(new BufferSource(part10("1.2.840.10008.1.2", Buffer.alloc(0)))).meta.elements;
      output = writeBack(opened, "rtstruct", meta);
    } finally {
      opened.close();
    }
    expectToolsAccept(output);
    const [name, roiTags, rois, roiItem, series, deepest] = readWithPydicom(output, [
      ["30060020", 1, "30060026"],
      ["30060020", 1, "*tags"],
      ["30060020"],
      ["30060020", 1],
      ["30060010", 0, "30060012", 0, "30060014"],
      ["30060010", 0, "30060012", 0, "30060014", 0, "*tags"],
    ]);
    expect(name).toBe("Renamed ROI");
    expect(roiTags).not.toContain("30060028");
    expect(rois).toEqual({ undefinedLength: true, items: 3 });
    expect(roiItem).toEqual({ itemUndefinedLength: true });
    expect(series).toEqual({ undefinedLength: true, items: 1 });
    expect(deepest).toEqual([]);
  });

  test.skipIf(skipUnlessSample("reportsi.dcm") || skipUnlessTools(tools))("reportsi.dcm: change at depth 3", async () => {
    const opened = await openDicom(samplePath("reportsi.dcm"));
    let output: string;
    try {
      const code = itemAt(opened.dataset, [0x0040a730, 4], [0x0040a730, 0], [0x0040a043, 0]);
      setText(at(code, 0x00080104), "Changed meaning");
      removeElement(code, 0x00080102);
      output = writeBack(opened, "reportsi");
    } finally {
      opened.close();
    }
    expectToolsAccept(output);
    const [meaning, tags] = readWithPydicom(output, [
      ["0040A730", 4, "0040A730", 0, "0040A043", 0, "00080104"],
      ["0040A730", 4, "0040A730", 0, "0040A043", 0, "*tags"],
    ]);
    expect(meaning).toBe("Changed meaning");
    expect(tags).toEqual(["00080100", "00080104"]);
  });

  const patientNameCases = [
    { name: "CT_small.dcm", value: "Changed^Name" },
    { name: "MR_small_implicit.dcm", value: "Changed^Name" },
    { name: "MR_small_bigendian.dcm", value: "Changed^Name" },
    { name: "ExplVR_BigEnd.dcm", value: "Odd^Length^Nam" },
    { name: "JPEG2000.dcm", value: "Changed^Name" },
  ];

  test.for(patientNameCases)("$name: new PatientName", async ({ name, value }, context) => {
    if (skipUnlessSample(name) || skipUnlessTools(tools)) context.skip();
    const opened = await openDicom(samplePath(name), { limits: { ...DEFAULT_READ_LIMITS, inlineLimit: 1024 } });
    let output: string;
    try {
      setText(at(opened.dataset, 0x00100010), value);
      output = writeBack(opened, name);
    } finally {
      opened.close();
    }
    expectToolsAccept(output);
    expect(readWithPydicom(output, [["00100010"]])).toEqual([value]);
  });

  test.skipIf(skipUnlessSample("UN_sequence.dcm") || skipUnlessTools(tools))("UN_sequence.dcm: change inside UN items", async () => {
    const opened = await openDicom(samplePath("UN_sequence.dcm"));
    let output: string;
    try {
      const instance = itemAt(opened.dataset, [0x4453100c, 0], [0x00081115, 0], [0x00081199, 0]);
      setText(at(instance, 0x00081155), "1.2.826.0.1.3680043.10.1\0");
      removeElement(itemAt(opened.dataset, [0x4453100c, 0]), 0x0020000d);
      output = writeBack(opened, "un-sequence");
    } finally {
      opened.close();
    }
    expect(runDcmdump(output).status).toBe(0);
    expect(dciodvfyReadErrors(output)).toEqual([]);
    const [uid, tags] = readWithPydicom(output, [
      ["4453100C", 0, "00081115", 0, "00081199", 0, "00081155"],
      ["4453100C", 0, "*tags"],
    ]);
    expect(uid).toBe("1.2.826.0.1.3680043.10.1");
    expect(tags).toEqual(["00081115"]);
  });

  test.skipIf(skipUnlessSample("image_dfl.dcm") || skipUnlessTools(tools))("image_dfl.dcm: deflated output", async () => {
    const opened = await openDicom(samplePath("image_dfl.dcm"), { limits: { ...DEFAULT_READ_LIMITS, inlineLimit: 1024 } });
    const output = newPath("image_dfl");
    try {
      setText(at(opened.dataset, 0x00100010), "Deflated^Name");
      await emitDeflated(writePart10(opened.meta.elements, undefined), writeDataset(opened.dataset), output);
    } finally {
      opened.close();
    }
    // dciodvfy cannot read the deflated transfer syntax, so only dcmdump and pydicom check this file.
    const dump = runDcmdump(output);
    expect(dump.status, dump.stderr).toBe(0);
    expect(readWithPydicom(output, [["00100010"], ["00280010"]])).toEqual(["Deflated^Name", 512]);
  });
});
