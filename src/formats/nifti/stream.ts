/**
 * Reading and rewriting the start of a NIfTI byte stream. Only the bytes
 * before vox_offset are held in memory (at most maxHeaderRegionBytes), and
 * the voxel data after them passes through untouched, so memory does not
 * grow with the size of the image.
 */
import { Transform, type TransformCallback } from "node:stream";

import type { TextCleaner } from "../../deid/cleaner.js";
import { LimitError } from "../../errors.js";
import { rewriteHeaderRegion, type RegionLimits, type RegionResult } from "./header-region.js";
import { detectStart, invalid, parseHeader, type NiftiHeader } from "./layout.js";

export interface NiftiLimits extends RegionLimits {
  /** Cap on vox_offset, which bounds the header and all its extensions together. */
  maxHeaderRegionBytes: number;
  /** Cap on the bytes the stream carries, checked after gunzip for .nii.gz. */
  maxStreamBytes: number;
}

export interface HeaderRegion {
  header: NiftiHeader;
  /** The first vox_offset bytes: fixed header, extender and extensions. */
  region: Buffer;
  /** Bytes received after the region, the start of the voxel data. */
  rest: Buffer;
}

/** Collects chunks until the fixed header and all bytes before vox_offset have arrived. */
export class HeaderRegionCollector {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private header: NiftiHeader | undefined;

  constructor(private readonly limits: NiftiLimits) {}

  /** Adds a chunk and returns the header region once it is complete. */
  add(chunk: Buffer): HeaderRegion | undefined {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (!this.header) {
      if (this.pendingBytes < 4) return undefined;
      // The fixed header is at most 540 bytes, so joining the chunks until it is complete stays cheap.
      const start = detectStart(this.joined());
      if (!start) throw invalid("the first four bytes are not a NIfTI sizeof_hdr (348 or 540)");
      if (this.pendingBytes < start.layout.headerSize) return undefined;
      this.header = parseHeader(this.joined());
      if (this.header.voxOffset > this.limits.maxHeaderRegionBytes) {
        throw new LimitError(
          `NIfTI vox_offset is above ${this.limits.maxHeaderRegionBytes} bytes (maxHeaderRegionBytes), so its extensions are too large`,
          { hint: "leave the file out of the input, or remove its extensions with a NIfTI tool" },
        );
      }
    }
    if (this.pendingBytes < this.header.voxOffset) return undefined;

    const buffered = this.joined();
    this.pending = [];
    this.pendingBytes = 0;
    return {
      header: this.header,
      region: buffered.subarray(0, this.header.voxOffset),
      rest: buffered.subarray(this.header.voxOffset),
    };
  }

  private joined(): Buffer {
    if (this.pending.length > 1) this.pending = [Buffer.concat(this.pending)];
    return this.pending[0] ?? Buffer.alloc(0);
  }
}

/** A transform that rewrites the header region and passes the voxel data through. */
export class NiftiRewriter extends Transform {
  private readonly collector: HeaderRegionCollector;
  private passing = false;
  private total = 0;
  /** Counts and bytes of the header rewrite, set once the voxel data starts. */
  result: RegionResult | undefined;

  constructor(
    private readonly cleaner: TextCleaner,
    private readonly limits: NiftiLimits,
    private readonly streamCapName: string,
  ) {
    super();
    this.collector = new HeaderRegionCollector(limits);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.total += chunk.length;
    if (this.total > this.limits.maxStreamBytes) {
      callback(new LimitError(`NIfTI image is larger than ${this.limits.maxStreamBytes} bytes (${this.streamCapName})`, {
        hint: "leave the file out of the input if it is not a genuine image",
      }));
      return;
    }
    if (this.passing) {
      callback(null, chunk);
      return;
    }
    try {
      const collected = this.collector.add(chunk);
      if (collected) {
        this.result = rewriteHeaderRegion(collected.region, collected.header, this.cleaner, this.limits);
        this.passing = true;
        this.push(this.result.bytes);
        if (collected.rest.length > 0) this.push(collected.rest);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (!this.passing) {
      callback(invalid("the file ends before the voxel data starts"));
      return;
    }
    callback();
  }
}
