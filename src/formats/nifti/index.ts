/**
 * NIfTI-1 and NIfTI-2 images (.nii, and .nii.gz compressed with gzip), in
 * either byte order. The header's text fields and text extensions are
 * cleaned, other extensions are removed, and the voxel data is streamed
 * through unchanged. A .nii.gz is written as a new gzip stream, so the name
 * and time stored in the original gzip header are not carried over.
 * Identifiers in a DICOM extension are learnt in pass 1. Analyze 7.5
 * headers and .hdr/.img pairs are left out with their own reason.
 */
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { constants as zlibConstants, createGunzip, createGzip, gunzipSync } from "node:zlib";

import type { FormatHandler, FormatWriteResult, WriteContext } from "../types.js";
import { looksLikeNiftiHeader } from "./layout.js";
import { learnNifti } from "./learn.js";
import { asGzipProblem, isGzip, isGzipFile, openInput } from "./source.js";
import { NiftiRewriter, type NiftiLimits } from "./stream.js";

export { TEXT_EXTENSION_CODES } from "./header-region.js";
export type { NiftiLimits } from "./stream.js";

export const DEFAULT_NIFTI_LIMITS: NiftiLimits = {
  // CIFTI-2 XML extensions of dense surface files reach a few MiB; 64 MiB leaves room.
  maxHeaderRegionBytes: 64 * 1024 * 1024,
  maxExtensions: 1024,
  // NOTE: a guess at the largest genuine image (a long 4D series); it stops a gzip bomb from running for hours.
  maxStreamBytes: 64 * 1024 ** 3,
};

const NIFTI_NAME = /\.nii(\.gz)?$/i;

/** Inflates as much of a gzip prefix as it holds; undefined when it is not gzip or is damaged. */
function gunzipPrefix(head: Buffer): Buffer | undefined {
  try {
    return gunzipSync(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: 1 << 20 });
  } catch {
    return undefined;
  }
}

async function writeNifti(path: string, targetPath: string, context: WriteContext, limits: NiftiLimits): Promise<FormatWriteResult> {
  const compressed = isGzipFile(path);
  const rewriter = new NiftiRewriter(context.cleaner, limits, compressed ? "maxStreamBytes, counted after gunzip" : "maxStreamBytes");
  const input = openInput(path);
  const output = createWriteStream(targetPath, { flags: "wx", mode: 0o644 });
  try {
    // Fail on an existing target before reading anything.
    await once(output, "open");
    if (compressed) {
      await pipeline(input, createGunzip(), rewriter, createGzip(), output);
    } else {
      await pipeline(input, rewriter, output);
    }
  } catch (error) {
    input.destroy();
    output.destroy();
    throw asGzipProblem(error);
  }
  const result = rewriter.result;
  if (!result) throw new Error("NIfTI header rewrite did not run");
  return { replacements: result.replacements + result.extensionsRemoved + (result.paddingCleared ? 1 : 0) };
}

/** Builds the NIfTI handler with the given caps; `niftiFormat` uses the defaults. */
export function createNiftiFormat(limits: Partial<NiftiLimits> = {}): FormatHandler {
  const effective: NiftiLimits = { ...DEFAULT_NIFTI_LIMITS, ...limits };
  return {
    name: "nifti",
    matches(relativePath, head) {
      if (NIFTI_NAME.test(relativePath)) return true;
      if (looksLikeNiftiHeader(head)) return true;
      if (!isGzip(head)) return false;
      const inflated = gunzipPrefix(head);
      return inflated !== undefined && looksLikeNiftiHeader(inflated);
    },
    learn: (path, context) => learnNifti(path, context, effective),
    write: (path, targetPath, context) => writeNifti(path, targetPath, context, effective),
  };
}

export const niftiFormat: FormatHandler = createNiftiFormat();
