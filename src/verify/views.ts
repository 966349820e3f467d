/**
 * The text that a file exposes, place by place: DICOM values decoded with
 * their character set, members of gzip and zip archives (XLSX included),
 * and the raw bytes of everything else. Used by `verify` to search for
 * identifiers wherever a reader of the file could find them.
 */
import { closeSync, createReadStream, createWriteStream, readSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";

import yauzl from "yauzl";

import { LimitError } from "../errors.js";
import { MAX_PARQUET_BYTES } from "../formats/detect.js";
import { codecForSpecificCharacterSet, CHARSET_SENSITIVE_VRS, type CharsetCodec } from "../dicom/charset.js";
import { vrOf, type Item } from "../dicom/dataset.js";
import { openDicom } from "../dicom/file-io.js";
import { looksLikeDicom } from "../dicom/reader.js";
import { openRegularFile } from "../dicom/source.js";
import { formatTag, TAG } from "../dicom/tags.js";

export interface TextView {
  /** Location of the text: "path", "bytes", a DICOM tag path, or "member NAME > ...". */
  place: string;
  text: string;
}

export interface ViewLimits {
  /** Maximum nesting of archives inside archives. */
  maxDepth: number;
  /** Maximum bytes inflated from one gzip file or zip member. */
  maxInflatedBytes: number;
  /** Maximum members read from one zip archive. */
  maxMembers: number;
}

export const DEFAULT_VIEW_LIMITS: ViewLimits = { maxDepth: 4, maxInflatedBytes: 4 * 1024 ** 3, maxMembers: 100_000 };

const CHUNK = 4 * 1024 * 1024;
/** Chunks overlap, so an identifier that straddles two chunks is still found. */
const OVERLAP = 4096;
const PIXEL_TAGS = new Set([0x7fe00010, 0x7fe00008, 0x7fe00009]);

function readHead(path: string, length = 512): Buffer {
  const fd = openRegularFile(path);
  try {
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, readSync(fd, buffer, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}

async function* rawViews(path: string, place: string): AsyncGenerator<TextView> {
  let carry: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) {
    const bytes = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    yield { place, text: bytes.toString("latin1") };
    yield { place, text: bytes.toString("utf8") };
    // UTF-16 at either byte alignment, as anonymize writes UTF-16LE text
    // back in UTF-16LE; big-endian only where zero bytes suggest it.
    for (const start of [0, 1]) {
      const aligned = bytes.subarray(start, start + ((bytes.length - start) & ~1));
      yield { place, text: aligned.toString("utf16le") };
      if (aligned.includes(0)) yield { place, text: Buffer.from(aligned).swap16().toString("utf16le") };
    }
    carry = bytes.subarray(Math.max(0, bytes.length - OVERLAP));
  }
}

function* dicomItemViews(item: Item, codec: CharsetCodec, prefix: string): Generator<TextView> {
  const specific = item.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
  const itemCodec = specific?.bytes ? codecForSpecificCharacterSet(specific.bytes.toString("latin1")) : codec;
  for (const element of item.elements) {
    const place = `${prefix}${formatTag(element.tag)}`;
    if (element.items) {
      let index = 0;
      for (const child of element.items) yield* dicomItemViews(child, itemCodec, `${place}[${index++}]/`);
      continue;
    }
    if (!element.bytes || PIXEL_TAGS.has(element.tag)) continue;
    const vr = vrOf(element);
    if (CHARSET_SENSITIVE_VRS.has(vr)) {
      try {
        yield { place, text: itemCodec.decode(element.bytes, vr) };
      } catch {
        // An undecodable value is still searched as raw bytes below.
      }
    }
    // The raw bytes too: a value can hide in a binary VR, or in bytes its character set does not decode.
    yield { place, text: element.bytes.toString("latin1") };
  }
}

async function* dicomViews(path: string, place: string): AsyncGenerator<TextView> {
  const opened = await openDicom(path);
  try {
    const specific = opened.dataset.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
    const codec = codecForSpecificCharacterSet(specific?.bytes?.toString("latin1"));
    yield* dicomItemViews(opened.meta, codec, `${place}`);
    yield* dicomItemViews(opened.dataset, codec, `${place}`);
  } finally {
    opened.close();
  }
}

function capStream(limit: number, what: string): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      total += chunk.length;
      if (total > limit) callback(new LimitError(`${what} inflates to more than ${limit} bytes`));
      else callback(null, chunk);
    },
  });
}

