/**
 * Builds DICOM byte streams by hand for reader and writer tests, and locates
 * the real inputs those tests also use (pydicom's sample files, dcmdump and
 * pydicom itself).
 *
 * The encoder here shares no code with src/dicom, so a length the writer
 * computes wrongly shows up as a byte difference against these buffers.
 * It encodes exactly what it is given: no padding to even lengths, no tag
 * sorting and no checks, so that tests can build invalid input on purpose.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";

/** Byte order and VR encoding of a data set or of the items in a sequence. */
export interface Encoding {
  littleEndian: boolean;
  explicitVr: boolean;
}

export const EXPLICIT_LE: Encoding = { littleEndian: true, explicitVr: true };
export const IMPLICIT_LE: Encoding = { littleEndian: true, explicitVr: false };
export const EXPLICIT_BE: Encoding = { littleEndian: false, explicitVr: true };

export const UNDEFINED_LENGTH = 0xffffffff;

/** Value bytes, either fixed or computed for the byte order they are written in. */
export type ValueSpec = Buffer | ((encoding: Encoding) => Buffer);

export interface ElementSpec {
  tag: number;
  vr: string;
  value?: ValueSpec;
  items?: ItemSpec[];
  /** Encapsulated pixel data: the Basic Offset Table item, then the fragments. */
  fragments?: Buffer[];
  undefinedLength?: boolean;
  /**
   * Encoding of the items. The default is the parent's encoding, or implicit
   * VR little endian when the VR is UN (PS3.5 section 6.2.2).
   */
  itemEncoding?: Encoding;
  /** Written in place of the computed length (for invalid input). */
  lengthOverride?: number;
}

export interface ItemSpec {
  elements: ElementSpec[];
  undefinedLength?: boolean;
  /** Written in place of the computed item length (for invalid input). */
  lengthOverride?: number;
}

const LONG_LENGTH_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);

function tagBytes(tag: number, encoding: Encoding): Buffer {
  const bytes = Buffer.alloc(4);
  if (encoding.littleEndian) {
    bytes.writeUInt16LE(tag >>> 16, 0);
    bytes.writeUInt16LE(tag & 0xffff, 2);
  } else {
    bytes.writeUInt16BE(tag >>> 16, 0);
    bytes.writeUInt16BE(tag & 0xffff, 2);
  }
  return bytes;
}

function uint32Bytes(value: number, littleEndian: boolean): Buffer {
  const bytes = Buffer.alloc(4);
  if (littleEndian) bytes.writeUInt32LE(value >>> 0, 0);
  else bytes.writeUInt32BE(value >>> 0, 0);
  return bytes;
}

function uint16Bytes(value: number, littleEndian: boolean): Buffer {
  const bytes = Buffer.alloc(2);
  if (littleEndian) bytes.writeUInt16LE(value, 0);
  else bytes.writeUInt16BE(value, 0);
  return bytes;
}

/** Encodes an item or delimiter header: tag (FFFE,xxxx) and a 32-bit length. */
function itemHeader(tag: number, length: number, littleEndian: boolean): Buffer {
  return Buffer.concat([tagBytes(tag, { littleEndian, explicitVr: false }), uint32Bytes(length, littleEndian)]);
}

function encodeItem(item: ItemSpec, encoding: Encoding): Buffer {
  const content = encodeDataset(item.elements, encoding);
  const length = item.lengthOverride ?? (item.undefinedLength ? UNDEFINED_LENGTH : content.length);
  const parts = [itemHeader(0xfffee000, length, encoding.littleEndian), content];
  if (item.undefinedLength) parts.push(itemHeader(0xfffee00d, 0, encoding.littleEndian));
  return Buffer.concat(parts);
}

function encodeValue(element: ElementSpec, encoding: Encoding): Buffer {
  if (element.items) {
    const itemEncoding = element.itemEncoding ?? (element.vr === "UN" ? IMPLICIT_LE : encoding);
    const parts = element.items.map((item) => encodeItem(item, itemEncoding));
    if (element.undefinedLength) parts.push(itemHeader(0xfffee0dd, 0, itemEncoding.littleEndian));
    return Buffer.concat(parts);
  }
  if (element.fragments) {
    const parts: Buffer[] = element.fragments.map((fragment) =>
      Buffer.concat([itemHeader(0xfffee000, fragment.length, encoding.littleEndian), fragment]),
    );
    if (element.undefinedLength) parts.push(itemHeader(0xfffee0dd, 0, encoding.littleEndian));
    return Buffer.concat(parts);
  }
  const value = element.value ?? Buffer.alloc(0);
  return typeof value === "function" ? value(encoding) : value;
}

