/**
 * Zip archives, the form in which uploads arrive. Every member is extracted
 * to a private temporary folder under a generated name, then learnt and
 * written with the rules for its own kind, DICOM and nested archives
 * included. The de-identified members go into a new archive.
 *
 * Fail closed: the whole archive is quarantined when any member cannot be
 * de-identified, is encrypted, is a link or device, or has an unsafe name
 * (absolute, "..", ".", empty component, drive letter, backslash, control
 * character). Unsafe names are rejected rather than repaired, because an
 * archive crafted to escape its folder is not research data. A member that
 * fails in pass 1 is named by its position, because its name cannot be
 * cleaned before all identifiers are known. In pass 2 it is named by its
 * cleaned name.
 *
 * The new archive is deterministic. Members keep their order, and names
 * are rewritten per path component like the tree's paths. Every date is
 * 1980-01-01 00:00 UTC, the earliest DOS date, so original dates are not
 * kept. Modes are 0644 for files and 0755 for folders, and the method is
 * deflate. Archive and member comments and extra fields are dropped, and
 * so is macOS metadata (`__MACOSX/` and `.DS_Store`), which is no research
 * data and repeats names in binary form.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { closeSync, createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";

import archiver from "archiver";
import yauzl, { type Entry, type ZipFile } from "yauzl";

import { DeidError, LimitError } from "../errors.js";
import { QuarantineReason } from "../deid/apply.js";
import { openRegularFile } from "../dicom/source.js";
import { PathMapper } from "../tree/paths.js";
import { isZipFile } from "./detect.js";
import type { FormatHandler, FormatWriteResult, LearnContext, WriteContext } from "./types.js";

/** Caps on untrusted archive contents. Nested archives count against the caps of the outermost one. */
export interface ZipLimits {
  /** Entries in the archive and all archives nested in it. */
  maxEntries: number;
  /** Uncompressed bytes of one member. */
  maxEntryBytes: number;
  /** Uncompressed bytes of all members, nested archives included. */
  maxTotalBytes: number;
  /** Uncompressed bytes per compressed byte, for members above `ratioExemptBytes`. */
  maxCompressionRatio: number;
  /** Members up to this size may compress better than `maxCompressionRatio`. */
  ratioExemptBytes: number;
  /** Archives inside archives: 1 allows no nested archive. */
  maxDepth: number;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/**
 * NOTE: these defaults are estimates, not measurements. Deflate cannot
 * exceed about 1032:1, so the ratio cap only catches members that are
 * almost entirely one repeated byte. Such members up to 64 MiB (a sparse
 * mask, say) are exempt, because the size caps bound them anyway.
 */
export const DEFAULT_ZIP_LIMITS: Readonly<ZipLimits> = {
  maxEntries: 50_000,
  maxEntryBytes: 4 * GIB,
  maxTotalBytes: 32 * GIB,
  maxCompressionRatio: 200,
  ratioExemptBytes: 64 * MIB,
  maxDepth: 3,
};

const FIXED_DATE = new Date(Date.UTC(1980, 0, 1));
const MIN_LOCAL_HEADER_BYTES = 30;

/** General purpose flag bits: traditional encryption, strong encryption, encrypted central directory. */
const ENCRYPTION_FLAGS = 0x0001 | 0x0040 | 0x2000;
const METHOD_STORED = 0;
const METHOD_DEFLATED = 8;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
/** FILE_ATTRIBUTE_REPARSE_POINT in the MS-DOS attributes: a Windows link. */
const DOS_REPARSE_POINT = 0x400;

const REJECTED_HINT = "the archive is left out of the output; unpack it, check it and pass its files as a folder";

/** The depth and shared budget of the archive being read, seen by archives nested in it. */
interface Nesting {
  depth: number;
  budget: { entries: number; bytes: number };
}

const nesting = new AsyncLocalStorage<Nesting>();

interface Member {
  entry: Entry;
  /** 1-based position in the central directory, used in messages instead of the name. */
  index: number;
  /** The original name, without the trailing "/" of a folder. */
  name: string;
  isDirectory: boolean;
  /** OS metadata that is left out of the output. */
  isSkipped: boolean;
}

function reject(reason: string, message: string): QuarantineReason {
  return new QuarantineReason(reason, message);
}

/** Returns why an entry name could escape the folder it is extracted to, or undefined when it is safe. */
export function unsafeNameReason(name: string): string | undefined {
  if (name.length === 0) return "an empty name";
  if (/[\u0000-\u001f\u007f]/.test(name)) return "a control character";
  if (name.includes("\\")) return "a backslash";
  if (name.startsWith("/")) return "an absolute path";
  if (/^[A-Za-z]:/.test(name)) return "a drive letter";
  const components = (name.endsWith("/") ? name.slice(0, -1) : name).split("/");
  if (components.includes("..")) return 'a ".." component';
  if (components.some((component) => component === "" || component === ".")) return 'an empty or "." component';
  return undefined;
}

function isSpecialFile(entry: Entry, isDirectory: boolean): boolean {
  // The Unix mode is read whatever the host system, because some extractors honour it anyway.
  const fileType = (entry.externalFileAttributes >>> 16) & S_IFMT;
  if (fileType !== 0 && fileType !== S_IFREG && fileType !== S_IFDIR) return true;
  if (fileType === S_IFDIR && !isDirectory) return true;
  return (entry.externalFileAttributes & DOS_REPARSE_POINT) !== 0;
}

function isMacMetadata(name: string): boolean {
  return name.split("/")[0] === "__MACOSX" || name.split("/").at(-1) === ".DS_Store";
}

function checkDeclaredSize(entry: Entry, index: number, limits: ZipLimits): void {
  if (entry.uncompressedSize > limits.maxEntryBytes) {
    throw new LimitError(`archive entry ${index} declares more than the maxEntryBytes cap of ${limits.maxEntryBytes} bytes`, {
      hint: REJECTED_HINT,
    });
  }
  const ratio = entry.uncompressedSize / Math.max(entry.compressedSize, 1);
  if (entry.uncompressedSize > limits.ratioExemptBytes && ratio > limits.maxCompressionRatio) {
    throw new LimitError(
      `archive entry ${index} declares a compression ratio above the maxCompressionRatio cap of ${limits.maxCompressionRatio}`,
      { hint: `${REJECTED_HINT}; such ratios are typical of zip bombs` },
    );
  }
}

/** Checks one central directory record; returns the member or throws the reason to quarantine the archive. */
function inspectEntry(entry: Entry, index: number, limits: ZipLimits): Member {
  if ((entry.generalPurposeBitFlag & ENCRYPTION_FLAGS) !== 0) {
    throw reject("ZIP_ENCRYPTED", `archive entry ${index} is encrypted, so its content cannot be checked`);
  }
  if (entry.compressionMethod !== METHOD_STORED && entry.compressionMethod !== METHOD_DEFLATED) {
    throw reject(
      "ZIP_UNSUPPORTED_COMPRESSION",
      `archive entry ${index} uses compression method ${entry.compressionMethod}; only stored (0) and deflate (8) are read`,
    );
  }
  // strictFileNames keeps backslashes, which unsafeNameReason rejects.
  const rawName = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true);
  const unsafe = unsafeNameReason(rawName);
  if (unsafe) throw reject("ZIP_UNSAFE_ENTRY_NAME", `archive entry ${index} has an unsafe name: it contains ${unsafe}`);
  const isDirectory = rawName.endsWith("/");
  if (isSpecialFile(entry, isDirectory)) {
    throw reject("ZIP_SPECIAL_ENTRY", `archive entry ${index} is a link, device or other special file`);
  }
  if (isDirectory && entry.uncompressedSize > 0) {
    throw reject("ZIP_INVALID", `archive entry ${index} is a folder with content`);
  }
  checkDeclaredSize(entry, index, limits);
  const name = isDirectory ? rawName.slice(0, -1) : rawName;
  return { entry, index, name, isDirectory, isSkipped: isMacMetadata(name) };
}

