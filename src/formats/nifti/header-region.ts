/**
 * Rewrites the bytes before the voxel data of a .nii file: the fixed header,
 * the four extender bytes and the header extensions. Text fields and text
 * extensions are cleaned, every other extension is removed, and everything
 * else in the fixed header is kept byte for byte.
 */
import { isUtf8 } from "node:buffer";

import type { TextCleaner } from "../../deid/cleaner.js";
import { QuarantineReason } from "../../deid/apply.js";
import { LimitError } from "../../errors.js";
import { EXTENDER_BYTES, writeVoxOffset, type NiftiHeader, type TextField } from "./layout.js";

/**
 * Extension codes whose content is text (registered in nifti1.h of the
 * NIfTI C library): AFNI attributes (XML), comment, XCEDE (XML), Caret (XML),
 * CIFTI-2 (XML) and NIfTI-MRS (JSON). Their text is cleaned. Every other
 * code is removed, DICOM (2) included, because deidkit does not parse
 * their content.
 *
 * NOTE: XML and JSON are cleaned as plain text, so only identifiers known to
 * the run are replaced. A value under a key such as PatientName that no
 * other file taught stays, and an XML entity such as &apos; hides a name.
 */
export const TEXT_EXTENSION_CODES: ReadonlySet<number> = new Set([4, 6, 8, 30, 32, 44]);

export interface RegionLimits {
  maxExtensions: number;
}

export interface RegionResult {
  /** New bytes before the voxel data. Their length is the new vox_offset. */
  bytes: Buffer;
  /** Number of text fields and text extensions that had identifiers replaced. */
  fieldsCleaned: number;
  /** Number of identifiers replaced. */
  replacements: number;
  extensionsRemoved: number;
  /** True when non-zero bytes between the last extension and vox_offset were dropped. */
  paddingCleared: boolean;
}

function alignTo16(size: number): number {
  return Math.ceil(size / 16) * 16;
}

function countReplacements(replaced: Record<string, number | undefined>): number {
  let total = 0;
  for (const count of Object.values(replaced)) total += count ?? 0;
  return total;
}

/** C0 control characters other than tab, line feed and carriage return do not occur in text. */
const CONTROL_CHARACTERS = /[\x00-\x08\x0b\x0c\x0e-\x1f]/;

interface CleanedText {
  text: string;
  encoding: BufferEncoding;
  replacements: number;
}

/**
 * Cleans text stored as bytes: UTF-8 when the bytes are valid UTF-8,
 * otherwise Latin-1, which maps every byte. Returns undefined when no
 * identifier was found, so the caller keeps the original bytes.
 */
function cleanTextBytes(bytes: Buffer, cleaner: TextCleaner): CleanedText | undefined {
  const encoding: BufferEncoding = isUtf8(bytes) ? "utf8" : "latin1";
  const result = cleaner.clean(bytes.toString(encoding));
  const replacements = countReplacements(result.replaced);
  if (replacements === 0) return undefined;
  return { text: result.text, encoding, replacements };
}

/** Characters after which a cut leaves only whole words. */
const WORD_END = /[\s_,;^/\-\0]/;
const PARTIAL_WORD = /[^\s_,;^/\0]+$/;

/**
 * Encodes cleaned text for a field of `length` bytes. Trailing NULs are
 * dropped, since the field is padded again. Longer text is cut without
 * splitting a UTF-8 character and without keeping part of a word, because
 * half a pseudonym would read as a different, wrong pseudonym.
 */
function fitText(cleaned: CleanedText, length: number): Buffer {
  const { encoding } = cleaned;
  const encoded = Buffer.from(cleaned.text.replace(/\0+$/, ""), encoding);
  if (encoded.length <= length) return encoded;
  let end = length;
  if (encoding === "utf8") {
    while (end > 0 && (encoded[end] & 0xc0) === 0x80) end--;
  }
  const cut = encoded.subarray(0, end).toString(encoding);
  const next = encoded.subarray(end).toString(encoding).charAt(0);
  const whole = WORD_END.test(next) ? cut : cut.replace(PARTIAL_WORD, "");
  return Buffer.from((whole.trim().length > 0 ? whole : cut).trimEnd(), encoding);
}

/**
 * Cleans one fixed-size character field in place. The whole field is
 * cleaned, bytes after the first NUL included, because readers that stop at
 * the NUL are not the only readers. A longer result is cut, a shorter one
 * padded with NULs, so the header keeps its size.
 */
function cleanField(header: Buffer, field: TextField, cleaner: TextCleaner): number {
  const bytes = header.subarray(field.offset, field.offset + field.length);
  if (bytes.every((byte) => byte === 0)) return 0;
  const cleaned = cleanTextBytes(bytes, cleaner);
  if (!cleaned) return 0;
  const fitted = fitText(cleaned, field.length);
  bytes.fill(0);
  fitted.copy(bytes);
  return cleaned.replacements;
}

export interface NiftiExtension {
  code: number;
  /** The whole extension as stored: esize, ecode and content. */
  raw: Buffer;
}

/**
 * Splits the extension area into extensions. As in nibabel 5.0, reading
 * continues while at least 16 bytes remain before vox_offset, so a shorter
 * tail is padding. An area of zeros after the extender is padding too.
 */
