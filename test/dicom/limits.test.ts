import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, afterEach, beforeEach, describe, expect, test } from "vitest";

import { openDicom } from "../../src/dicom/file-io.js";
import {
  DEFAULT_READ_LIMITS,
  MAX_SUPPORTED_DEPTH,
  parseDataset,
  parseDicom,
  type ReadLimits,
} from "../../src/dicom/reader.js";
import { BufferSource } from "../../src/dicom/source.js";
import { writeDataset } from "../../src/dicom/writer.js";
import { LimitError } from "../../src/errors.js";
import {
  deeplyNestedDataset,
  deflatedPart10,
  encapsulated,
  encodeDataset,
  EXPLICIT_BE,
  EXPLICIT_LE,
  IMPLICIT_LE,
  item,
  nestedSequences,
  part10,
  raw,
  sequence,
  text,
  type ElementSpec,
} from "../helpers/dicom-bytes.js";

const workDir = mkdtempSync(join(tmpdir(), "deidkit-limits-test-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function parseBytes(bytes: Buffer, limits: Partial<ReadLimits> = {}) {
  return parseDicom(new BufferSource(bytes), { ...DEFAULT_READ_LIMITS, ...limits });
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

function expectLimitError(error: unknown): LimitError {
  expect(error).toBeInstanceOf(LimitError);
  const limitError = error as LimitError;
  expect(limitError.code).toBe("LIMIT_EXCEEDED");
  expect(limitError.hint).toBeTruthy();
  return limitError;
}

/** Returns the byte offset that a reader LimitError names in its message. */
function offsetIn(error: LimitError): number {
  const match = / at byte (\d+)$/.exec(error.message);
  if (!match) throw new Error(`no byte offset in "${error.message}"`);
  return Number(match[1]);
}

const EXPLICIT_LE_UID = "1.2.840.10008.1.2.1";
const MODALITY = text(0x00080060, "CS", "SR");

/** Builds a file whose only nesting is `depth` Content Sequences, one inside the other. */
function nestedFile(depth: number, undefinedLength: boolean, encoding = EXPLICIT_LE, uid = EXPLICIT_LE_UID): Buffer {
  return part10(uid, encodeDataset([MODALITY, nestedSequences(depth, { undefinedLength })], encoding));
}

describe("maxDepth", () => {
  const forms = [
    { label: "undefined length, explicit LE", undefinedLength: true, encoding: EXPLICIT_LE, uid: EXPLICIT_LE_UID },
    { label: "defined length, explicit LE", undefinedLength: false, encoding: EXPLICIT_LE, uid: EXPLICIT_LE_UID },
    { label: "undefined length, implicit LE", undefinedLength: true, encoding: IMPLICIT_LE, uid: "1.2.840.10008.1.2" },
    { label: "defined length, explicit BE", undefinedLength: false, encoding: EXPLICIT_BE, uid: "1.2.840.10008.1.2.2" },
  ];

  test.each(forms)("$label: depth equal to maxDepth parses", ({ undefinedLength, encoding, uid }) => {
    const parsed = parseBytes(nestedFile(8, undefinedLength, encoding, uid), { maxDepth: 8 });
    let level = parsed.dataset;
    let depth = 0;
    for (let element = level.elements.at(-1); element?.items; element = level.elements.at(-1)) {
      level = element.items[0];
      depth++;
    }
    expect(depth).toBe(8);
    expect(level.elements[0].bytes?.toString("latin1")).toBe("LEAF");
  });

  test.each(forms)("$label: one level more throws", ({ undefinedLength, encoding, uid }) => {
    const error = expectLimitError(thrown(() => parseBytes(nestedFile(9, undefinedLength, encoding, uid), { maxDepth: 8 })));
    expect(error.message).toMatch(/^sequences nested deeper than 8 at byte \d+$/);
    expect(error.hint).toMatch(/--max-depth/);
  });

  test("private UN sequences count as nesting", () => {
    let innermost: ElementSpec = text(0x00091010, "LO", "x");
    for (let level = 0; level < 5; level++) {
      innermost = sequence(0x00091001, [item([text(0x00090010, "LO", "ACME"), innermost], { undefinedLength: true })], {
        vr: "UN",
        undefinedLength: true,
      });
    }
    const file = part10(EXPLICIT_LE_UID, encodeDataset([MODALITY, text(0x00090010, "LO", "ACME"), innermost], EXPLICIT_LE));
    expect(() => parseBytes(file, { maxDepth: 5 })).not.toThrow();
    expectLimitError(thrown(() => parseBytes(file, { maxDepth: 4 })));
  });

  test("10,000 levels: LimitError near the start", () => {
    const file = part10(EXPLICIT_LE_UID, deeplyNestedDataset(10_000, EXPLICIT_LE));
    const error = expectLimitError(thrown(() => parseBytes(file)));
    expect(error.message).toMatch(/nested deeper than 64/);
    // Each level opens with a 12-byte sequence header and an 8-byte item
    // header, so the reader stops within the first 65 levels of 10,000.
    expect(offsetIn(error)).toBeLessThan(132 + 200 + 66 * 20);
  });

  test("10,000 levels with a raised maxDepth: no stack overflow", () => {
    const file = part10(EXPLICIT_LE_UID, deeplyNestedDataset(10_000, EXPLICIT_LE));
    const error = expectLimitError(thrown(() => parseBytes(file, { maxDepth: 1_000_000 })));
    expect(error.message).toMatch(new RegExp(`nested deeper than ${MAX_SUPPORTED_DEPTH} `));
    expect(error.hint).not.toMatch(/--max-depth/);
  });

  test("10,000 levels in implicit VR: no stack overflow", () => {
    const dataset = Buffer.concat([encodeDataset([MODALITY], IMPLICIT_LE), deeplyNestedDataset(10_000, IMPLICIT_LE)]);
    const error = expectLimitError(thrown(() => parseDataset(new BufferSource(dataset), IMPLICIT_LE, { ...DEFAULT_READ_LIMITS, maxDepth: 1e9 })));
    expect(error.message).toMatch(/nested deeper than/);
  });

  test("MAX_SUPPORTED_DEPTH levels parse and write back", () => {
    const dataset = Buffer.concat([encodeDataset([MODALITY], EXPLICIT_LE), deeplyNestedDataset(MAX_SUPPORTED_DEPTH, EXPLICIT_LE)]);
    const parsed = parseDataset(new BufferSource(dataset), EXPLICIT_LE, { ...DEFAULT_READ_LIMITS, maxDepth: MAX_SUPPORTED_DEPTH });
    expect(Buffer.concat(writeDataset(parsed) as Buffer[])).toEqual(dataset);
  });
});

describe("maxNodes", () => {
  // Three elements (modality, the sequence, its leaf) and two items: 5 nodes.
  const file = part10(
    EXPLICIT_LE_UID,
    encodeDataset(
      [MODALITY, sequence(0x00081115, [item([]), item([text(0x0020000e, "UI", "1.2")])], { undefinedLength: true })],
      EXPLICIT_LE,
    ),
  );
  // The file meta adds 5 elements: (0002,0000), (0002,0001), (0002,0002), (0002,0003), (0002,0010).
  const nodes = 5 + 5;

  test("exactly maxNodes parses", () => {
    expect(() => parseBytes(file, { maxNodes: nodes })).not.toThrow();
  });

  test("one node more throws", () => {
    const error = expectLimitError(thrown(() => parseBytes(file, { maxNodes: nodes - 1 })));
    expect(error.message).toMatch(new RegExp(`^more than ${nodes - 1} elements and items at byte \\d+$`));
    expect(error.hint).toMatch(/--max-elements/);
  });

  test("fragments count as nodes", () => {
    const pixels = part10("1.2.840.10008.1.2.4.50", encodeDataset([encapsulated([Buffer.alloc(0), Buffer.alloc(2), Buffer.alloc(2)])], EXPLICIT_LE));
    // 5 meta elements, the pixel data element and its 3 fragments.
    expect(() => parseBytes(pixels, { maxNodes: 9 })).not.toThrow();
    expectLimitError(thrown(() => parseBytes(pixels, { maxNodes: 8 })));
  });

  test("200,000 elements: stops at the limit", () => {
    const element = encodeDataset([text(0x00090010, "LO", "ACME")], EXPLICIT_LE);
    const flat: Buffer[] = [encodeDataset([MODALITY], EXPLICIT_LE)];
    for (let index = 0; index < 200_000; index++) {
      const copy = Buffer.from(element);
      // (0009,0010) to (0009,00FF), then (000B,0010) and so on, keeps the tags ascending.
      const group = 0x0009 + 2 * Math.floor(index / 240);
      copy.writeUInt16LE(group, 0);
      copy.writeUInt16LE(0x10 + (index % 240), 2);
      flat.push(copy);
    }
    const bytes = Buffer.concat(flat);
    const error = expectLimitError(thrown(() => parseDataset(new BufferSource(bytes), EXPLICIT_LE, { ...DEFAULT_READ_LIMITS, maxNodes: 1000 })));
    expect(offsetIn(error)).toBe(10 + 999 * element.length);
  });
});

describe("maxHeaderBytes and inlineLimit", () => {
  const file = part10(
    EXPLICIT_LE_UID,
    encodeDataset([MODALITY, raw(0x00081030, "LO", Buffer.alloc(64, 0x41)), raw(0x7fe00010, "OW", Buffer.alloc(4096, 1))], EXPLICIT_LE),
  );
  const metaBytes = 4 + 2 + 26 + 32 + 20;

  test("values up to inlineLimit are loaded", () => {
    const parsed = parseBytes(file, { inlineLimit: 4096 });
    const pixels = parsed.dataset.elements.at(-1)!;
    expect(pixels.bytes?.length).toBe(4096);
    expect(pixels.bulk).toBeUndefined();
  });

  test("values above inlineLimit become BulkRefs", () => {
    const parsed = parseBytes(file, { inlineLimit: 4095 });
    const pixels = parsed.dataset.elements.at(-1)!;
    expect(pixels.bytes).toBeUndefined();
    expect(pixels.bulk?.length).toBe(4096);
    expect(pixels.bulk?.offset).toBe(file.length - 4096);
  });

  test("loaded bytes above maxHeaderBytes throw", () => {
    const loaded = metaBytes + 2 + 64 + 4096;
    expect(() => parseBytes(file, { maxHeaderBytes: loaded })).not.toThrow();
    const error = expectLimitError(thrown(() => parseBytes(file, { maxHeaderBytes: loaded - 1 })));
    expect(error.message).toMatch(/^header values exceed \d+ bytes at byte \d+$/);
  });

  test("BulkRefs do not count towards maxHeaderBytes", () => {
    expect(() => parseBytes(file, { maxHeaderBytes: metaBytes + 2 + 64, inlineLimit: 1024 })).not.toThrow();
  });
});

describe("maxInflatedBytes", () => {
  let privateTmp: string;
  let savedTmp: string | undefined;

  // openDicom inflates into a directory under os.tmpdir(). A private TMPDIR
  // shows whether that directory is removed after a failure.
  beforeEach(() => {
    savedTmp = process.env.TMPDIR;
    privateTmp = join(workDir, `tmp-${Date.now()}-${Math.random().toString(16).slice(2)}`);
    mkdirSync(privateTmp);
    process.env.TMPDIR = privateTmp;
  });

  afterEach(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  });

  // 64 MiB of zeros deflates to about 64 KiB: a small file that inflates 1000-fold.
  const bomb = deflatedPart10(encodeDataset([MODALITY, raw(0x7fe00010, "OB", Buffer.alloc(64 * 1024 * 1024))], EXPLICIT_LE));

  test("inflating past the cap throws and cleans up", async () => {
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const path = join(workDir, "bomb.dcm");
    writeFileSync(path, bomb);
    const failure = openDicom(path, { maxInflatedBytes: 1024 * 1024 });
    await expect(failure).rejects.toBeInstanceOf(LimitError);
    await expect(failure).rejects.toMatchObject({ code: "LIMIT_EXCEEDED", message: /more than 1048576 bytes/ });
    expect(readdirSync(privateTmp)).toEqual([]);
  });

  test("inflating within the cap succeeds", async () => {
    const path = join(workDir, "bomb-allowed.dcm");
    writeFileSync(path, bomb);
    const opened = await openDicom(path, { maxInflatedBytes: 65 * 1024 * 1024, limits: { ...DEFAULT_READ_LIMITS, inlineLimit: 1024 } });
    try {
      expect(opened.dataset.elements.at(-1)?.bulk?.length).toBe(64 * 1024 * 1024);
      // The inflated plain text is unlinked at once: nothing of it is visible on disk.
      expect(readdirSync(privateTmp)).toEqual([]);
    } finally {
      opened.close();
    }
    expect(readdirSync(privateTmp)).toEqual([]);
  });
});
