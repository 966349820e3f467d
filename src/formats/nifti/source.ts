/** Opening a .nii or .nii.gz input as a stream of uncompressed bytes. */
import { closeSync, createReadStream, readSync, type ReadStream } from "node:fs";
import { createGunzip } from "node:zlib";

import { QuarantineReason } from "../../deid/apply.js";
import { openRegularFile } from "../../dicom/source.js";
import { invalid } from "./layout.js";
import { HeaderRegionCollector, type HeaderRegion, type NiftiLimits } from "./stream.js";

export function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** True when the file starts with the gzip magic, regardless of its name. */
export function isGzipFile(path: string): boolean {
  const fd = openRegularFile(path);
  try {
    const head = Buffer.alloc(2);
    return isGzip(head.subarray(0, readSync(fd, head, 0, 2, 0)));
  } finally {
    closeSync(fd);
  }
}

export function openInput(path: string): ReadStream {
  return createReadStream("", { fd: openRegularFile(path), highWaterMark: 1 << 16 });
}

/** Turns zlib's Z_* failures (a damaged or cut-off gzip stream) into a quarantine reason. */
export function asGzipProblem(error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === "string" && code.startsWith("Z_")) {
    return new QuarantineReason("NIFTI_GZIP_INVALID", "the gzip stream of the NIfTI file is damaged or cut off");
  }
  return error;
}

/**
 * Reads the bytes before vox_offset, inflating a .nii.gz only as far as
 * needed. The streams are destroyed as soon as the region is complete.
 */
export async function readHeaderRegion(path: string, limits: NiftiLimits): Promise<HeaderRegion> {
  const collector = new HeaderRegionCollector(limits);
  const input = openInput(path);
  const gunzip = isGzipFile(path) ? createGunzip() : undefined;
  if (gunzip) input.on("error", (error) => gunzip.destroy(error));
  const source = gunzip ? input.pipe(gunzip) : input;
  try {
    for await (const chunk of source) {
      const found = collector.add(chunk as Buffer);
      if (found) return found;
    }
  } catch (error) {
    throw asGzipProblem(error);
  } finally {
    input.destroy();
    gunzip?.destroy();
  }
  throw invalid("the file ends before the voxel data starts");
}