/** Encodes one element: tag, VR (explicit only), length and value. */
export function encodeElement(element: ElementSpec, encoding: Encoding): Buffer {
  const value = encodeValue(element, encoding);
  const length = element.lengthOverride ?? (element.undefinedLength ? UNDEFINED_LENGTH : value.length);
  const header: Buffer[] = [tagBytes(element.tag, encoding)];
  if (!encoding.explicitVr) {
    header.push(uint32Bytes(length, encoding.littleEndian));
  } else if (LONG_LENGTH_VRS.has(element.vr)) {
    header.push(Buffer.from(element.vr, "latin1"), Buffer.alloc(2), uint32Bytes(length, encoding.littleEndian));
  } else {
    header.push(Buffer.from(element.vr, "latin1"), uint16Bytes(length & 0xffff, encoding.littleEndian));
  }
  return Buffer.concat([...header, value]);
}

/** Encodes elements in the given order, without an item header. */
export function encodeDataset(elements: ElementSpec[], encoding: Encoding): Buffer {
  return Buffer.concat(elements.map((element) => encodeElement(element, encoding)));
}

// Element builders. Tags are written as 0xGGGGEEEE.

/** Builds a string element padded to even length: NUL for UI, space for other VRs. */
export function text(tag: number, vr: string, value: string): ElementSpec {
  let padded = value;
  if (value.length % 2 === 1) padded += vr === "UI" ? "\0" : " ";
  return { tag, vr, value: Buffer.from(padded, "latin1") };
}

/** Builds an element whose value bytes are written as they are, odd lengths included. */
export function raw(tag: number, vr: string, value: Buffer): ElementSpec {
  return { tag, vr, value };
}

/** Builds a US element with one or more 16-bit values in the data set's byte order. */
export function us(tag: number, ...values: number[]): ElementSpec {
  return {
    tag,
    vr: "US",
    value: (encoding) => Buffer.concat(values.map((value) => uint16Bytes(value, encoding.littleEndian))),
  };
}

/** Builds a UL element with one or more 32-bit values in the data set's byte order. */
export function ul(tag: number, ...values: number[]): ElementSpec {
  return {
    tag,
    vr: "UL",
    value: (encoding) => Buffer.concat(values.map((value) => uint32Bytes(value, encoding.littleEndian))),
  };
}

/** Builds an FD element with one or more doubles in the data set's byte order. */
export function fd(tag: number, ...values: number[]): ElementSpec {
  return {
    tag,
    vr: "FD",
    value: (encoding) =>
      Buffer.concat(
        values.map((value) => {
          const bytes = Buffer.alloc(8);
          if (encoding.littleEndian) bytes.writeDoubleLE(value, 0);
          else bytes.writeDoubleBE(value, 0);
          return bytes;
        }),
      ),
  };
}

export function item(elements: ElementSpec[], options: { undefinedLength?: boolean } = {}): ItemSpec {
  return { elements, undefinedLength: options.undefinedLength ?? false };
}

export function sequence(
  tag: number,
  items: ItemSpec[],
  options: { undefinedLength?: boolean; vr?: string; itemEncoding?: Encoding } = {},
): ElementSpec {
  return {
    tag,
    vr: options.vr ?? "SQ",
    items,
    undefinedLength: options.undefinedLength ?? false,
    itemEncoding: options.itemEncoding,
  };
}

/** Builds encapsulated pixel data (7FE0,0010) with undefined length (PS3.5 A.4). */
export function encapsulated(fragments: Buffer[], vr = "OB"): ElementSpec {
  return { tag: 0x7fe00010, vr, fragments, undefinedLength: true };
}

/**
 * Builds `depth` sequences nested inside one another, each with one item:
 * (0040,A730) Content Sequence, ending in a Code Value element.
 */
export function nestedSequences(depth: number, options: { undefinedLength: boolean }): ElementSpec {
  let innermost: ElementSpec = text(0x00080100, "SH", "LEAF");
  for (let level = 0; level < depth; level++) {
    innermost = sequence(0x0040a730, [item([innermost], options)], options);
  }
  return innermost;
}

