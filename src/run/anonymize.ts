/**
 * `anonymize`: a whole input tree into a de-identified copy, an encrypted
 * key and a run report, in two passes over the files.
 */
import { mkdirSync } from "node:fs";
import { mkdir, readdir, readFile, realpath, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";

import { DeidError, UsageError } from "../errors.js";
import { DEFAULT_READ_LIMITS, type ReadLimits } from "../dicom/reader.js";
import type { ActionCounts } from "../deid/apply.js";
import { TextCleaner, uidMapper } from "../deid/cleaner.js";
import { IdentifierRegistry, type Term } from "../deid/identifiers.js";
import { compileProfile, type CompiledProfile, type OptionName } from "../profile/profile.js";
import { initSodium, randomSecret } from "../pseudonym/keyed-hash.js";
import { TOOL_VERSION } from "../version.js";
import { leftOutName, publishedFolders } from "../tree/left-out-names.js";
import { PathMapper, checkPathsDisjoint } from "../tree/paths.js";
import { walkTree, type TreeEntry } from "../tree/walk.js";
import { buildKeyPayload, type FileRecord } from "./key-payload.js";
import { counting, runLocally, WorkerPool, workersAvailable } from "./pool.js";
import { addCounts, buildReport, type QuarantineEntry, type RunReport } from "./report.js";
import {
  fileSignature,
  readRunState,
  ResumeJournal,
  sameSignature,
  secretCheckOf,
  settingsCheckOf,
  STATE_FORMAT,
  STATE_VERSION,
  writeRunState,
  type JournalEntry,
  type RunPhase,
  type RunState,
} from "./resume.js";
import { acquireRunLock } from "./run-lock.js";
import { TaskRunner, type FileKind, type LearnResult, type Problem, type RunSetup, type WriteResult, type WriteTask } from "./tasks.js";
import { removeStagingFolders, unpublished, withScratchFolder, withTemporaryScratch } from "./unpublished.js";

export { removeStagingFolders };

export interface AnonymizeOptions {
  input: string;
  output: string;
  options: readonly OptionName[];
  /** Seals the key file; see keyfile/. Called once, after all files are written. */
  writeKey(path: string, payload: unknown, fields: Record<string, string | number>): Promise<void>;
  keyOut?: string;
  reportOut?: string;
  secret?: Uint8Array;
  /** Original Patient ID to pseudonym, from a study's own crosswalk (--map). */
  crosswalk?: ReadonlyMap<string, string>;
  dryRun?: boolean;
  /** Files processed at once. */
  jobs?: number;
  /** Glob patterns of non-DICOM files copied unchanged; the report lists each. */
  passThrough?: readonly string[];
  limits?: Partial<ReadLimits>;
  maxInflatedBytes?: number;
  /**
   * Finishes a run with the same settings that was killed (kill -9, power
   * loss) and left OUTPUT.deidkit-partial behind. Needs `secret`, because
   * a new random secret would give other pseudonyms.
   */
  resume?: boolean;
  /** A file that cannot be de-identified is left out and listed ("quarantine", the default) or fails the run ("fail"). */
  onInvalid?: OnInvalid;
  onEvent?: (event: RunEvent) => void;
}

export type OnInvalid = "quarantine" | "fail";

export type RunEvent =
  | { type: "phase"; phase: "scan" | "learn" | "write" | "key" | "report" | "publish" }
  | { type: "resumed"; filesKept: number }
  | { type: "progress"; phase: "learn" | "write"; done: number; total: number }
  | { type: "quarantined"; outputPath: string; reason: string; message: string }
  | { type: "planned"; outputPath: string; action: "write" | "quarantine"; reason?: string }
  | { type: "warning"; message: string };

export interface AnonymizeResult {
  report: RunReport;
  keyPath: string;
  reportPath: string;
  outputPath: string;
}

const MIN_FILES_FOR_WORKERS = 16;

/** Completed files per append to the resume journal. */
const JOURNAL_GROUP = 64;

/**
 * System errors that mean OUTPUT cannot take more data. They fail the run
 * (exit 4, nothing published) instead of leaving the file out, because
 * every later file would fail the same way.
 */
const OUTPUT_ERRNOS = new Set(["ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EMFILE", "ENFILE"]);

/** The paths one run writes, all derived from OUTPUT and the key and report paths. */
export interface RunPaths {
  output: string;
  /** Folder the files are written into, renamed to OUTPUT when the run succeeds. */
  staging: string;
  /** The run's settings check and phase, for --resume. */
  state: string;
  /** Encrypted record of each completed file, for --resume. */
  journal: string;
  keyPath: string;
  reportPath: string;
}

export function runPaths(output: string, keyOut?: string, reportOut?: string): RunPaths {
  const base = output.replace(/[/\\]+$/, "");
  return {
    output: base,
    staging: `${base}.deidkit-partial`,
    state: `${base}.deidkit-state.json`,
    journal: `${base}.deidkit-journal`,
    keyPath: keyOut ?? `${base}.deidkey`,
    reportPath: reportOut ?? `${base}.report.json`,
  };
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function checkInputAndParent(options: AnonymizeOptions): Promise<void> {
  let info;
  try {
    info = await stat(options.input);
  } catch {
    throw new UsageError("INPUT does not exist or cannot be read", { hint: "pass the folder to de-identify as INPUT" });
  }
  if (!info.isDirectory()) {
    throw new UsageError("INPUT is not a folder", { hint: "pass the folder that contains the files to de-identify" });
  }
  if (!(await pathExists(dirname(resolve(options.output))))) {
    throw new UsageError("the folder for OUTPUT does not exist", {
      path: dirname(resolve(options.output)),
      hint: "create the parent folder first, because deidkit creates only OUTPUT itself",
    });
  }
}

/** Checks that OUTPUT, the key and the report do not exist yet and do not overlap INPUT. */
async function checkNewOutputs(options: AnonymizeOptions, paths: RunPaths): Promise<void> {
  if (await pathExists(options.output)) {
    throw new DeidError("OUTPUT_EXISTS", "OUTPUT already exists", {
      hint: "choose a new OUTPUT path; deidkit never writes into an existing folder",
    });
  }
  await checkPathsDisjoint(options.input, options.output, paths.keyPath);
  await checkReportFolder(options.input, options.output, paths.reportPath);
  for (const [path, what] of [[paths.keyPath, "key file"], [paths.reportPath, "report"]] as const) {
    if (await pathExists(path)) {
      throw new DeidError("OUTPUT_EXISTS", `the ${what} already exists`, {
        hint: `remove it or choose another path (--${what === "key file" ? "key-out" : "report"})`,
      });
    }
  }
}

/**
 * Checks the report's folder up front, because the report is written after
 * OUTPUT is published. The folder must exist (or be OUTPUT itself) and lie
 * outside INPUT.
 */
async function checkReportFolder(input: string, output: string, reportPath: string): Promise<void> {
  const folder = resolve(dirname(reportPath));
  if (folder === resolve(output)) return;
  let realFolder: string;
  try {
    realFolder = await realpath(folder);
  } catch {
    throw new UsageError("the folder for the report does not exist", {
      path: folder,
      hint: "create the folder first, or pass --report with a path in an existing folder",
    });
  }
  const fromInput = relative(await realpath(input), realFolder);
  const outside = fromInput === ".." || fromInput.startsWith(`..${sep}`) || isAbsolute(fromInput);
  if (!outside) {
    throw new DeidError("PATH_OVERLAP", "the report would be inside INPUT", {
      hint: "pass --report with a path outside INPUT; deidkit never writes into its input",
    });
  }
}

/** Runs both passes over one tree, in process or over a pool of worker threads. */
class AnonymizeRun {
  private readonly emit: (event: RunEvent) => void;
  private readonly registry: IdentifierRegistry;
  private readonly local: TaskRunner;
  private readonly quarantine = new Map<TreeEntry, Problem>();
  private readonly outputPathOf = new Map<TreeEntry, string>();
  private readonly fileKind = new Map<TreeEntry, FileKind>();
  private readonly passedThrough: string[] = [];
  private readonly uidMap = new Map<string, string>();
  private readonly files: FileRecord[] = [];
  private readonly totals: ActionCounts[] = [];
  private readonly startedAt = new Date();
  private entries: TreeEntry[] = [];
  private pool: WorkerPool | undefined;

  constructor(
    private readonly options: AnonymizeOptions,
    private readonly profile: CompiledProfile,
    private readonly setup: RunSetup,
  ) {
    this.emit = options.onEvent ?? (() => {});
    this.registry = new IdentifierRegistry(setup.secret, { crosswalk: options.crosswalk, shiftDates: setup.shiftDates });
    this.local = new TaskRunner(setup);
  }

  private progress(phase: "learn" | "write", total: number): (done: number) => void {
    return (done) => this.emit({ type: "progress", phase, done, total });
  }

  /** Runs both passes; `resume` is set when an interrupted run of the same settings is being finished. */
  async run(paths: RunPaths, resume: RunState | undefined): Promise<AnonymizeResult> {
    this.emit({ type: "phase", phase: "scan" });
    this.entries = await walkTree(this.options.input);
    const regularFiles: TreeEntry[] = [];
    for (const entry of this.entries) {
      if (entry.kind === "symlink") this.quarantine.set(entry, { reason: "SYMLINK", message: "symbolic link not followed" });
      else if (entry.kind === "special") this.quarantine.set(entry, { reason: "SPECIAL_FILE", message: "not a regular file (FIFO, socket or device)" });
      else if (entry.kind === "unreadable") this.quarantine.set(entry, { reason: "UNREADABLE", message: `cannot be listed or examined (${entry.errorCode}); a name that is not valid UTF-8 shows as ENOENT` });
      else regularFiles.push(entry);
    }
    const jobs = Math.min(this.options.jobs ?? 1, regularFiles.length);
    // Starting a worker costs about as much as a few small files, so small trees stay in this thread.
    const worthWorkers = regularFiles.length >= MIN_FILES_FOR_WORKERS;
    this.pool = jobs > 1 && worthWorkers && workersAvailable() ? new WorkerPool(jobs, this.setup) : undefined;
    try {
      const acceptedFiles = await this.learnPass(regularFiles);
      const terms = this.registry.allTerms();
      const mapper = new PathMapper(new TextCleaner(terms, uidMapper(this.setup.secret)));
      for (const entry of this.entries) this.outputPathOf.set(entry, mapper.map(entry.relativePath));
      this.failOnFirstProblem(acceptedFiles);
      if (this.options.dryRun) return this.planOnly(acceptedFiles, paths);
      return await this.writeAndPublish(acceptedFiles, terms, paths, resume);
    } finally {
      await this.pool?.close();
    }
  }

  /**
   * With --on-invalid fail, raises INPUT_INVALID for the first file (in
   * INPUT's path order) left out so far, naming it as the report would.
   */
  private failOnFirstProblem(acceptedFiles: readonly TreeEntry[]): void {
    if (this.options.onInvalid !== "fail") return;
    const index = this.entries.findIndex((entry) => this.quarantine.has(entry));
    if (index < 0) return;
    const entry = this.entries[index];
    const problem = this.quarantine.get(entry)!;
    const published = publishedFolders(acceptedFiles.map((accepted) => this.outputPathOf.get(accepted)!));
    const name = leftOutName(this.outputPathOf.get(entry)!, index, published);
    throw new DeidError("INPUT_INVALID", `a file cannot be de-identified: ${problem.reason}: ${problem.message}`, {
      path: name,
      hint: "fix or remove that file, or run with --on-invalid quarantine to leave such files out and list them in the report",
    });
  }

  /** Pass 1: learns every file's identifiers; returns the files that will be written, in tree order. */
  private async learnPass(regularFiles: TreeEntry[]): Promise<TreeEntry[]> {
    this.emit({ type: "phase", phase: "learn" });
    const onDone = this.progress("learn", regularFiles.length);
    const learnt = this.pool
      ? await this.pool.run<LearnResult>(regularFiles.map((entry) => ({ kind: "learn", path: entry.path, relativePath: entry.relativePath })), counting(onDone))
      : await runLocally(regularFiles, (entry) => this.local.learn(entry.path, entry.relativePath), counting(onDone));
    const acceptedFiles: TreeEntry[] = [];
    regularFiles.forEach((entry, index) => {
      const result = learnt[index];
      if (!result.ok) {
        this.quarantine.set(entry, result);
        return;
      }
      // Replaying each file's identifiers in tree order gives the same registry whatever the number of workers.
      this.registry.replay(result.journal);
      this.fileKind.set(entry, result.kind);
      acceptedFiles.push(entry);
    });
    this.checkPseudonyms();
    return acceptedFiles;
  }

  /**
   * Fails the run before anything is written when two patients would share
   * one pseudonym, because that merges their data, or when a --map pseudonym
   * is itself an identifier. Warns about --map rows that match no patient.
   */
  private checkPseudonyms(): void {
    const used = new Set<string>();
    for (const patient of this.registry.patients.values()) {
      if (used.has(patient.pseudonymId)) {
        throw new DeidError("PSEUDONYM_COLLISION", "two patients would get the same pseudonym", {
          hint: "a pseudonym in the --map file equals the pseudonym of another patient, so give every patient a distinct one",
        });
      }
      used.add(patient.pseudonymId);
    }
    // A --map pseudonym must not itself be an identifier (another MRN, a name, the original ID).
    const identifiers = new Set(this.registry.allTerms().map((term) => term.text.toLowerCase()));
    for (const patient of this.registry.patients.values()) {
      if (!patient.mapped) continue;
      if (identifiers.has(patient.pseudonymId.toLowerCase()) || this.registry.findPatient(patient.pseudonymId)) {
        throw new DeidError("CONFIG", "a pseudonym in the --map file is itself an identifier found in the input", {
          hint: "give every patient a pseudonym that is not an ID, name or date of any patient",
        });
      }
    }
    const known = new Set<string>();
    for (const key of this.registry.patients.keys()) known.add(key).add(key.replace(/^0+(?=\d)/, ""));
    const unmatched = [...(this.options.crosswalk?.keys() ?? [])].filter((key) => !known.has(key)).length;
    if (unmatched > 0) this.emit({ type: "warning", message: `${unmatched} --map rows match no patient in INPUT` });
  }

  private planOnly(acceptedFiles: TreeEntry[], paths: RunPaths): AnonymizeResult {
    for (const entry of acceptedFiles) {
      this.files.push({ input: entry.relativePath, output: this.outputPathOf.get(entry)!, status: "written" });
    }
    const published = publishedFolders(acceptedFiles.map((entry) => this.outputPathOf.get(entry)!));
    this.entries.forEach((entry, index) => {
      const problem = this.quarantine.get(entry);
      const outputPath = problem ? leftOutName(this.outputPathOf.get(entry)!, index, published) : this.outputPathOf.get(entry)!;
      this.emit({ type: "planned", outputPath, action: problem ? "quarantine" : "write", reason: problem?.reason });
    });
    return { report: this.buildReport(true), keyPath: paths.keyPath, reportPath: paths.reportPath, outputPath: this.options.output };
  }

  /**
   * Pass 2: writes every file into the staging folder, then the key, then
   * the report, then renames the staging folder to OUTPUT. The state file
   * records each step, so that --resume can finish a killed run.
   */
  private async writeAndPublish(acceptedFiles: TreeEntry[], terms: Term[], paths: RunPaths, resume: RunState | undefined): Promise<AnonymizeResult> {
    this.emit({ type: "phase", phase: "write" });
    const setPhase = (phase: RunPhase): Promise<void> => writeRunState(paths.state, { ...this.stateBase(), phase });
    unpublished.add(paths.state).add(`${paths.state}.tmp`).add(paths.journal).add(paths.staging);
    let published = false;
    try {
      await setPhase("write");
      const journal = new ResumeJournal(paths.journal, this.setup.secret);
      const reused = resume ? await this.reuseCompletedFiles(acceptedFiles, paths, journal) : new Map<string, JournalEntry>();
      await mkdir(paths.staging, { recursive: true });
      if (resume) this.emit({ type: "resumed", filesKept: reused.size });
      await this.writePass(acceptedFiles, terms, paths, journal, reused);
      const report = this.buildReport(false);

      this.emit({ type: "phase", phase: "key" });
      await setPhase("key");
      const payload = buildKeyPayload({
        secret: this.setup.secret,
        secretSupplied: this.options.secret !== undefined,
        registry: this.registry,
        uidMap: this.uidMap,
        files: this.files,
        report,
      });
      await this.options.writeKey(paths.keyPath, payload, {
        patients: this.registry.patients.size,
        files: report.filesWritten,
        uids: this.uidMap.size,
        profile: report.options.join(",") || "basic",
      });
      unpublished.add(paths.keyPath);

      this.emit({ type: "phase", phase: "report" });
      await setPhase("report");
      const reportTarget = reportPathBeforePublish(paths);
      unpublished.add(reportTarget);
      await writeReport(reportTarget, report);

      await setPhase("publish");
      this.emit({ type: "phase", phase: "publish" });
      await rename(paths.staging, paths.output);
      published = true;
      return { report, keyPath: paths.keyPath, reportPath: paths.reportPath, outputPath: this.options.output };
    } finally {
      await finishRun(paths, published);
    }
  }

  /** Builds the part of the state file that does not change during the run. */
  private stateBase(): Omit<RunState, "phase"> {
    return {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      secretCheck: secretCheckOf(this.setup.secret),
      settingsCheck: settingsCheckOf(this.setup.secret, runSettings(this.options, this.setup)),
    };
  }

  /**
   * Keeps the files of the staging folder that the journal records as
   * complete, whose input and output both have the recorded signatures,
   * and deletes everything else there (files cut short by the kill, files
   * whose journal entry was not written before it). Returns the kept entries by
   * output path.
   */
  private async reuseCompletedFiles(acceptedFiles: readonly TreeEntry[], paths: RunPaths, journal: ResumeJournal): Promise<Map<string, JournalEntry>> {
    const recorded = await journal.load();
    const kept = new Map<string, JournalEntry>();
    if (!(await pathExists(paths.staging))) return kept;
    for (const entry of acceptedFiles) {
      const output = this.outputPathOf.get(entry)!;
      const record = recorded.get(output);
      if (!record || record.input !== entry.relativePath) continue;
      if (!sameSignature(record.result.inputSignature, fileSignature(entry.path))) continue;
      if (sameSignature(record.result.outputSignature, fileSignature(join(paths.staging, output)))) kept.set(output, record);
    }
    await pruneStaging(paths.staging, new Set(kept.keys()));
    return kept;
  }

  private async writePass(acceptedFiles: TreeEntry[], terms: Term[], paths: RunPaths, journal: ResumeJournal, reused: ReadonlyMap<string, JournalEntry>): Promise<void> {
    const written = new Array<WriteResult>(acceptedFiles.length);
    const pending: Array<{ index: number; task: WriteTask }> = [];
    const folders = new Set<string>();
    for (const [index, entry] of acceptedFiles.entries()) {
      const output = this.outputPathOf.get(entry)!;
      const record = reused.get(output);
      if (record) {
        written[index] = record.result;
        continue;
      }
      const targetPath = join(paths.staging, output);
      const folder = dirname(targetPath);
      if (!folders.has(folder)) {
        mkdirSync(folder, { recursive: true });
        folders.add(folder);
      }
      const fileKind = this.fileKind.get(entry)!;
      pending.push({ index, task: { path: entry.path, relativePath: entry.relativePath, targetPath, fileKind, size: entry.size, mtimeMs: entry.mtimeMs } });
    }
    const onDone = counting(this.progress("write", acceptedFiles.length), reused.size);
    if (this.pool) await this.pool.useTerms(terms);
    else this.local.useTerms(terms);

    // Completed files go to the journal in groups. A kill loses the entries
    // not yet appended, and --resume writes those files again.
    let unrecorded: JournalEntry[] = [];
    const flush = () => {
      journal.append(unrecorded);
      unrecorded = [];
    };
    const onResult = (position: number, result: WriteResult) => {
      const { index } = pending[position];
      if (!result.ok && result.errno !== undefined && OUTPUT_ERRNOS.has(result.errno)) {
        throw new DeidError("IO", `writing OUTPUT failed (${result.errno})`, {
          path: paths.staging,
          hint: "free disk space (or raise the quota or open-file limit), then run again; nothing was published",
        });
      }
      written[index] = result;
      if (result.ok) {
        unrecorded.push({ input: acceptedFiles[index].relativePath, output: this.outputPathOf.get(acceptedFiles[index])!, result });
        if (unrecorded.length >= JOURNAL_GROUP) flush();
      }
      onDone(position, result);
      if (!result.ok && this.options.onInvalid === "fail") {
        this.quarantine.set(acceptedFiles[index], result);
        this.failOnFirstProblem(acceptedFiles);
      }
    };
    try {
      if (this.pool) await this.pool.run<WriteResult>(pending.map(({ task }) => ({ kind: "write", task })), onResult);
      else await runLocally(pending, ({ task }) => this.local.write(task), onResult);
    } catch (error) {
      // With workers, a later file's failure can arrive before an earlier
      // file's. The pool has now collected every task it sent, which
      // includes all files before the one that failed first, so name the
      // first failure in path order.
      if (error instanceof DeidError && error.code === "INPUT_INVALID") this.failOnFirstProblem(acceptedFiles);
      throw error;
    } finally {
      flush();
    }
    const failedFolders: string[] = [];
    acceptedFiles.forEach((entry, index) => {
      const result = written[index];
      if (!result.ok) {
        this.quarantine.set(entry, result);
        failedFolders.push(dirname(join(paths.staging, this.outputPathOf.get(entry)!)));
        return;
      }
      for (const [original, replacement] of result.uids) this.uidMap.set(original, replacement);
      if (this.fileKind.get(entry) === "pass-through") this.passedThrough.push(this.outputPathOf.get(entry)!);
      this.totals.push(result.counts);
      this.files.push({ input: entry.relativePath, output: this.outputPathOf.get(entry)!, status: "written", sopInstanceUid: result.sopInstanceUid });
    });
    await removeEmptyFolders(failedFolders, paths.staging);
  }

  private buildReport(dryRun: boolean): RunReport {
    const quarantined: QuarantineEntry[] = [];
    const published = publishedFolders(this.files.filter((file) => file.status === "written").map((file) => file.output));
    this.entries.forEach((entry, index) => {
      const problem = this.quarantine.get(entry);
      if (!problem) return;
      const outputPath = leftOutName(this.outputPathOf.get(entry)!, index, published);
      quarantined.push({ path: outputPath, reason: problem.reason, message: problem.message });
      this.files.push({ input: entry.relativePath, output: outputPath, status: "quarantined", reason: problem.reason });
      this.emit({ type: "quarantined", outputPath, reason: problem.reason, message: problem.message });
    });
    return buildReport({
      startedAt: this.startedAt,
      finishedAt: new Date(),
      options: [...this.profile.options],
      filesSeen: this.entries.length,
      filesWritten: this.files.filter((file) => file.status === "written").length,
      quarantined,
      counts: addCounts(this.totals),
      patients: this.registry.patients.size,
      uids: this.uidMap.size,
      dryRun,
      passedThrough: this.passedThrough,
    });
  }
}

export async function anonymize(options: AnonymizeOptions): Promise<AnonymizeResult> {
  await initSodium();
  const paths = runPaths(options.output, options.keyOut, options.reportOut);
  if (options.resume && options.dryRun) {
    throw new UsageError("--resume and --dry-run cannot be combined", { hint: "drop --dry-run to finish the interrupted run" });
  }
  if (options.resume && !options.secret) {
    throw new UsageError("--resume needs the secret of the interrupted run", {
      hint: "pass the same --secret FILE or --continue KEYFILE as the run that was interrupted",
    });
  }
  await checkInputAndParent(options);

  const profile = compileProfile(options.options);
  const overrides = Object.entries(options.limits ?? {}).filter(([, value]) => value !== undefined);
  const limits: ReadLimits = { ...DEFAULT_READ_LIMITS, ...Object.fromEntries(overrides) };
  const setup: RunSetup = {
    options: [...profile.options],
    secret: options.secret ?? randomSecret(),
    crosswalk: [...(options.crosswalk ?? new Map<string, string>())],
    shiftDates: profile.options.has("retain-longitudinal-modified-dates"),
    passOptions: { limits, maxInflatedBytes: options.maxInflatedBytes ?? 4 * 1024 ** 3 },
    passThrough: [...(options.passThrough ?? [])],
  };
  const run = new AnonymizeRun(options, profile, setup);
  if (options.dryRun) {
    await checkNewOutputs(options, paths);
    return withTemporaryScratch("dry-run", usingScratch(setup, () => run.run(paths, undefined)));
  }

  const emit = options.onEvent ?? (() => {});
  const lock = await acquireRunLock(paths.output, (message) => emit({ type: "warning", message }));
  try {
    // A killed run's scratch folder serves no later run, so it goes first, even when the leftovers below stop this one.
    await removeStaleScratch(paths.output);
    const start = await startOrResume(options, paths, setup);
    if (start.kind === "published") return await finishPublished(paths, start.state);
    return await withScratchFolder(dirname(paths.output), scratchPrefix(paths.output), usingScratch(setup, () => run.run(paths, start.state)));
  } finally {
    await lock.release();
  }
}

/**
 * Prefix of the run's scratch folder next to OUTPUT: archive members and
 * NIfTI extensions are extracted there, with their identifiers, while a file
 * is processed. Next to OUTPUT rather than in the system's temporary folder,
 * so that a run killed with SIGKILL leaves it where the next run removes it.
 */
function scratchPrefix(output: string): string {
  return `${basename(output)}.deidkit-scratch-`;
}

/** Removes scratch folders that killed runs of OUTPUT left; the run lock is held, so none is in use. */
async function removeStaleScratch(output: string): Promise<void> {
  const prefix = scratchPrefix(output);
  const names = await readdir(dirname(output)).catch(() => [] as string[]);
  for (const name of names) {
    if (name.startsWith(prefix)) await rm(join(dirname(output), name), { recursive: true, force: true });
  }
}

/** Wraps `work` so that the scratch folder it is given is the run's, in `setup`, for every thread. */
function usingScratch<T>(setup: RunSetup, work: () => Promise<T>): (folder: string) => Promise<T> {
  return async (folder) => {
    setup.scratchParent = folder;
    try {
      return await work();
    } finally {
      setup.scratchParent = undefined;
    }
  };
}

/** The settings that must be equal for --resume to continue a run; `jobs` is left out, because it does not change the output. */
function runSettings(options: AnonymizeOptions, setup: RunSetup): unknown {
  return {
    tool: TOOL_VERSION,
    input: resolve(options.input),
    output: resolve(options.output),
    keyPath: resolve(runPaths(options.output, options.keyOut, options.reportOut).keyPath),
    reportPath: resolve(runPaths(options.output, options.keyOut, options.reportOut).reportPath),
    options: setup.options,
    crosswalk: setup.crosswalk,
    passThrough: setup.passThrough,
    limits: setup.passOptions,
    onInvalid: options.onInvalid ?? "quarantine",
  };
}

type Start = { kind: "fresh"; state: undefined } | { kind: "resume"; state: RunState } | { kind: "published"; state: RunState };

/**
 * Decides, with the lock held, whether the run starts anew, continues an
 * interrupted run, or only has to finish publishing one. Raises when the
 * leftovers of an interrupted run are in the way, or do not match.
 */
async function startOrResume(options: AnonymizeOptions, paths: RunPaths, setup: RunSetup): Promise<Start> {
  const stateExists = await pathExists(paths.state);
  const stagingExists = await pathExists(paths.staging);
  if (!options.resume) {
    if (stateExists || stagingExists) {
      throw new DeidError("OUTPUT_EXISTS", "an interrupted run of OUTPUT left its unfinished files", {
        path: stagingExists ? paths.staging : paths.state,
        hint: `finish it with --resume and the same --secret (or --continue), or delete ${paths.staging} and ${paths.state} to start again`,
      });
    }
    await checkNewOutputs(options, paths);
    return { kind: "fresh", state: undefined };
  }
  if (!stateExists) {
    if (stagingExists) {
      throw new DeidError("OUTPUT_EXISTS", "the unfinished folder of OUTPUT has no state file, so it cannot be resumed", {
        path: paths.staging,
        hint: "delete that folder and run again",
      });
    }
    if (await pathExists(paths.output)) {
      throw new DeidError("OUTPUT_EXISTS", "OUTPUT already exists: the run had finished, so there is nothing to resume", {
        hint: "choose a new OUTPUT to run again",
      });
    }
    // Killed before its state file was written: nothing to keep.
    await checkNewOutputs(options, paths);
    return { kind: "fresh", state: undefined };
  }
  const state = await readRunState(paths.state);
  if (state.secretCheck !== secretCheckOf(setup.secret)) {
    throw new DeidError("CONFIG", "the secret differs from the one of the interrupted run", {
      path: paths.state,
      hint: "pass the same --secret FILE or --continue KEYFILE as the interrupted run",
    });
  }
  if (state.settingsCheck !== settingsCheckOf(setup.secret, runSettings(options, setup))) {
    throw new DeidError("CONFIG", "INPUT, OUTPUT, the key or report path, or the options differ from those of the interrupted run", {
      path: paths.state,
      hint: `run again with the same arguments, or delete ${paths.staging} and ${paths.state} to start anew`,
    });
  }
  if (state.phase === "publish" && (await pathExists(paths.output)) !== stagingExists) {
    return { kind: "published", state };
  }
  if (await pathExists(paths.output)) {
    throw new DeidError("OUTPUT_EXISTS", "OUTPUT exists next to the files of an unfinished run", {
      hint: `delete ${paths.staging} and ${paths.state} if OUTPUT is complete, or move OUTPUT away and resume`,
    });
  }
  if (state.phase !== "write") {
    // Written by the interrupted run just before it was killed; rewritten with the same content.
    await removeKeyAndReport(paths);
  }
  await checkNewOutputs(options, paths);
  return { kind: "resume", state };
}

/** Removes the key and report that an interrupted run wrote before publishing, with their temporary files. */
async function removeKeyAndReport(paths: RunPaths): Promise<void> {
  await rm(paths.keyPath, { force: true });
  await rm(paths.reportPath, { force: true });
  await rm(`${paths.reportPath}.deidkit-tmp`, { force: true });
  const keyFolder = dirname(paths.keyPath);
  const keyTemp = new RegExp(`^\\.${escapeRegExp(basename(paths.keyPath))}\\.[0-9a-f]{12}\\.tmp$`);
  for (const name of await readdir(keyFolder)) {
    if (keyTemp.test(name)) await rm(join(keyFolder, name), { force: true });
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Finishes a run that was killed after its key and report were written:
 * renames the staging folder to OUTPUT if that had not happened yet, and
 * returns the report it wrote.
 */
async function finishPublished(paths: RunPaths, state: RunState): Promise<AnonymizeResult> {
  if (state.phase !== "publish") throw new DeidError("INTERNAL", "finishPublished called before the publish phase");
  if (await pathExists(paths.staging)) await rename(paths.staging, paths.output);
  const report = JSON.parse(await readFile(paths.reportPath, "utf8")) as RunReport;
  await rm(paths.journal, { force: true });
  await rm(paths.state, { force: true });
  return { report, keyPath: paths.keyPath, reportPath: paths.reportPath, outputPath: paths.output };
}

/**
 * Removes the run's files after it published OUTPUT (state and journal) or
 * failed (everything it wrote, so that nothing partial is left).
 */
async function finishRun(paths: RunPaths, published: boolean): Promise<void> {
  const leftovers = published
    ? [paths.journal, paths.state, `${paths.state}.tmp`]
    : [paths.staging, paths.journal, paths.state, `${paths.state}.tmp`, ...[paths.keyPath, reportPathBeforePublish(paths)].filter((path) => unpublished.has(path))];
  for (const path of leftovers) {
    await rm(path, { recursive: true, force: true });
  }
  for (const path of [paths.staging, paths.journal, paths.state, `${paths.state}.tmp`, paths.keyPath, reportPathBeforePublish(paths)]) unpublished.delete(path);
}

/** Returns where the report is written before publishing: inside the staging folder when --report points into OUTPUT. */
function reportPathBeforePublish(paths: RunPaths): string {
  const fromOutput = relative(resolve(paths.output), resolve(paths.reportPath));
  const inside = fromOutput !== "" && !fromOutput.startsWith("..") && !isAbsolute(fromOutput);
  return inside ? join(paths.staging, fromOutput) : paths.reportPath;
}

/** Deletes every file of the staging folder that is not in `keep` (output paths), then the folders left empty. */
async function pruneStaging(staging: string, keep: ReadonlySet<string>, prefix = ""): Promise<void> {
  const folder = prefix === "" ? staging : join(staging, prefix);
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const relativePath = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) {
      await pruneStaging(staging, keep, relativePath);
      await rmdir(join(staging, relativePath)).catch(() => {});
    } else if (!keep.has(relativePath)) {
      await unlink(join(staging, relativePath));
    }
  }
}

/** Removes folders left empty by files that failed, walking up to (not including) `root`. */
async function removeEmptyFolders(folders: readonly string[], root: string): Promise<void> {
  for (let folder of folders) {
    while (folder.length > root.length && folder.startsWith(root)) {
      try {
        await rmdir(folder);
      } catch {
        break; // not empty, or already removed
      }
      folder = dirname(folder);
    }
  }
}

/** Writes the report under a fixed temporary name, then renames it; the run lock keeps other runs off that name. */
async function writeReport(path: string, report: RunReport): Promise<void> {
  const temp = `${path}.deidkit-tmp`;
  await writeFile(temp, `${JSON.stringify(report, null, 2)}\n`, { mode: 0o644 });
  await rename(temp, path);
}
