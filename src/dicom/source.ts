import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

import { DeidError } from "../errors.js";

/** Random-access bytes that the parser reads synchronously. */
export interface ByteSource {
  readonly size: number;
  /** Returns exactly `length` bytes at `offset`; the caller checks bounds against `size`. */
  read(offset: number, length: number): Buffer;
  /** Copies a range into `target` and returns the number of bytes copied. */
  readInto(offset: number, target: Buffer, length: number): number;
  close(): void;
}

/** First read of a file: enough for the header of most images without reading their pixel data. */
const FIRST_WINDOW_SIZE = 64 * 1024;
/** Window after a miss: headers larger than the first window (structure sets, plans) are read in these steps. */
const WINDOW_SIZE = 1 << 20;

/** A window buffer left by a closed FileSource, taken by the next one so that each file does not allocate its own. */
let spareBuffer: Buffer | undefined;

/**
 * Opens a file for reading only if it is still a regular file: O_NOFOLLOW
 * rejects a file swapped for a symbolic link after the tree walk (ELOOP),
 * and O_NONBLOCK keeps a file swapped for a FIFO from blocking the open.
 */
export function openRegularFile(path: string): number {
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new DeidError("IO", "not a regular file any more: it changed during the run", {
      hint: "run again once the input tree no longer changes",
    });
  }
  return fd;
}

/**
 * A file read through a window: 64 KiB at first, then 1 MiB, so that parsing
 * many small header elements costs one system call per window, while a
 * small image's pixel data, and any bulk value, is never loaded unless asked
 * for. The window buffer is overwritten by later reads and passed on to
 * the next FileSource on close, so callers must copy what they keep from
 * `read`.
 */
export class FileSource implements ByteSource {
  readonly size: number;
  private readonly fd: number;
  private buffer: Buffer | undefined;
  private windowReads = 0;
  private window: Buffer = Buffer.alloc(0);
  private windowStart = 0;
  private closed = false;

  /** Opens `path`, or takes over `fd` (closed by `close`) when one is given. */
  constructor(
    readonly path: string,
    fd?: number,
  ) {
    this.fd = fd ?? openRegularFile(path);
    this.size = fstatSync(this.fd).size;
  }

  read(offset: number, length: number): Buffer {
    const windowEnd = this.windowStart + this.window.length;
    if (offset >= this.windowStart && offset + length <= windowEnd) {
      return this.window.subarray(offset - this.windowStart, offset - this.windowStart + length);
    }
    if (length > WINDOW_SIZE / 2) {
      const target = Buffer.allocUnsafe(length);
      this.readFully(offset, target, length);
      return target;
    }
    const windowSize = this.windowReads++ === 0 ? FIRST_WINDOW_SIZE : WINDOW_SIZE;
    const size = Math.max(Math.min(windowSize, this.size - offset), length);
    if (!this.buffer && spareBuffer) {
      this.buffer = spareBuffer;
      spareBuffer = undefined;
    }
    if (!this.buffer || this.buffer.length < size) this.buffer = Buffer.allocUnsafe(Math.max(size, windowSize));
    const count = this.readFully(offset, this.buffer, size);
    this.window = this.buffer.subarray(0, count);
    this.windowStart = offset;
    return this.buffer.subarray(0, length);
  }

  readInto(offset: number, target: Buffer, length: number): number {
    return this.readFully(offset, target, length);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.buffer && (!spareBuffer || spareBuffer.length < this.buffer.length)) spareBuffer = this.buffer;
    this.buffer = undefined;
    this.window = Buffer.alloc(0);
    closeSync(this.fd);
  }

  private readFully(offset: number, target: Buffer, length: number): number {
    let done = 0;
    while (done < length) {
      const count = readSync(this.fd, target, done, length - done, offset + done);
      if (count === 0) break;
      done += count;
    }
    return done;
  }
}

/** Bytes already in memory (small test inputs and decoded fragments). */
export class BufferSource implements ByteSource {
  readonly size: number;

  constructor(private readonly buffer: Buffer) {
    this.size = buffer.length;
  }

  read(offset: number, length: number): Buffer {
    return this.buffer.subarray(offset, offset + length);
  }

  readInto(offset: number, target: Buffer, length: number): number {
    return this.buffer.copy(target, 0, offset, offset + length);
  }

  close(): void {}
}
