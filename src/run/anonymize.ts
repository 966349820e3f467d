/**
 * `anonymize`: a whole input tree into a de-identified copy, an encrypted
 * key and a run report, in two passes over the files.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, realpath, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";

import { DeidError, UsageError } from "../errors.js";
import { DEFAULT_READ_LIMITS, type ReadLimits } from "../dicom/reader.js";
import type { ActionCounts } from "../deid/apply.js";
import { TextCleaner, uidMapper } from "../deid/cleaner.js";
import { IdentifierRegistry, type Term } from "../deid/identifiers.js";
import { compileProfile, type CompiledProfile, type OptionName } from "../profile/profile.js";
import { initSodium, randomSecret } from "../pseudonym/keyed-hash.js";
import { PathMapper, checkPathsDisjoint } from "../tree/paths.js";
import { walkTree, type TreeEntry } from "../tree/walk.js";
import { buildKeyPayload, type FileRecord } from "./key-payload.js";
import { WorkerPool, workersAvailable } from "./pool.js";
import { addCounts, buildReport, type QuarantineEntry, type RunReport } from "./report.js";
import { TaskRunner, type FileKind, type LearnResult, type Problem, type RunSetup, type WriteResult, type WriteTask } from "./tasks.js";

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
  onEvent?: (event: RunEvent) => void;
}

export type RunEvent =
  | { type: "phase"; phase: "scan" | "learn" | "write" | "key" }
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

/**
 * Staging folders of runs in progress, removed by `removeStagingFolders` when
 * the process is interrupted, so that no partial output is left behind.
 */
const activeStaging = new Set<string>();

const MIN_FILES_FOR_WORKERS = 16;

