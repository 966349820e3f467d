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

const WINDOW_SIZE = 1 << 20;

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
 * A file read through a 1 MiB window, so that parsing many small header
 * elements costs one system call per window, while bulk values are never
 * loaded unless asked for.
 */
export class FileSource implements ByteSource {
  readonly size: number;
  private readonly fd: number;
  private window = Buffer.alloc(0);
  private windowStart = 0;
  private closed = false;

  constructor(readonly path: string) {
    this.fd = openRegularFile(path);
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
    const size = Math.min(WINDOW_SIZE, this.size - offset);
    const window = Buffer.allocUnsafe(Math.max(size, length));
    this.readFully(offset, window, window.length);
    this.window = window;
    this.windowStart = offset;
    return window.subarray(0, length);
  }

  readInto(offset: number, target: Buffer, length: number): number {
    return this.readFully(offset, target, length);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
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