function readExtensions(area: Buffer, header: NiftiHeader, limits: RegionLimits): { extensions: NiftiExtension[]; padding: Buffer } {
  const extensions: NiftiExtension[] = [];
  let position = 0;
  while (area.length - position >= 16) {
    const size = header.littleEndian ? area.readInt32LE(position) : area.readInt32BE(position);
    const code = header.littleEndian ? area.readInt32LE(position + 4) : area.readInt32BE(position + 4);
    if (size === 0 && area.subarray(position).every((byte) => byte === 0)) break;
    if (size < 16 || size > area.length - position) {
      throw new QuarantineReason(
        "NIFTI_EXTENSION_INVALID",
        "invalid NIfTI header extension: its esize is below 16 or runs past vox_offset",
      );
    }
    if (extensions.length >= limits.maxExtensions) {
      throw new LimitError(`NIfTI header has more than ${limits.maxExtensions} extensions (maxExtensions)`, {
        hint: "leave the file out of the input, or remove its extensions with a NIfTI tool",
      });
    }
    extensions.push({ code, raw: area.subarray(position, position + size) });
    position += size;
  }
  return { extensions, padding: area.subarray(position) };
}

/** Returns the cleaned text extension, or undefined when its content is not text. */
function cleanTextExtension(extension: NiftiExtension, header: NiftiHeader, cleaner: TextCleaner): { raw: Buffer; replacements: number } | undefined {
  let content = extension.raw.subarray(8);
  let end = content.length;
  while (end > 0 && content[end - 1] === 0) end--;
  content = content.subarray(0, end);
  const utf8 = isUtf8(content);
  if (CONTROL_CHARACTERS.test(content.toString(utf8 ? "utf8" : "latin1"))) return undefined;

  const cleaned = cleanTextBytes(content, cleaner);
  if (!cleaned) return { raw: extension.raw, replacements: 0 };
  const text = Buffer.from(cleaned.text, cleaned.encoding);
  const size = alignTo16(8 + text.length);
  const raw = Buffer.alloc(size);
  if (header.littleEndian) {
    raw.writeInt32LE(size, 0);
    raw.writeInt32LE(extension.code, 4);
  } else {
    raw.writeInt32BE(size, 0);
    raw.writeInt32BE(extension.code, 4);
  }
  text.copy(raw, 8);
  return { raw, replacements: cleaned.replacements };
}

/** Returns the extensions of a header region in file order. */
export function listExtensions(region: Buffer, header: NiftiHeader, limits: RegionLimits): NiftiExtension[] {
  const { headerSize } = header.layout;
  if (region[headerSize] === 0) return [];
  return readExtensions(region.subarray(headerSize + EXTENDER_BYTES, header.voxOffset), header, limits).extensions;
}

/**
 * Rewrites `region`, the file's first vox_offset bytes. Returns `region`
 * itself when nothing needs to change, so an image without identifiers is
 * copied byte for byte. Otherwise the extensions that remain follow the
 * header directly and vox_offset becomes the next multiple of 16.
 */
export function rewriteHeaderRegion(region: Buffer, header: NiftiHeader, cleaner: TextCleaner, limits: RegionLimits): RegionResult {
  const { layout } = header;
  const extenderOffset = layout.headerSize;
  const fixed = Buffer.from(region.subarray(0, extenderOffset + EXTENDER_BYTES));

  let replacements = 0;
  let fieldsCleaned = 0;
  for (const field of layout.textFields) {
    const count = cleanField(fixed, field, cleaner);
    replacements += count;
    if (count > 0) fieldsCleaned++;
  }

  const area = region.subarray(extenderOffset + EXTENDER_BYTES, header.voxOffset);
  const hasExtensions = fixed[extenderOffset] !== 0;
  const { extensions, padding } = hasExtensions ? readExtensions(area, header, limits) : { extensions: [], padding: area };

  const kept: Buffer[] = [];
  let extensionsRemoved = 0;
  let extensionsChanged = false;
  for (const extension of extensions) {
    const cleaned = TEXT_EXTENSION_CODES.has(extension.code) ? cleanTextExtension(extension, header, cleaner) : undefined;
    if (!cleaned) {
      extensionsRemoved++;
      extensionsChanged = true;
      continue;
    }
    if (cleaned.replacements > 0) {
      replacements += cleaned.replacements;
      fieldsCleaned++;
      extensionsChanged = true;
    }
    kept.push(cleaned.raw);
  }
  // Bytes between the last extension and vox_offset belong to no field, so any content there is dropped.
  const paddingIsZero = padding.every((byte) => byte === 0);

  const result = { fieldsCleaned, replacements, extensionsRemoved, paddingCleared: !paddingIsZero };
  if (fieldsCleaned === 0 && !extensionsChanged && paddingIsZero) {
    return { bytes: region, ...result };
  }
  if (!extensionsChanged && paddingIsZero) {
    // Only text fields changed: the extensions and vox_offset stay as they were.
    return { bytes: Buffer.concat([fixed, area]), ...result };
  }

  fixed[extenderOffset] = kept.length > 0 ? 1 : 0;
  const used = fixed.length + kept.reduce((sum, raw) => sum + raw.length, 0);
  const voxOffset = alignTo16(used);
  writeVoxOffset(fixed, header, voxOffset);
  return { bytes: Buffer.concat([fixed, ...kept, Buffer.alloc(voxOffset - used)]), ...result };
}
