/**
 * Pass 1 for NIfTI. A DICOM header extension (ecode 2) carries the data set
 * the image was converted from, so its identifiers are learnt with the DICOM
 * rules. The run then finds the same names and IDs in descrip, in comment
 * extensions and in other files. Pass 2 removes the extension itself.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { QuarantineReason } from "../../deid/apply.js";
import { isDeidError, LimitError } from "../../errors.js";
import type { LearnContext } from "../types.js";
import { listExtensions } from "./header-region.js";
import { readHeaderRegion } from "./source.js";
import type { NiftiLimits } from "./stream.js";

const DICOM_EXTENSION_CODE = 2;

/**
 * Returns the lengths at which the data set may end. Writers pad an
 * extension to a multiple of 16 with NULs, which a DICOM parser would read
 * as a (0000,0000) element, while the data set itself may end in NULs (a
 * padded UI value, a sequence delimiter). Data sets have an even length, so
 * the candidates run from the content without trailing NULs, rounded up to
 * even, to the whole content.
 */
function candidateLengths(content: Buffer): number[] {
  let end = content.length;
  while (end > 0 && content[end - 1] === 0) end--;
  const lengths: number[] = [];
  for (let length = end + (end % 2); length <= content.length; length += 2) lengths.push(length);
  return lengths;
}

/**
 * Learns one embedded data set. Each candidate length is tried until the
 * DICOM reader accepts one, because a parse that fails adds no identifier.
 * Throws QuarantineReason when none is accepted, since identifiers that
 * cannot be learnt might still be written in the image's text fields.
 */
async function learnDataset(content: Buffer, folder: string, name: string, context: LearnContext): Promise<void> {
  const path = join(folder, "extension.dcm");
  for (const length of candidateLengths(content)) {
    await writeFile(path, content.subarray(0, length), { mode: 0o600 });
    try {
      await context.learnNested(path, name);
      return;
    } catch (error) {
      if (error instanceof LimitError) throw error;
      if (!(error instanceof QuarantineReason) && !isDeidError(error)) throw error;
    }
  }
  throw new QuarantineReason(
    "NIFTI_DICOM_EXTENSION_INVALID",
    "the DICOM header extension (ecode 2) of the NIfTI file is not a data set deidkit can read, so its identifiers cannot be learnt; remove the extension with a NIfTI tool and run again",
  );
}

export async function learnNifti(path: string, context: LearnContext, limits: NiftiLimits): Promise<void> {
  const { header, region } = await readHeaderRegion(path, limits);
  const datasets = listExtensions(region, header, limits).filter((extension) => extension.code === DICOM_EXTENSION_CODE);
  if (datasets.length === 0) return;

  // The extracted data sets contain identifiers, so they go to a private folder that is always removed.
  const folder = await mkdtemp(join(context.scratchParent ?? tmpdir(), "deidkit-nifti-"));
  try {
    for (const [index, extension] of datasets.entries()) {
      const content = extension.raw.subarray(8);
      if (content.every((byte) => byte === 0)) continue;
      await learnDataset(content, folder, `${context.relativePath}/dicom-extension-${index + 1}.dcm`, context);
    }
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}