/** Rejects entries whose data overlap, the trick of zip bombs that reuse one compressed stream. */
function checkNoOverlap(members: readonly Member[]): void {
  const sorted = [...members].sort((a, b) => a.entry.relativeOffsetOfLocalHeader - b.entry.relativeOffsetOfLocalHeader);
  for (let position = 1; position < sorted.length; position++) {
    const previous = sorted[position - 1].entry;
    const end = previous.relativeOffsetOfLocalHeader + MIN_LOCAL_HEADER_BYTES + previous.compressedSize;
    if (sorted[position].entry.relativeOffsetOfLocalHeader < end) {
      throw reject("ZIP_INVALID", "archive entries overlap, as in zip bombs that reuse compressed data");
    }
  }
}

async function readMembers(zipfile: ZipFile, limits: ZipLimits, nest: Nesting): Promise<Member[]> {
  const { budget } = nest;
  if (budget.entries + zipfile.entryCount > limits.maxEntries) {
    throw new LimitError(`the archive has more entries than the maxEntries cap of ${limits.maxEntries}`, {
      hint: `${REJECTED_HINT}, or split it into smaller archives`,
    });
  }
  budget.entries += zipfile.entryCount;
  const members: Member[] = [];
  const names = new Set<string>();
  let declaredBytes = 0;
  for await (const entry of zipfile.eachEntry()) {
    const member = inspectEntry(entry, members.length + 1, limits);
    if (names.has(member.name)) {
      throw reject("ZIP_DUPLICATE_ENTRY", `archive entry ${member.index} repeats the name of an earlier entry`);
    }
    names.add(member.name);
    declaredBytes += entry.uncompressedSize;
    if (budget.bytes + declaredBytes > limits.maxTotalBytes) {
      throw new LimitError(`the archive declares more than the maxTotalBytes cap of ${limits.maxTotalBytes} bytes`, {
        hint: `${REJECTED_HINT}, or split it into smaller archives`,
      });
    }
    members.push(member);
  }
  checkNoOverlap(members);
  return members;
}