export function removeStagingFolders(): string[] {
  const left: string[] = [];
  for (const path of activeStaging) {
    try {
      // Worker threads may still be writing into the folder, hence the retries.
      rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    } catch {
      left.push(path);
    }
  }
  activeStaging.clear();
  return left;
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function checkArguments(options: AnonymizeOptions, keyPath: string, reportPath: string): Promise<void> {
  let info;
  try {
    info = await stat(options.input);
  } catch {
    throw new UsageError("INPUT does not exist or cannot be read", { hint: "pass the folder to de-identify as INPUT" });
  }
  if (!info.isDirectory()) {
    throw new UsageError("INPUT is not a folder", { hint: "pass the folder that holds the files to de-identify" });
  }
  if (await pathExists(options.output)) {
    throw new DeidError("OUTPUT_EXISTS", "OUTPUT already exists", {
      hint: "choose a new OUTPUT path; deidkit never writes into an existing folder",
    });
  }
  if (!(await pathExists(dirname(resolve(options.output))))) {
    throw new UsageError("the folder for OUTPUT does not exist", {
      path: dirname(resolve(options.output)),
      hint: "create the parent folder first, because deidkit creates only OUTPUT itself",
    });
  }
  await checkPathsDisjoint(options.input, options.output, keyPath);
  await checkReportFolder(options.input, options.output, reportPath);
  for (const [path, what] of [[keyPath, "key file"], [reportPath, "report"]] as const) {
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

  async run(keyPath: string, reportPath: string): Promise<AnonymizeResult> {
    this.emit({ type: "phase", phase: "scan" });
    this.entries = await walkTree(this.options.input);
    const regularFiles: TreeEntry[] = [];
    for (const entry of this.entries) {
      if (entry.kind === "symlink") this.quarantine.set(entry, { reason: "SYMLINK", message: "symbolic link not followed" });
      else if (entry.kind === "special") this.quarantine.set(entry, { reason: "SPECIAL_FILE", message: "not a regular file (FIFO, socket or device)" });
      else regularFiles.push(entry);
    }
    const jobs = Math.min(this.options.jobs ?? 1, regularFiles.length);
    // Starting a worker costs about as much as a few small files, so small trees stay in this thread.
    const worthWorkers = regularFiles.length >= MIN_FILES_FOR_WORKERS;
    this.pool = jobs > 1 && worthWorkers && workersAvailable() ? new WorkerPool(jobs, this.setup) : undefined;
    try {
      const acceptedFiles = await this.learnPass(regularFiles);
      const terms = this.registry.allTerms();
      const paths = new PathMapper(new TextCleaner(terms, uidMapper(this.setup.secret)));
      for (const entry of this.entries) this.outputPathOf.set(entry, paths.map(entry.relativePath));
      if (this.options.dryRun) return this.planOnly(acceptedFiles, keyPath, reportPath);
      return await this.writeAndPublish(acceptedFiles, terms, keyPath, reportPath);
    } finally {
      await this.pool?.close();
    }
  }

  /** Pass 1: learns every file's identifiers; returns the files that will be written, in tree order. */
  private async learnPass(regularFiles: TreeEntry[]): Promise<TreeEntry[]> {
    this.emit({ type: "phase", phase: "learn" });
    const onDone = this.progress("learn", regularFiles.length);
    const learnt = this.pool
      ? await this.pool.run<LearnResult>(regularFiles.map((entry) => ({ kind: "learn", path: entry.path, relativePath: entry.relativePath })), onDone)
      : await runLocally(regularFiles, (entry) => this.local.learn(entry.path, entry.relativePath), onDone);
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
   * one pseudonym (which merges their data) or a --map pseudonym is itself an
   * identifier; warns about --map rows that match no patient.
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

  private planOnly(acceptedFiles: TreeEntry[], keyPath: string, reportPath: string): AnonymizeResult {
    for (const entry of acceptedFiles) {
      this.files.push({ input: entry.relativePath, output: this.outputPathOf.get(entry)!, status: "written" });
    }
    const published = publishedFolders(acceptedFiles.map((entry) => this.outputPathOf.get(entry)!));
    this.entries.forEach((entry, index) => {
      const problem = this.quarantine.get(entry);
      const outputPath = problem ? leftOutName(this.outputPathOf.get(entry)!, index, published) : this.outputPathOf.get(entry)!;
      this.emit({ type: "planned", outputPath, action: problem ? "quarantine" : "write", reason: problem?.reason });
    });
    return { report: this.buildReport(true), keyPath, reportPath, outputPath: this.options.output };
  }

  /** Pass 2: writes every file into a staging folder, seals the key, then publishes OUTPUT. */
  private async writeAndPublish(acceptedFiles: TreeEntry[], terms: Term[], keyPath: string, reportPath: string): Promise<AnonymizeResult> {
    this.emit({ type: "phase", phase: "write" });
    const staging = `${this.options.output.replace(/[/\\]+$/, "")}.deidkit-partial-${randomBytes(4).toString("hex")}`;
    await mkdir(staging, { recursive: false });
    activeStaging.add(staging);
    try {
      await this.writePass(acceptedFiles, terms, staging);
      const report = this.buildReport(false);
      this.emit({ type: "phase", phase: "key" });
      const payload = buildKeyPayload({
        secret: this.setup.secret,
        secretSupplied: this.options.secret !== undefined,
        registry: this.registry,
        uidMap: this.uidMap,
        files: this.files,
        report,
      });
      await this.options.writeKey(keyPath, payload, {
        patients: this.registry.patients.size,
        files: report.filesWritten,
        uids: this.uidMap.size,
        profile: report.options.join(",") || "basic",
      });
      await rename(staging, this.options.output);
      activeStaging.delete(staging);
      await writeReport(reportPath, report);
      return { report, keyPath, reportPath, outputPath: this.options.output };
    } finally {
      if (activeStaging.has(staging)) {
        await rm(staging, { recursive: true, force: true });
        activeStaging.delete(staging);
      }
    }
  }

  private async writePass(acceptedFiles: TreeEntry[], terms: Term[], staging: string): Promise<void> {
    const tasks: WriteTask[] = [];
    for (const entry of acceptedFiles) {
      const finalPath = join(staging, this.outputPathOf.get(entry)!);
      await mkdir(dirname(finalPath), { recursive: true });
      const tempPath = join(dirname(finalPath), `.deidkit-tmp-${randomBytes(6).toString("hex")}`);
      tasks.push({ path: entry.path, relativePath: entry.relativePath, tempPath, finalPath, fileKind: this.fileKind.get(entry)! });
    }
    const onDone = this.progress("write", tasks.length);
    let written: WriteResult[];
    if (this.pool) {
      await this.pool.useTerms(terms);
      written = await this.pool.run<WriteResult>(tasks.map((task) => ({ kind: "write", task })), onDone);
    } else {
      this.local.useTerms(terms);
      written = await runLocally(tasks, (task) => this.local.write(task), onDone);
    }
    const failedFolders: string[] = [];
    acceptedFiles.forEach((entry, index) => {
      const result = written[index];
      if (!result.ok) {
        this.quarantine.set(entry, result);
        failedFolders.push(dirname(tasks[index].finalPath));
        return;
      }
      for (const [original, replacement] of result.uids) this.uidMap.set(original, replacement);
      if (this.fileKind.get(entry) === "pass-through") this.passedThrough.push(this.outputPathOf.get(entry)!);
      this.totals.push(result.counts);
      this.files.push({ input: entry.relativePath, output: this.outputPathOf.get(entry)!, status: "written", sopInstanceUid: result.sopInstanceUid });
    });
    await removeEmptyFolders(failedFolders, staging);
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
  const keyPath = options.keyOut ?? `${options.output.replace(/[/\\]+$/, "")}.deidkey`;
  const reportPath = options.reportOut ?? `${options.output.replace(/[/\\]+$/, "")}.report.json`;
  await checkArguments(options, keyPath, reportPath);

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
  return new AnonymizeRun(options, profile, setup).run(keyPath, reportPath);
}

/** Every folder that holds a written file, and its ancestors ("" is OUTPUT itself). */
function publishedFolders(outputPaths: readonly string[]): Set<string> {
  const folders = new Set<string>([""]);
  for (const path of outputPaths) {
    const parts = path.split("/").slice(0, -1);
    for (let depth = 1; depth <= parts.length; depth++) folders.add(parts.slice(0, depth).join("/"));
  }
  return folders;
}

/**
 * Names a file that was left out without using its own name: the name (and
 * a folder that will not be published) may hold identifiers that the run
 * never learnt, because the file that carries them could not be read. The
 * file becomes "file-N.ext", N being its position (from 1) in the byte order
 * of INPUT's paths; the key maps it back to the input path.
 */
function leftOutName(outputPath: string, index: number, published: ReadonlySet<string>): string {
  const slash = outputPath.lastIndexOf("/");
  const folder = slash < 0 ? "" : outputPath.slice(0, slash);
  const extension = /\.[A-Za-z0-9]{1,5}$/.exec(outputPath.slice(slash + 1))?.[0] ?? "";
  const name = `file-${index + 1}${extension}`;
  if (folder === "") return name;
  return published.has(folder) ? `${folder}/${name}` : `(unpublished folder)/${name}`;
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

async function writeReport(path: string, report: RunReport): Promise<void> {
  const temp = `${path}.deidkit-tmp-${randomBytes(4).toString("hex")}`;
  await writeFile(temp, `${JSON.stringify(report, null, 2)}\n`, { flag: "wx", mode: 0o644 });
  await rename(temp, path);
}

async function runLocally<T, R>(items: readonly T[], task: (item: T) => Promise<R>, onDone: (done: number) => void): Promise<R[]> {
  const results: R[] = [];
  for (const item of items) {
    results.push(await task(item));
    onDone(results.length);
  }
  return results;
}
