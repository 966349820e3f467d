/**
 * Opening DICOM files for parsing and writing serialised parts to disk,
 * including the deflated transfer syntax, whose data set is inflated to a
 * temporary file so that memory stays flat.
 */
import { once } from "node:events";
import { closeSync, createReadStream, createWriteStream, openSync, rmSync, writeSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDeflateRaw, createInflateRaw } from "node:zlib";

import { DicomParseError, LimitError } from "../errors.js";
import type { BulkRef } from "./dataset.js";
import { DEFAULT_READ_LIMITS, parseDataset, parseDicom, type ParsedDicom, type ReadLimits } from "./reader.js";
import { FileSource, type ByteSource } from "./source.js";
import type { Part } from "./writer.js";

/**
 * Bulk values are copied through a buffer of this size, small enough to stay
 * in the CPU cache between the read and the write. Moving from a new 4 MiB
 * buffer per file to this shared one halved the system time of a
 * single-thread benchmark run (docs/performance.md); the two effects were
 * not measured apart.
 */
const COPY_CHUNK = 1024 * 1024;

/** The copy buffer of emitParts, which is synchronous, so one buffer serves every call in a thread. */
let sharedScratch: Buffer | undefined;

export interface OpenedDicom extends ParsedDicom {
  close(): void;
}

export interface OpenOptions {
  limits?: ReadLimits;
  /** Cap on the inflated size of a deflated data set (bytes). */
  maxInflatedBytes?: number;
}

/**
 * Parses a DICOM file; the caller must call `close()` when done with its
 * bulk values. A caller that has already opened the file (to look at its
 * first bytes) passes its FileSource, which is then closed with the rest.
 */
export async function openDicom(path: string, options: OpenOptions = {}, source = new FileSource(path)): Promise<OpenedDicom> {
  const limits = options.limits ?? DEFAULT_READ_LIMITS;
  const sources: ByteSource[] = [source];
  let inflatedFd: number | undefined;
  const close = (): void => {
    for (const opened of sources) opened.close();
    // Before the inflated FileSource exists, its descriptor is closed here; after, the source closes it.
    if (inflatedFd !== undefined && sources.length === 1) {
      try {
        closeSync(inflatedFd);
      } catch {
        // A write stream that failed may have closed the descriptor already.
      }
    }
    inflatedFd = undefined;
  };
  try {
    const parsed = parseDicom(source, limits);
    if (!parsed.transferSyntax.deflated) return { ...parsed, close };

    // The inflated data set contains the original identifiers in plain text. Its
    // file is unlinked as soon as it is created, so it disappears with the
    // descriptor even if the process is killed.
    const tempDir = await mkdtemp(join(tmpdir(), "deidkit-inflate-"));
    const inflatedPath = join(tempDir, "dataset");
    try {
      inflatedFd = openSync(inflatedPath, "wx+", 0o600);
    } finally {
      rmSync(tempDir, { recursive: true, force: true });
    }
    await inflateRange(path, parsed.datasetOffset, inflatedFd, options.maxInflatedBytes ?? 4 * 1024 ** 3);
    const inflated = new FileSource(inflatedPath, inflatedFd);
    sources.push(inflated);
    const dataset = parseDataset(inflated, { littleEndian: true, explicitVr: true }, limits);
    return { ...parsed, dataset, close };
  } catch (error) {
    close();
    throw error;
  }
}

async function inflateRange(path: string, start: number, targetFd: number, maxBytes: number): Promise<void> {
  let total = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      total += chunk.length;
      if (total > maxBytes) {
        callback(new LimitError(`deflated data set inflates to more than ${maxBytes} bytes`, {
          hint: "raise --max-inflated-bytes if the file is genuine",
        }));
        return;
      }
      callback(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(path, { start }), createInflateRaw(), cap, createWriteStream("", { fd: targetFd, autoClose: false }));
  } catch (error) {
    // zlib reports a damaged or cut-off stream with a Z_* code. That is
    // invalid input, not an I/O failure.
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === "string" && code.startsWith("Z_")) {
      throw new DicomParseError(`inflating the deflated data set failed (${code})`, start, {
        hint: "the file is damaged or truncated; it is left out of the output",
        cause: error,
      });
    }
    throw error;
  }
}

function* partChunks(parts: Part[]): Generator<Buffer> {
  let scratch: Buffer | undefined;
  for (const part of parts) {
    if (Buffer.isBuffer(part)) {
      yield part;
      continue;
    }
    scratch ??= Buffer.allocUnsafe(COPY_CHUNK);
    yield* bulkChunks(part, scratch);
  }
}

function* bulkChunks(bulk: BulkRef, scratch: Buffer): Generator<Buffer> {
  let done = 0;
  while (done < bulk.length) {
    const size = Math.min(scratch.length, bulk.length - done);
    const count = bulk.source.readInto(bulk.offset + done, scratch, size);
    if (count !== size) throw new Error("input file shrank while it was being copied");
    yield scratch.subarray(0, size);
    done += size;
  }
}

/** Writes parts to an open file descriptor, copying bulk values in 1 MiB chunks. */
export function emitParts(parts: Part[], fd: number): number {
  let written = 0;
  for (const part of parts) {
    if (Buffer.isBuffer(part)) {
      writeFully(fd, part);
      written += part.length;
      continue;
    }
    sharedScratch ??= Buffer.allocUnsafe(COPY_CHUNK);
    for (const chunk of bulkChunks(part, sharedScratch)) {
      writeFully(fd, chunk);
      written += chunk.length;
    }
  }
  return written;
}

/** Writes all of `chunk` at the file's current position, however many calls that takes. */
export function writeFully(fd: number, chunk: Buffer): void {
  let offset = 0;
  while (offset < chunk.length) offset += writeSync(fd, chunk, offset, chunk.length - offset);
}

/** Writes the leading parts as they are and the data set parts raw-deflated (PS3.5 A.5). */
export async function emitDeflated(leading: Part[], dataset: Part[], path: string): Promise<void> {
  const output = createWriteStream(path, { flags: "wx", mode: 0o644 });
  for (const chunk of partChunks(leading)) {
    // events.once rejects when "error" comes first, such as EEXIST from the
    // exclusive open, which would otherwise be unhandled while "drain" never fires.
    if (!output.write(Buffer.from(chunk))) await once(output, "drain");
  }
  const chunks = (function* () {
    for (const chunk of partChunks(dataset)) yield Buffer.from(chunk);
  })();
  await pipeline(chunks, createDeflateRaw(), output);
}
