/**
 * Reading and writing the zip container of an OOXML package: yauzl 3 reads
 * (it checks each member's inflated size against the central directory
 * while inflating), archiver 7 writes. The caps below are checked on the
 * central directory before any member is inflated, so a zip bomb is
 * rejected before it costs memory or time.
 */
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { createRequire } from "node:module";
import { PassThrough, type Readable } from "node:stream";

import { QuarantineReason } from "../../deid/apply.js";
import { LimitError } from "../../errors.js";

/** Members in one package; a workbook with 1,000 sheets and their parts has about 5,000. */
export const MAX_ENTRIES = 10_000;
/** Inflated size of one member. Sheets are streamed, so this is a cap on work, not on memory. */
export const MAX_ENTRY_BYTES = 2 * 1024 ** 3;
/** Inflated size of all members together. */
export const MAX_TOTAL_BYTES = 4 * 1024 ** 3;
/**
 * Inflated size over stored size, for the whole package once it inflates
 * to more than RATIO_CHECK_FROM_BYTES. Sheet XML of repetitive data
 * deflates about 10 to 50 times; deflate cannot exceed about 1,032.
 */
export const MAX_COMPRESSION_RATIO = 250;
export const RATIO_CHECK_FROM_BYTES = 64 * 1024 ** 2;

const LIMIT_HINT = "the workbook is damaged or crafted to exhaust resources; leave it out of the input";

/** The subset of yauzl 3 this module uses (the package ships no types). */
interface YauzlEntry {
  fileName: string;
  compressedSize: number;
  uncompressedSize: number;
  compressionMethod: number;
  isEncrypted(): boolean;
}

interface YauzlZipFile {
  entryCount: number;
  readEntry(): void;
  openReadStream(entry: YauzlEntry, callback: (error: Error | null, stream: Readable) => void): void;
  close(): void;
  on(event: "entry", listener: (entry: YauzlEntry) => void): void;
  on(event: "end", listener: () => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}

interface YauzlModule {
  open(
    path: string,
    options: { lazyEntries: boolean; autoClose: boolean; validateEntrySizes: boolean; strictFileNames: boolean },
    callback: (error: Error | null, zipfile: YauzlZipFile) => void,
  ): void;
}

interface ArchiverInstance {
  pipe(destination: WriteStream): void;
  append(source: Readable | Buffer, data: { name: string; date: Date }): void;
  finalize(): Promise<void>;
  abort(): void;
  on(event: "error" | "warning", listener: (error: Error) => void): void;
}

const require = createRequire(import.meta.url);
const yauzl = require("yauzl") as YauzlModule;
const archiver = require("archiver") as (format: "zip", options: { zlib: { level: number } }) => ArchiverInstance;

export interface PackageEntry {
  /** Member name as stored, "/"-separated, without a leading "/". */
  name: string;
  uncompressedSize: number;
  compressedSize: number;
  raw: YauzlEntry;
}

function notAZip(): QuarantineReason {
  return new QuarantineReason("XLSX_INVALID", "the workbook is not a readable zip package");
}

/** An open package whose central directory passed every cap. */
export class ZipReader {
  private constructor(
    private readonly zipfile: YauzlZipFile,
    readonly entries: readonly PackageEntry[],
  ) {}

  static async open(path: string): Promise<ZipReader> {
    const zipfile = await new Promise<YauzlZipFile>((resolve, reject) => {
      yauzl.open(path, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: true }, (error, opened) => {
        if (error) reject(notAZip());
        else resolve(opened);
      });
    });
    try {
      if (zipfile.entryCount > MAX_ENTRIES) {
        throw new LimitError(`the workbook has more than ${MAX_ENTRIES} zip members`, { hint: LIMIT_HINT });
      }
      const entries = await readCentralDirectory(zipfile);
      checkSizes(entries);
      return new ZipReader(zipfile, entries);
    } catch (error) {
      zipfile.close();
      throw error;
    }
  }

  /** Streams the inflated bytes of one member. */
  async stream(entry: PackageEntry): Promise<Readable> {
    return new Promise((resolve, reject) => {
      this.zipfile.openReadStream(entry.raw, (error, stream) => {
        if (error) reject(notAZip());
        else resolve(stream);
      });
    });
  }

  /** Yields the inflated bytes of one member; a damaged member is reported as XLSX_INVALID. */
  async *chunks(entry: PackageEntry): AsyncGenerator<Buffer> {
    const stream = await this.stream(entry);
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (error) {
      if (error instanceof QuarantineReason || error instanceof LimitError) throw error;
      throw notAZip();
    } finally {
      stream.destroy();
    }
  }

