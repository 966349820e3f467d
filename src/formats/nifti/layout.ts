/**
 * The fixed-size NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers: where
 * their text fields and vox_offset sit, how the version and byte order are
 * recognised, and which headers deidkit rejects. The offsets match the header
 * dtypes of nibabel 5.0 (Nifti1Header, Nifti2Header).
 */
import { QuarantineReason } from "../../deid/apply.js";

export interface TextField {
  name: string;
  offset: number;
  length: number;
}

export interface NiftiLayout {
  version: 1 | 2;
  /** sizeof_hdr: the value of the first int32 and the size of the header. */
  headerSize: 348 | 540;
  magicOffset: number;
  voxOffsetOffset: number;
  /**
   * Character fields that may carry free text. The unused Analyze fields
   * (data_type, db_name, unused_str) are included because writers are free
   * to put anything there.
   */
  textFields: readonly TextField[];
}

export const NIFTI1_LAYOUT: NiftiLayout = {
  version: 1,
  headerSize: 348,
  magicOffset: 344,
  voxOffsetOffset: 108,
  textFields: [
    { name: "data_type", offset: 4, length: 10 },
    { name: "db_name", offset: 14, length: 18 },
    { name: "descrip", offset: 148, length: 80 },
    { name: "aux_file", offset: 228, length: 24 },
    { name: "intent_name", offset: 328, length: 16 },
  ],
};

export const NIFTI2_LAYOUT: NiftiLayout = {
  version: 2,
  headerSize: 540,
  magicOffset: 4,
  voxOffsetOffset: 168,
  textFields: [
    { name: "descrip", offset: 240, length: 80 },
    { name: "aux_file", offset: 320, length: 24 },
    { name: "intent_name", offset: 508, length: 16 },
    { name: "unused_str", offset: 525, length: 15 },
  ],
};

/** Four bytes of "extension" flags follow the header; extensions (if any) come after them. */
export const EXTENDER_BYTES = 4;

const NIFTI1_SINGLE_MAGIC = Buffer.from("n+1\0", "latin1");
const NIFTI1_PAIR_MAGIC = Buffer.from("ni1\0", "latin1");
/** NIfTI-2 adds "\r\n\x1a\n" so that a text-mode transfer that damaged the file is noticed. */
const NIFTI2_SINGLE_MAGIC = Buffer.from("n+2\0\r\n\x1a\n", "latin1");
const NIFTI2_PAIR_MAGIC = Buffer.from("ni2\0\r\n\x1a\n", "latin1");

export interface NiftiStart {
  layout: NiftiLayout;
  littleEndian: boolean;
}

/** Recognises the version and byte order from sizeof_hdr, the first four bytes. */
export function detectStart(bytes: Buffer): NiftiStart | undefined {
  if (bytes.length < 4) return undefined;
  const little = bytes.readInt32LE(0);
  const big = bytes.readInt32BE(0);
  if (little === 348) return { layout: NIFTI1_LAYOUT, littleEndian: true };
  if (big === 348) return { layout: NIFTI1_LAYOUT, littleEndian: false };
  if (little === 540) return { layout: NIFTI2_LAYOUT, littleEndian: true };
  if (big === 540) return { layout: NIFTI2_LAYOUT, littleEndian: false };
  return undefined;
}

/**
 * True when the first bytes of a file are those of a NIfTI or Analyze
 * header. The run passes only the first 256 bytes, which hold the NIfTI-2
 * magic but not the NIfTI-1 one (at byte 344), so NIfTI-1 is recognised by
 * sizeof_hdr and a dim[0] of 1 to 7.
 */
export function looksLikeNiftiHeader(head: Buffer): boolean {
  const start = detectStart(head);
  if (!start) return false;
  if (start.layout.version === 2) {
    if (head.length < 12) return false;
    const magic = head.subarray(4, 12);
    return magic.equals(NIFTI2_SINGLE_MAGIC) || magic.equals(NIFTI2_PAIR_MAGIC);
  }
  if (head.length < 42) return false;
  const dimCount = start.littleEndian ? head.readInt16LE(40) : head.readInt16BE(40);
  return dimCount >= 1 && dimCount <= 7;
}

export interface NiftiHeader extends NiftiStart {
  /** Byte offset of the voxel data: the header, the extender and the extensions come before it. */
  voxOffset: number;
}

/**
 * Parses the fixed header of a single-file NIfTI image (.nii). Throws
 * QuarantineReason for Analyze 7.5 headers, for .hdr/.img pairs and for
 * headers that cannot be read with confidence.
 */
export function parseHeader(header: Buffer): NiftiHeader {
  const start = detectStart(header);
  if (!start) throw invalid("the first four bytes are not a NIfTI sizeof_hdr (348 or 540)");
  const { layout, littleEndian } = start;
  if (header.length < layout.headerSize) throw invalid("the file ends inside the NIfTI header");

  const magicLength = layout.version === 1 ? 4 : 8;
  const magic = header.subarray(layout.magicOffset, layout.magicOffset + magicLength);
  if (magic.equals(NIFTI1_PAIR_MAGIC) || magic.equals(NIFTI2_PAIR_MAGIC)) {
    throw new QuarantineReason(
      "NIFTI_PAIR_UNSUPPORTED",
      "NIfTI header of a .hdr/.img pair: deidkit de-identifies single-file NIfTI (.nii, .nii.gz) only; convert the pair to .nii first",
    );
  }
  const single = layout.version === 1 ? NIFTI1_SINGLE_MAGIC : NIFTI2_SINGLE_MAGIC;
  if (!magic.equals(single)) {
    if (layout.version === 1) {
      throw new QuarantineReason(
        "ANALYZE_UNSUPPORTED",
        "Analyze 7.5 header (sizeof_hdr 348 without a NIfTI magic): deidkit does not de-identify Analyze files; convert them to NIfTI (.nii) first",
      );
    }
    throw invalid("the NIfTI-2 magic is missing or damaged");
  }

  const minimum = layout.headerSize + EXTENDER_BYTES;
  let voxOffset: number;
  if (layout.version === 1) {
    const value = littleEndian ? header.readFloatLE(layout.voxOffsetOffset) : header.readFloatBE(layout.voxOffsetOffset);
    if (!Number.isInteger(value)) throw invalid("vox_offset is not a whole number");
    voxOffset = value;
  } else {
    const value = littleEndian
      ? header.readBigInt64LE(layout.voxOffsetOffset)
      : header.readBigInt64BE(layout.voxOffsetOffset);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid("vox_offset is out of range");
    voxOffset = Number(value);
  }
  if (voxOffset < minimum) throw invalid(`vox_offset is below ${minimum}, where the voxel data of a .nii file can start at the earliest`);
  return { layout, littleEndian, voxOffset };
}

/** Writes vox_offset into a copy of the header in its own type and byte order. */
export function writeVoxOffset(header: Buffer, start: NiftiStart, voxOffset: number): void {
  const { layout, littleEndian } = start;
  if (layout.version === 1) {
    if (littleEndian) header.writeFloatLE(voxOffset, layout.voxOffsetOffset);
    else header.writeFloatBE(voxOffset, layout.voxOffsetOffset);
    return;
  }
  if (littleEndian) header.writeBigInt64LE(BigInt(voxOffset), layout.voxOffsetOffset);
  else header.writeBigInt64BE(BigInt(voxOffset), layout.voxOffsetOffset);
}

export function invalid(detail: string): QuarantineReason {
  return new QuarantineReason("NIFTI_INVALID", `invalid NIfTI file: ${detail}`);
}