async function* zipViews(path: string, place: string, depth: number, limits: ViewLimits, temp: string): AsyncGenerator<TextView> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(path, { lazyEntries: true, autoClose: false }, (error, opened) => (error ? reject(error) : resolve(opened!))),
  );
  try {
    let members = 0;
    for (;;) {
      const entry = await new Promise<yauzl.Entry | undefined>((resolve, reject) => {
        zip.once("entry", resolve);
        zip.once("end", () => resolve(undefined));
        zip.once("error", reject);
        zip.readEntry();
      });
      if (!entry) break;
      if (++members > limits.maxMembers) throw new LimitError(`more than ${limits.maxMembers} members in an archive`);
      const memberPlace = `${place}member ${entry.fileName} > `;
      yield { place: `${memberPlace}name`, text: entry.fileName };
      if (entry.fileName.endsWith("/")) continue;
      const target = join(temp, `member-${depth}-${members}`);
      const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
        zip.openReadStream(entry, (error, opened) => (error ? reject(error) : resolve(opened!))),
      );
      await pipeline(stream, capStream(limits.maxInflatedBytes, "an archive member"), createWriteStream(target));
      yield* fileViews(target, entry.fileName, memberPlace, depth + 1, limits, temp);
      await rm(target, { force: true });
    }
  } finally {
    zip.close();
  }
}

/**
 * Parquet pages are usually compressed, so their raw bytes hide the values:
 * each column's values are read and searched as text, a column at a time.
 */
async function* parquetViews(path: string, place: string): AsyncGenerator<TextView> {
  const { size } = await stat(path);
  if (size > MAX_PARQUET_BYTES) throw new LimitError(`a Parquet file is larger than ${MAX_PARQUET_BYTES} bytes`);
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } = await import("hyparquet");
  const file = await asyncBufferFromFile(path);
  const metadata = await parquetMetadataAsync(file);
  const columns = metadata.schema.slice(1).map((element) => element.name);
  yield { place: `${place}column names`, text: columns.join("\n") };
  const rows = await parquetReadObjects({ file, metadata });
  for (const column of columns) {
    const values = rows.map((row) => (row[column] === null || row[column] === undefined ? "" : String(row[column])));
    yield { place: `${place}column ${column}`, text: values.join("\n") };
  }
}

/**
 * As fileViews, with the working folder for gunzipped and unzipped content
 * created under `parent` rather than the system's temporary folder.
 */
export async function* fileViewsUnder(parent: string, path: string, name: string): AsyncGenerator<TextView> {
  const temp = await mkdtemp(join(parent, "views-"));
  try {
    yield* fileViews(path, name, "", 0, DEFAULT_VIEW_LIMITS, temp);
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/**
 * Yields every text view of the file at `path`; `name` is its file name,
 * used only to recognise gzip files whose content is known by extension.
 */
export async function* fileViews(
  path: string,
  name: string,
  place = "",
  depth = 0,
  limits: ViewLimits = DEFAULT_VIEW_LIMITS,
  temp?: string,
): AsyncGenerator<TextView> {
  if (depth > limits.maxDepth) throw new LimitError(`archives nested deeper than ${limits.maxDepth}`);
  const ownTemp = temp === undefined ? await mkdtemp(join(tmpdir(), "deidkit-verify-")) : undefined;
  const workDir = temp ?? ownTemp!;
  try {
    const head = readHead(path);
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      const target = join(workDir, `gunzip-${depth}`);
      await pipeline(createReadStream(path), createGunzip(), capStream(limits.maxInflatedBytes, "a gzip file"), createWriteStream(target));
      yield* fileViews(target, name.replace(/\.gz$/i, ""), `${place}gunzip > `, depth + 1, limits, workDir);
      await rm(target, { force: true });
      return;
    }
    if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) {
      yield* zipViews(path, place, depth, limits, workDir);
      return;
    }
    if (looksLikeDicom(head)) {
      try {
        yield* dicomViews(path, place);
      } catch {
        // Not parseable as DICOM after all: its raw bytes are searched below.
      }
    }
    if (head.length >= 4 && head.toString("latin1", 0, 4) === "PAR1") yield* parquetViews(path, place);
    yield* rawViews(path, `${place}bytes`);
  } finally {
    if (ownTemp) await rm(ownTemp, { recursive: true, force: true });
  }
}