/**
 * Encodes `depth` nested undefined-length sequences straight into one
 * buffer. `nestedSequences` builds intermediate buffers at every level,
 * which costs O(depth²) bytes for thousands of levels.
 */
export function deeplyNestedDataset(depth: number, encoding: Encoding): Buffer {
  const sequenceHeader = encodeElement({ tag: 0x0040a730, vr: "SQ", undefinedLength: true, items: [] }, encoding)
    .subarray(0, encoding.explicitVr ? 12 : 8);
  const itemStart = itemHeader(0xfffee000, UNDEFINED_LENGTH, encoding.littleEndian);
  const itemEnd = itemHeader(0xfffee00d, 0, encoding.littleEndian);
  const sequenceEnd = itemHeader(0xfffee0dd, 0, encoding.littleEndian);
  const opening = Buffer.concat([sequenceHeader, itemStart]);
  const closing = Buffer.concat([itemEnd, sequenceEnd]);
  const leaf = encodeElement(text(0x00080100, "SH", "LEAF"), encoding);
  const output = Buffer.alloc(depth * (opening.length + closing.length) + leaf.length);
  let offset = 0;
  for (let level = 0; level < depth; level++) offset += opening.copy(output, offset);
  offset += leaf.copy(output, offset);
  for (let level = 0; level < depth; level++) offset += closing.copy(output, offset);
  return output;
}

// Part 10 files.

export interface Part10Options {
  /** 128 bytes, zeros when omitted. */
  preamble?: Buffer;
  /** Meta elements after (0002,0010). The builder writes (0002,0000) to (0002,0010) itself. */
  extraMeta?: ElementSpec[];
  /** Leaves out (0002,0000) File Meta Information Group Length. */
  omitGroupLength?: boolean;
}

export const TEST_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.7";
export const TEST_SOP_INSTANCE_UID = "1.2.826.0.1.3680043.10.1234.1.1";

/** Encodes the file meta group (PS3.10 section 7.1) in explicit VR little endian. */
export function encodeFileMeta(transferSyntaxUid: string, options: Part10Options = {}): Buffer {
  const body = encodeDataset(
    [
      raw(0x00020001, "OB", Buffer.from([0, 1])),
      text(0x00020002, "UI", TEST_SOP_CLASS_UID),
      text(0x00020003, "UI", TEST_SOP_INSTANCE_UID),
      text(0x00020010, "UI", transferSyntaxUid),
      ...(options.extraMeta ?? []),
    ],
    EXPLICIT_LE,
  );
  if (options.omitGroupLength) return body;
  return Buffer.concat([encodeElement(ul(0x00020000, body.length), EXPLICIT_LE), body]);
}

/** Builds a Part 10 file: preamble, "DICM", file meta, then `dataset` as given. */
export function part10(transferSyntaxUid: string, dataset: Buffer, options: Part10Options = {}): Buffer {
  const preamble = options.preamble ?? Buffer.alloc(128);
  return Buffer.concat([preamble, Buffer.from("DICM", "latin1"), encodeFileMeta(transferSyntaxUid, options), dataset]);
}

/** Builds a Part 10 file with Deflated Explicit VR Little Endian, whose data set is raw-deflated. */
export function deflatedPart10(dataset: Buffer, options: Part10Options = {}): Buffer {
  return part10("1.2.840.10008.1.2.1.99", deflateRawSync(dataset), options);
}

// Real inputs: pydicom's sample files and external tools.

export const PYDICOM_TEST_FILES = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
export const PYTHON_WITH_PYDICOM = "/usr/bin/python3";

/** True when tests that need a missing input must fail instead of being skipped. */
export const REQUIRE_INPUTS = Boolean(process.env.CI);

export function sampleExists(name: string): boolean {
  return existsSync(join(PYDICOM_TEST_FILES, name));
}

/**
 * Returns the path of one of pydicom's sample files. Tests call it through
 * `skipUnlessSample`, so under CI a missing file reaches this throw.
 */
export function samplePath(name: string): string {
  const path = join(PYDICOM_TEST_FILES, name);
  if (!existsSync(path)) {
    throw new Error(`pydicom sample file not found: ${path}. Install python3-pydicom (Debian) to get it`);
  }
  return path;
}

/** True when the test should be skipped: the file is missing and CI is not set. */
export function skipUnlessSample(...names: string[]): boolean {
  return !REQUIRE_INPUTS && !names.every(sampleExists);
}

