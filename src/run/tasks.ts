/**
 * The work done for one file in each pass, shared by the in-process path
 * and the worker threads. Results carry reason codes, never thrown errors,
 * so that they can cross a thread boundary.
 */
import { closeSync, lstatSync, readSync, rmSync } from "node:fs";

import { isDeidError } from "../errors.js";
import { looksLikeDicom } from "../dicom/reader.js";
import { FileSource, openRegularFile } from "../dicom/source.js";
import { emptyCounts, QuarantineReason, type ActionCounts } from "../deid/apply.js";
import { TextCleaner, uidMapper } from "../deid/cleaner.js";
import { IdentifierRegistry, type JournalEntry, type Patient, type Term } from "../deid/identifiers.js";
import { FormatSet } from "../formats/index.js";
import { fileSignature, type FileSignature } from "./resume.js";
import type { LearnContext, WriteContext } from "../formats/types.js";
import { compileProfile, type CompiledProfile, type OptionName } from "../profile/profile.js";
import { deidentifyDicomFile, learnDicomFile, type DicomPassOptions } from "./dicom-file.js";

/** Everything a worker needs to repeat the main thread's work exactly. */
export interface RunSetup {
  options: OptionName[];
  secret: Uint8Array;
  crosswalk: Array<[string, string]>;
  shiftDates: boolean;
  passOptions: DicomPassOptions;
  /** Glob patterns of files copied unchanged (--pass-through). */
  passThrough: string[];
  /** Folder for what archives and NIfTI extensions are extracted to (LearnContext.scratchParent). */
  scratchParent?: string;
}

export interface Problem {
  reason: string;
  message: string;
  /** The system error code (ENOENT, ENOSPC, ...) when an I/O call failed. */
  errno?: string;
}

/** "dicom" or the name of the format handler that takes the file. */
export type FileKind = string;

export type LearnResult =
  | { ok: true; kind: FileKind; journal: JournalEntry[] }
  | ({ ok: false } & Problem);

export type WriteResult =
  | {
      ok: true;
      counts: ActionCounts;
      sopInstanceUid: string;
      uids: Array<[string, string]>;
      /** The input's signature, taken after its output was written. */
      inputSignature: FileSignature;
      /** The output's signature under its final name. */
      outputSignature: FileSignature;
    }
  | ({ ok: false } & Problem);

export interface WriteTask {
  path: string;
  relativePath: string;
  /**
   * Path of the copy in the staging folder. It needs no temporary name,
   * because the staging folder is published as a whole and --resume keeps
   * only files that the journal records as complete.
   */
  targetPath: string;
  fileKind: FileKind;
  /** Size and modification time seen by the tree walk, before pass 1 learnt the file. */
  size?: number;
  mtimeMs?: number;
}

/**
 * Throws when a file is not what pass 1 learnt from: its identifiers may be
 * ones the run never saw, so it cannot be cleaned with confidence. Returns
 * the file's signature. Calls are synchronous: a worker thread has nothing
 * else to do meanwhile, and each await would wait for a libuv pool thread.
 */
function checkUnchanged(task: WriteTask): FileSignature {
  const info = lstatSync(task.path);
  const changed = !info.isFile() || (task.size !== undefined && info.size !== task.size) || (task.mtimeMs !== undefined && info.mtimeMs !== task.mtimeMs);
  if (changed) {
    throw new QuarantineReason("CHANGED_DURING_RUN", "the file changed after its identifiers were learnt; run again on a tree that is not being written to");
  }
  return { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
}

const HEAD_BYTES = 256;

function readHead(path: string): Buffer {
  const fd = openRegularFile(path);
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const count = readSync(fd, buffer, 0, HEAD_BYTES, 0);
    return buffer.subarray(0, count);
  } finally {
    closeSync(fd);
  }
}

/** Turns any failure into a reason code and a message that contains no input value. */
export function problemOf(error: unknown): Problem {
  if (error instanceof QuarantineReason) return { reason: error.reasonCode, message: error.message };
  // A limit's hint names the option that raises it (--max-elements and so on), which the reader needs to act.
  if (isDeidError(error)) {
    const message = error.code === "LIMIT_EXCEEDED" && error.hint ? `${error.message}; ${error.hint}` : error.message;
    return { reason: error.code, message };
  }
  const code = (error as NodeJS.ErrnoException)?.code;
  if (typeof code === "string") return { reason: "IO", message: `cannot read or write the file (${code})`, errno: code };
  return { reason: "INTERNAL", message: "unexpected failure while processing the file" };
}

/** The state one thread keeps across the files it processes. */
export class TaskRunner {
  readonly profile: CompiledProfile;
  readonly registry: IdentifierRegistry;
  private cleaner: TextCleaner | undefined;
  private uids: Array<[string, string]> = [];
  private readonly mapUid: (uid: string) => string;
  private readonly formats: FormatSet;

  constructor(private readonly setup: RunSetup) {
    this.profile = compileProfile(setup.options);
    this.formats = new FormatSet(setup.passThrough);
    this.registry = new IdentifierRegistry(setup.secret, {
      crosswalk: new Map(setup.crosswalk),
      shiftDates: setup.shiftDates,
    });
    this.mapUid = uidMapper(setup.secret, (original, replacement) => this.uids.push([original, replacement]));
  }