/** Returns the byte count at which extraction of `member` stops, and the cap that sets it. */
function inflateCap(member: Member, limits: ZipLimits, budget: Nesting["budget"]): { bytes: number; message: string } {
  const ratioBytes = Math.max(limits.ratioExemptBytes, limits.maxCompressionRatio * member.entry.compressedSize);
  const caps = [
    { bytes: limits.maxEntryBytes, message: `the maxEntryBytes cap of ${limits.maxEntryBytes} bytes` },
    { bytes: limits.maxTotalBytes - budget.bytes, message: `the maxTotalBytes cap of ${limits.maxTotalBytes} bytes` },
    { bytes: ratioBytes, message: `the maxCompressionRatio cap of ${limits.maxCompressionRatio}` },
  ];
  return caps.reduce((lowest, cap) => (cap.bytes < lowest.bytes ? cap : lowest));
}

/** Inflates one member to `targetPath`, counting the bytes as they come. */
async function extractMember(zipfile: ZipFile, member: Member, targetPath: string, limits: ZipLimits, nest: Nesting): Promise<void> {
  const cap = inflateCap(member, limits, nest.budget);
  let count = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      count += chunk.length;
      nest.budget.bytes += chunk.length;
      if (count > cap.bytes) {
        callback(new LimitError(`archive entry ${member.index} inflates beyond ${cap.message}`, { hint: REJECTED_HINT }));
        return;
      }
      callback(null, chunk);
    },
  });
  const stream = await zipfile.openReadStreamPromise(member.entry);
  await pipeline(stream, counter, createWriteStream(targetPath, { flags: "wx", mode: 0o600 }));
}

/** Reports a member's failure as the archive's, naming the member by `label` and keeping its reason code. */
function memberFailure(error: unknown, label: string): Error {
  const prefix = `archive member ${label}`;
  if (error instanceof LimitError) return new LimitError(`${prefix}: ${error.message}`, { hint: error.hint });
  if (error instanceof QuarantineReason) return reject(error.reasonCode, `${prefix} cannot be de-identified: ${error.message}`);
  if (error instanceof DeidError) return reject(error.code, `${prefix} cannot be de-identified: ${error.message}`);
  return reject("INTERNAL", `${prefix} cannot be de-identified: unexpected failure`);
}

/** Turns errors of the zip reader (whose messages may quote entry names) into a fixed reason. */
function archiveFailure(error: unknown): unknown {
  if (error instanceof DeidError || error instanceof QuarantineReason) return error;
  if (typeof (error as NodeJS.ErrnoException)?.code === "string") return error;
  return reject("ZIP_INVALID", "not a readable zip archive, or a member's data does not match its size or checksum");
}

interface OpenArchive {
  zipfile: ZipFile;
  members: Member[];
  /** A private folder (mode 0700) for extracted members, removed afterwards. */
  scratch: string;
  extract(member: Member, targetPath: string): Promise<void>;
}