  /** Reads a whole member into memory; `maxBytes` caps what a caller is willing to hold. */
  async readAll(entry: PackageEntry, maxBytes: number): Promise<Buffer> {
    if (entry.uncompressedSize > maxBytes) {
      throw new LimitError(`a workbook part that is read whole is larger than ${maxBytes} bytes`, { hint: LIMIT_HINT });
    }
    const chunks: Buffer[] = [];
    for await (const chunk of this.chunks(entry)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  close(): void {
    this.zipfile.close();
  }
}

async function readCentralDirectory(zipfile: YauzlZipFile): Promise<PackageEntry[]> {
  const entries: PackageEntry[] = [];
  const names = new Set<string>();
  await new Promise<void>((resolve, reject) => {
    zipfile.on("error", () => reject(notAZip()));
    zipfile.on("end", () => resolve());
    zipfile.on("entry", (raw) => {
      try {
        if (raw.isEncrypted()) {
          throw new QuarantineReason("XLSX_ENCRYPTED", "a member of the workbook's zip package is encrypted");
        }
        if (raw.compressionMethod !== 0 && raw.compressionMethod !== 8) {
          throw new QuarantineReason("XLSX_INVALID", "a member of the workbook uses a compression method other than deflate");
        }
        // OPC part names compare without regard to case, so two members that differ only in case are ambiguous.
        const key = raw.fileName.toLowerCase();
        if (names.has(key)) throw new QuarantineReason("XLSX_INVALID", "the workbook's zip package names a member twice");
        names.add(key);
        entries.push({ name: raw.fileName, uncompressedSize: raw.uncompressedSize, compressedSize: raw.compressedSize, raw });
        zipfile.readEntry();
      } catch (error) {
        reject(error);
      }
    });
    zipfile.readEntry();
  });
  return entries;
}

function checkSizes(entries: readonly PackageEntry[]): void {
  let total = 0;
  let stored = 0;
  for (const entry of entries) {
    if (entry.uncompressedSize > MAX_ENTRY_BYTES) {
      throw new LimitError(`a member of the workbook inflates to more than ${MAX_ENTRY_BYTES} bytes`, { hint: LIMIT_HINT });
    }
    total += entry.uncompressedSize;
    stored += entry.compressedSize;
  }
  if (total > MAX_TOTAL_BYTES) {
    throw new LimitError(`the workbook inflates to more than ${MAX_TOTAL_BYTES} bytes`, { hint: LIMIT_HINT });
  }
  if (total > RATIO_CHECK_FROM_BYTES && total > stored * MAX_COMPRESSION_RATIO) {
    throw new LimitError(`the workbook inflates more than ${MAX_COMPRESSION_RATIO} times its stored size`, { hint: LIMIT_HINT });
  }
}

/** Every member is dated 1980-01-01, as Excel does, so the output carries no time of editing. */
const MEMBER_DATE = new Date(Date.UTC(1980, 0, 1));

/** Writes a new zip package member by member, in order, to a file created exclusively. */
export class ZipWriter {
  private readonly archive: ArchiverInstance;
  private readonly output: WriteStream;
  private readonly failed: Promise<never>;

  private constructor(output: WriteStream) {
    this.output = output;
    this.archive = archiver("zip", { zlib: { level: 6 } });
    this.failed = new Promise<never>((_, reject) => {
      this.archive.on("error", reject);
      this.archive.on("warning", reject);
      this.output.on("error", reject);
    });
    // Callers always await another promise raced against this one, so its rejection is never unhandled.
    this.failed.catch(() => undefined);
    this.archive.pipe(this.output);
  }

  /** Creates `targetPath` exclusively (it must not exist) before anything is written. */
  static async create(targetPath: string): Promise<ZipWriter> {
    const handle = await open(targetPath, "wx", 0o644);
    return new ZipWriter(createWriteStream("", { fd: handle }));
  }

  addBuffer(name: string, bytes: Buffer): void {
    this.archive.append(bytes, { name, date: MEMBER_DATE });
  }

  /** Adds a member whose bytes the caller writes, with backpressure, through the returned sink. */
  addStream(name: string): MemberSink {
    const stream = new PassThrough({ highWaterMark: 1 << 16 });
    this.archive.append(stream, { name, date: MEMBER_DATE });
    return new MemberSink(stream, this.failed);
  }

  async finish(): Promise<void> {
    await Promise.race([this.archive.finalize(), this.failed]);
    if (!this.output.writableFinished) await Promise.race([once(this.output, "finish"), this.failed]);
  }

  /** Stops writing after a failure; the caller removes the partial file. */
  async abort(): Promise<void> {
    this.archive.abort();
    this.output.destroy();
    await once(this.output, "close").catch(() => undefined);
  }
}

/** Text written to one member, encoded as UTF-8 and batched. */
export class MemberSink {
  private pending: string[] = [];
  private pendingLength = 0;

  constructor(
    private readonly stream: PassThrough,
    private readonly failed: Promise<never>,
  ) {}

  async write(text: string): Promise<void> {
    if (!text) return;
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength >= 1 << 16) await this.flush();
  }

  async writeBytes(bytes: Buffer): Promise<void> {
    await this.flush();
    if (!this.stream.write(bytes)) await Promise.race([once(this.stream, "drain"), this.failed]);
  }

  async end(): Promise<void> {
    await this.flush();
    this.stream.end();
  }

  private async flush(): Promise<void> {
    if (!this.pending.length) return;
    const bytes = Buffer.from(this.pending.join(""), "utf8");
    this.pending = [];
    this.pendingLength = 0;
    if (!this.stream.write(bytes)) await Promise.race([once(this.stream, "drain"), this.failed]);
  }
}