  async learn(path: string, relativePath: string): Promise<LearnResult> {
    try {
      this.registry.journal = [];
      // One open serves both the look at the first bytes and the parse: the
      // parser starts from the window this first read filled.
      const source = new FileSource(path);
      let head: Buffer;
      try {
        head = Buffer.from(source.read(0, Math.min(HEAD_BYTES, source.size)));
      } catch (error) {
        source.close();
        throw error;
      }
      if (looksLikeDicom(head)) {
        await learnDicomFile(path, this.registry, this.profile, this.setup.passOptions, source);
        return { ok: true, kind: "dicom", journal: this.registry.journal };
      }
      source.close();
      const format = this.formats.find(relativePath, head);
      if (!format) {
        return { ok: false, reason: "UNSUPPORTED_FORMAT", message: "no de-identification rules for this kind of file" };
      }
      await format.learn?.(path, this.learnContext(relativePath));
      return { ok: true, kind: format.name, journal: this.registry.journal };
    } catch (error) {
      return { ok: false, ...problemOf(error) };
    } finally {
      this.registry.journal = undefined;
    }
  }

  /** Sets the identifiers of the run, learnt by the first pass, before any `write`. */
  useTerms(terms: readonly Term[]): void {
    this.cleaner = new TextCleaner(terms, this.mapUid);
  }

  /** Learns a member of an archive; throws when it cannot be de-identified. */
  private async learnNested(path: string, relativePath: string): Promise<void> {
    const head = readHead(path);
    if (looksLikeDicom(head)) {
      await learnDicomFile(path, this.registry, this.profile, this.setup.passOptions);
      return;
    }
    const format = this.formats.find(relativePath, head);
    if (!format) throw new QuarantineReason("UNSUPPORTED_FORMAT", "an archive member has no de-identification rules");
    await format.learn?.(path, this.learnContext(relativePath));
  }

  /** Writes a member of an archive with the rules for its kind. */
  private async writeNested(path: string, relativePath: string, targetPath: string): Promise<void> {
    const head = readHead(path);
    if (looksLikeDicom(head)) {
      await deidentifyDicomFile(path, targetPath, this.dicomContext(), this.setup.passOptions);
      return;
    }
    const format = this.formats.find(relativePath, head);
    if (!format) throw new QuarantineReason("UNSUPPORTED_FORMAT", "an archive member has no de-identification rules");
    await format.write(path, targetPath, this.formatContext(relativePath));
  }

  private learnContext(relativePath: string): LearnContext {
    return {
      registry: this.registry,
      relativePath,
      learnNested: (nested, name) => this.learnNested(nested, name),
      scratchParent: this.setup.scratchParent,
    };
  }

  private dicomContext() {
    return {
      profile: this.profile,
      cleaner: this.textCleaner,
      shiftDates: this.setup.shiftDates,
      mapUid: this.mapUid,
      patientFor: (key: string) => this.registry.patient(key),
    };
  }

  private formatContext(relativePath: string): WriteContext {
    return {
      cleaner: this.textCleaner,
      patientFor: (key) => this.registry.patient(key),
      patient: this.patientOfPath(relativePath),
      shiftDates: this.setup.shiftDates,
      relativePath,
      writeNested: (nested, name, target) => this.writeNested(nested, name, target),
      scratchParent: this.setup.scratchParent,
    };
  }

  /** Returns the patient whose original Patient ID names a folder on the file's path, if any. */
  private patientOfPath(relativePath: string): Patient | undefined {
    const folders = relativePath.split("/").slice(0, -1);
    for (const folder of folders) {
      const patient = this.registry.findPatient(folder);
      if (patient) return patient;
    }
    return undefined;
  }

  get textCleaner(): TextCleaner {
    if (!this.cleaner) throw new Error("useTerms must be called before the write pass");
    return this.cleaner;
  }

  async write(task: WriteTask): Promise<WriteResult> {
    this.uids = [];
    try {
      checkUnchanged(task);
      const counts = await this.writeOne(task);
      const inputSignature = checkUnchanged(task);
      return { ok: true, ...counts, uids: this.uids, inputSignature, outputSignature: fileSignature(task.targetPath) };
    } catch (error) {
      rmSync(task.targetPath, { force: true });
      return { ok: false, ...problemOf(error) };
    }
  }

  /** Writes the de-identified copy of one file. */
  private async writeOne(task: WriteTask): Promise<{ counts: ActionCounts; sopInstanceUid: string }> {
    if (task.fileKind === "dicom") {
      const result = await deidentifyDicomFile(task.path, task.targetPath, this.dicomContext(), this.setup.passOptions);
      return { counts: result.counts, sopInstanceUid: result.sopInstanceUid };
    }
    const format = this.formats.byName(task.fileKind);
    if (!format) throw new Error(`no format handler named ${task.fileKind}`);
    const result = await format.write(task.path, task.targetPath, this.formatContext(task.relativePath));
    const counts = emptyCounts();
    counts.textReplacements = result.replacements;
    return { counts, sopInstanceUid: "" };
  }
}
