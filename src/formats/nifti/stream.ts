/**
 * A transform that rewrites the start of a NIfTI byte stream and passes the
 * voxel data through untouched. Only the bytes before vox_offset are held in
 * memory (at most maxHeaderRegionBytes), so memory does not grow with the
 * size of the image.
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

export class NiftiRewriter extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private header: NiftiHeader | undefined;
  private passing = false;
  private total = 0;
  /** What the header rewrite did; set once the voxel data starts. */
  result: RegionResult | undefined;

  constructor(
    private readonly cleaner: TextCleaner,
    private readonly limits: NiftiLimits,
    private readonly streamCapName: string,
  ) {
    super();
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
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    try {
      this.tryRewrite();
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

  /** Rewrites the header region once all of it has arrived. */
  private tryRewrite(): void {
    if (!this.header) {
      const start = this.pendingBytes >= 4 ? detectStart(this.joined()) : undefined;
      if (this.pendingBytes >= 4 && !start) throw invalid("the first four bytes are not a NIfTI sizeof_hdr (348 or 540)");
      if (!start || this.pendingBytes < start.layout.headerSize) return;
      this.header = parseHeader(this.joined());
      if (this.header.voxOffset > this.limits.maxHeaderRegionBytes) {
        throw new LimitError(
          `NIfTI vox_offset is above ${this.limits.maxHeaderRegionBytes} bytes (maxHeaderRegionBytes), so its extensions are too large`,
          { hint: "leave the file out of the input, or remove its extensions with a NIfTI tool" },
        );
      }
    }
    if (this.pendingBytes < this.header.voxOffset) return;

    const buffered = this.joined();
    this.pending = [];
    this.pendingBytes = 0;
    const region = buffered.subarray(0, this.header.voxOffset);
    this.result = rewriteHeaderRegion(region, this.header, this.cleaner, this.limits);
    this.passing = true;
    this.push(this.result.bytes);
    if (buffered.length > region.length) this.push(buffered.subarray(region.length));
  }

  private joined(): Buffer {
    if (this.pending.length > 1) this.pending = [Buffer.concat(this.pending)];
    return this.pending[0] ?? Buffer.alloc(0);
  }
}