let dcmdumpPresent: boolean | undefined;
let dciodvfyPresent: boolean | undefined;
let pydicomPresent: boolean | undefined;

export function hasDcmdump(): boolean {
  dcmdumpPresent ??= spawnSync("dcmdump", ["--version"], { encoding: "utf8" }).status === 0;
  return dcmdumpPresent;
}

export function hasDciodvfy(): boolean {
  // dciodvfy has no version flag. Without arguments it prints its usage and exits.
  dciodvfyPresent ??= spawnSync("dciodvfy", [], { encoding: "utf8" }).error === undefined;
  return dciodvfyPresent;
}

export function hasPydicom(): boolean {
  pydicomPresent ??= spawnSync(PYTHON_WITH_PYDICOM, ["-c", "import pydicom"], { encoding: "utf8" }).status === 0;
  return pydicomPresent;
}

/** True when an interop test should be skipped: a tool is missing and CI is not set. */
export function skipUnlessTools(tools: { dcmdump?: boolean; dciodvfy?: boolean; pydicom?: boolean }): boolean {
  if (REQUIRE_INPUTS) return false;
  return (
    (tools.dcmdump === true && !hasDcmdump()) ||
    (tools.dciodvfy === true && !hasDciodvfy()) ||
    (tools.pydicom === true && !hasPydicom())
  );
}

export interface ToolResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `dcmdump -q` (dcmtk), which exits non-zero when it cannot parse the file. */
export function runDcmdump(path: string, extraArgs: string[] = []): ToolResult {
  const result = spawnSync("dcmdump", ["-q", ...extraArgs, path], { encoding: "utf8" });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Returns the lines in which dciodvfy (dicom3tools) reports that it could not
 * read the encoding: a sequence or item length that disagrees with its
 * content, or a tag where an item was expected. Its IOD findings (missing
 * attributes, bad values) are left out, because the sample files have many.
 * dcmdump 3.6.7 and pydicom 2.3 both accept a defined sequence length that
 * is 2 bytes short of its content, but dciodvfy reports it.
 */
export function dciodvfyReadErrors(path: string): string[] {
  const result = spawnSync("dciodvfy", [path], { encoding: "utf8" });
  if (result.error) throw result.error;
  const lines = `${result.stdout}\n${result.stderr}`.split("\n");
  return lines.filter((line) => /read failed|Bad Explicit Value Length|Bad tag in sequence|Bad Sequence/i.test(line));
}

/**
 * Reads a file with pydicom and prints, as JSON, the value at each element
 * path. A path is a list of tags and item indexes, such as
 * ["300A00B0", 0, "300A00B2"]. The step "*tags" lists the tags of the data
 * set reached so far, as 8 hex digits. Every element is decoded first
 * (Dataset.walk), so a file pydicom cannot fully parse fails the call.
 * Sequences report their length form as {"undefinedLength": bool, "items": n}.
 */
const PYDICOM_SCRIPT = String.raw`
import json, sys
import pydicom
from pydicom.sequence import Sequence

path, queries = sys.argv[1], json.loads(sys.argv[2])
ds = pydicom.dcmread(path)
ds.walk(lambda dataset, element: element.value)

def resolve(node, steps):
    for step in steps:
        if step == "*tags":
            return ["%08X" % int(tag) for tag in node.keys()]
        if isinstance(step, int):
            node = node[step]
        else:
            node = node[int(step, 16)].value
    return node

def describe(value):
    if isinstance(value, Sequence):
        return {"undefinedLength": bool(value.is_undefined_length), "items": len(value)}
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, pydicom.dataset.Dataset):
        return {"itemUndefinedLength": bool(value.is_undefined_length_sequence_item)}
    if isinstance(value, (list, pydicom.multival.MultiValue)):
        return [describe(entry) for entry in value]
    if isinstance(value, (int, float)):
        return value
    return str(value)

print(json.dumps([describe(resolve(ds, query)) for query in queries]))
`;

/** Runs PYDICOM_SCRIPT on `path` and returns one description per query. */
export function readWithPydicom(path: string, queries: Array<Array<string | number>>): unknown[] {
  const result = spawnSync(PYTHON_WITH_PYDICOM, ["-c", PYDICOM_SCRIPT, path, JSON.stringify(queries)], {
    encoding: "utf8",
  });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`pydicom could not read ${path} (exit ${result.status}): ${result.stderr.trim().split("\n").pop()}`);
  }
  return JSON.parse(result.stdout) as unknown[];
}