/** Opens the archive at `path`, checks every entry, then runs `visit` with nested archives one level deeper. */
async function withArchive<T>(path: string, limits: ZipLimits, scratchParent: string | undefined, visit: (archive: OpenArchive) => Promise<T>): Promise<T> {
  const parent = nesting.getStore();
  const nest: Nesting = { depth: (parent?.depth ?? 0) + 1, budget: parent?.budget ?? { entries: 0, bytes: 0 } };
  if (nest.depth > limits.maxDepth) {
    throw new LimitError(`archives are nested deeper than the maxDepth cap of ${limits.maxDepth}`, { hint: REJECTED_HINT });
  }
  const fd = openRegularFile(path);
  let zipfile: ZipFile | undefined;
  let scratch: string | undefined;
  try {
    zipfile = await yauzl.fromFdPromise(fd, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
      strictFileNames: true,
    });
    const members = await readMembers(zipfile, limits, nest);
    scratch = await mkdtemp(join(scratchParent ?? tmpdir(), "deidkit-zip-"));
    await chmod(scratch, 0o700);
    const open = zipfile;
    const archive: OpenArchive = {
      zipfile,
      members,
      scratch,
      extract: (member, targetPath) => extractMember(open, member, targetPath, limits, nest),
    };
    return await nesting.run(nest, () => visit(archive));
  } catch (error) {
    throw archiveFailure(error);
  } finally {
    // Once yauzl has opened the archive, closing it closes `fd` after the last member stream ends.
    if (zipfile) zipfile.close();
    else closeSync(fd);
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

async function learnArchive(path: string, context: LearnContext, limits: ZipLimits): Promise<void> {
  await withArchive(path, limits, context.scratchParent, async ({ members, scratch, extract }) => {
    for (const member of members) {
      if (member.isDirectory || member.isSkipped) continue;
      const extracted = join(scratch, `member-${member.index}`);
      await extract(member, extracted);
      try {
        await context.learnNested(extracted, `${context.relativePath}/${member.name}`);
      } catch (error) {
        // Pass 1 has no cleaner yet, so the member is named by its position.
        throw memberFailure(error, `${member.index}`);
      } finally {
        await rm(extracted, { force: true });
      }
    }
  });
}

/** Appends one entry and waits until archiver has written it, or rejects on its first error. */
async function appendEntry(zip: archiver.Archiver, source: Buffer | Readable, name: string, mode: number, failure: Promise<never>): Promise<void> {
  // The listener is added first, so that an "entry" event emitted during append is not missed.
  const written = once(zip, "entry");
  zip.append(source, { name, date: FIXED_DATE, mode });
  await Promise.race([written, failure]);
}

async function writeArchive(path: string, targetPath: string, context: WriteContext, limits: ZipLimits): Promise<FormatWriteResult> {
  return withArchive(path, limits, context.scratchParent, async ({ members, scratch, extract }) => {
    const mapper = new PathMapper(context.cleaner);
    const output = createWriteStream(targetPath, { flags: "wx", mode: 0o644 });
    const zip = archiver("zip", { zlib: { level: 6 } });
    // archiver's messages may quote member names, so they are replaced.
    const failure = new Promise<never>((_resolve, rejectFailure) => {
      const fail = (): void => rejectFailure(reject("ZIP_WRITE_FAILED", "the de-identified archive could not be written"));
      zip.on("error", fail);
      zip.on("warning", fail);
      output.on("error", (error) => rejectFailure(error));
    });
    failure.catch(() => undefined);
    zip.pipe(output);
    let replacements = 0;
    try {
      for (const member of members) {
        if (member.isSkipped) {
          replacements++;
          continue;
        }
        const name = mapper.map(member.name);
        if (name !== member.name) replacements++;
        if (member.isDirectory) {
          await appendEntry(zip, Buffer.alloc(0), `${name}/`, 0o755, failure);
          continue;
        }
        const extracted = join(scratch, `member-${member.index}`);
        const written = join(scratch, `written-${member.index}`);
        await extract(member, extracted);
        try {
          await context.writeNested(extracted, `${context.relativePath}/${member.name}`, written);
        } catch (error) {
          throw memberFailure(error, name);
        } finally {
          await rm(extracted, { force: true });
        }
        await appendEntry(zip, createReadStream(written), name, 0o644, failure);
        await rm(written, { force: true });
      }
      await Promise.race([zip.finalize(), failure]);
      await Promise.race([finished(output), failure]);
    } catch (error) {
      zip.abort();
      output.destroy();
      throw error;
    }
    return { replacements };
  });
}

/** Builds the zip handler with the given caps (tests use small ones). */
export function createZipFormat(limits: ZipLimits = DEFAULT_ZIP_LIMITS): FormatHandler {
  return {
    name: "zip",
    matches: isZipFile,
    learn: (path, context) => learnArchive(path, context, limits),
    write: (path, targetPath, context) => writeArchive(path, targetPath, context, limits),
  };
}

export const zipFormat: FormatHandler = createZipFormat();
