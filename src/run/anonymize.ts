/**
 * `anonymize`: a whole input tree into a de-identified copy, an encrypted
 * key and a run report, in two passes over the files.
 */
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readSync, rmSync } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";

import { DeidError, UsageError, isDeidError } from "../errors.js";
import { DEFAULT_READ_LIMITS, looksLikeDicom, type ReadLimits } from "../dicom/reader.js";
import { QuarantineReason, type ActionCounts } from "../deid/apply.js";
import { TextCleaner, uidMapper } from "../deid/cleaner.js";
import { IdentifierRegistry } from "../deid/identifiers.js";
import { compileProfile, type OptionName } from "../profile/profile.js";
import { initSodium, randomSecret } from "../pseudonym/keyed-hash.js";
import { PathMapper, checkPathsDisjoint } from "../tree/paths.js";
import { walkTree, type TreeEntry } from "../tree/walk.js";
import { deidentifyDicomFile, learnDicomFile, type DicomPassOptions } from "./dicom-file.js";
import { buildKeyPayload, type FileRecord } from "./key-payload.js";
import { addCounts, buildReport, type QuarantineEntry, type RunReport } from "./report.js";

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
  limits?: Partial<ReadLimits>;
  maxInflatedBytes?: number;
  onEvent?: (event: RunEvent) => void;
}

export type RunEvent =
  | { type: "phase"; phase: "scan" | "learn" | "write" | "key" }
  | { type: "progress"; phase: "learn" | "write"; done: number; total: number }
  | { type: "quarantined"; outputPath: string; reason: string; message: string }
  | { type: "planned"; outputPath: string; action: "write" | "quarantine"; reason?: string };

export interface AnonymizeResult {
  report: RunReport;
  keyPath: string;
  reportPath: string;
  outputPath: string;
}

const HEAD_BYTES = 256;

/**
 * Staging folders of runs in progress, removed by `removeStagingFolders` when
 * the process is interrupted, so that no partial output is left behind.
 */
const activeStaging = new Set<string>();

export function removeStagingFolders(): void {
  for (const path of activeStaging) rmSync(path, { recursive: true, force: true });
  activeStaging.clear();
}

function readHead(path: string): Buffer {
  const fd = openSync(path, "r");
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const count = readSync(fd, buffer, 0, HEAD_BYTES, 0);
    return buffer.subarray(0, count);
  } finally {
    closeSync(fd);
  }
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
  await checkPathsDisjoint(options.input, options.output, keyPath);
  for (const [path, what] of [[keyPath, "key file"], [reportPath, "report"]] as const) {
    if (await pathExists(path)) {
      throw new DeidError("OUTPUT_EXISTS", `the ${what} already exists`, {
        hint: `remove it or choose another path (--${what === "key file" ? "key-out" : "report"})`,
      });
    }
  }
}

function reasonOf(error: unknown): { reason: string; message: string } {
  if (error instanceof QuarantineReason) return { reason: error.reasonCode, message: error.message };
  if (isDeidError(error)) return { reason: error.code, message: error.message };
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code) return { reason: "IO", message: `cannot read the file (${code})` };
  return { reason: "INTERNAL", message: "unexpected failure while processing the file" };
}

export async function anonymize(options: AnonymizeOptions): Promise<AnonymizeResult> {
  await initSodium();
  const emit = options.onEvent ?? (() => {});
  const keyPath = options.keyOut ?? `${options.output.replace(/[/\\]+$/, "")}.deidkey`;
  const reportPath = options.reportOut ?? `${options.output.replace(/[/\\]+$/, "")}.report.json`;
  await checkArguments(options, keyPath, reportPath);

  const profile = compileProfile(options.options);
  const shiftDates = profile.options.has("retain-longitudinal-modified-dates");
  const secret = options.secret ?? randomSecret();
  const overrides = Object.entries(options.limits ?? {}).filter(([, value]) => value !== undefined);
  const limits: ReadLimits = { ...DEFAULT_READ_LIMITS, ...Object.fromEntries(overrides) };
  const passOptions: DicomPassOptions = { limits, maxInflatedBytes: options.maxInflatedBytes ?? 4 * 1024 ** 3 };
  const startedAt = new Date();

  emit({ type: "phase", phase: "scan" });
  const entries = await walkTree(options.input);
  const registry = new IdentifierRegistry(secret, { crosswalk: options.crosswalk, shiftDates });
  const quarantine = new Map<TreeEntry, { reason: string; message: string }>();
  const dicomFiles: TreeEntry[] = [];

  emit({ type: "phase", phase: "learn" });
  let done = 0;
  for (const entry of entries) {
    emit({ type: "progress", phase: "learn", done: done++, total: entries.length });
    if (entry.kind === "symlink") {
      quarantine.set(entry, { reason: "SYMLINK", message: "symbolic link not followed" });
      continue;
    }
    if (entry.kind === "special") {
      quarantine.set(entry, { reason: "SPECIAL_FILE", message: "not a regular file (FIFO, socket or device)" });
      continue;
    }
    try {
      if (!looksLikeDicom(readHead(entry.path))) {
        quarantine.set(entry, { reason: "NOT_DICOM", message: "not a DICOM file; other formats are not de-identified yet" });
        continue;
      }
      await learnDicomFile(entry.path, registry, profile, passOptions);
      dicomFiles.push(entry);
    } catch (error) {
      quarantine.set(entry, reasonOf(error));
    }
  }
  emit({ type: "progress", phase: "learn", done: entries.length, total: entries.length });

  const uidMap = new Map<string, string>();
  const mapUid = uidMapper(secret, (original, replacement) => uidMap.set(original, replacement));
  const cleaner = new TextCleaner(registry.allTerms(), mapUid);
  const paths = new PathMapper(cleaner);
  const outputPathOf = new Map<TreeEntry, string>();
  for (const entry of entries) outputPathOf.set(entry, paths.map(entry.relativePath));

  const files: FileRecord[] = [];
  const totals: ActionCounts[] = [];
  const quarantined: QuarantineEntry[] = [];
  const staging = `${options.output.replace(/[/\\]+$/, "")}.deidkit-partial-${randomBytes(4).toString("hex")}`;

  if (options.dryRun) {
    for (const entry of dicomFiles) files.push({ input: entry.relativePath, output: outputPathOf.get(entry)!, status: "written" });
    for (const entry of entries) {
      const problem = quarantine.get(entry);
      emit({ type: "planned", outputPath: outputPathOf.get(entry)!, action: problem ? "quarantine" : "write", reason: problem?.reason });
    }
  } else {
    emit({ type: "phase", phase: "write" });
    await mkdir(staging, { recursive: false });
    activeStaging.add(staging);
    try {
      done = 0;
      for (const entry of dicomFiles) {
        emit({ type: "progress", phase: "write", done: done++, total: dicomFiles.length });
        const outputPath = outputPathOf.get(entry)!;
        const finalPath = join(staging, outputPath);
        const tempPath = join(dirname(finalPath), `.deidkit-tmp-${randomBytes(6).toString("hex")}`);
        await mkdir(dirname(finalPath), { recursive: true });
        try {
          const result = await deidentifyDicomFile(entry.path, tempPath, {
            profile, cleaner, shiftDates, mapUid, patientFor: (key) => registry.patient(key),
          }, passOptions);
          await rename(tempPath, finalPath);
          totals.push(result.counts);
          files.push({ input: entry.relativePath, output: outputPath, status: "written", sopInstanceUid: result.sopInstanceUid });
        } catch (error) {
          await rm(tempPath, { force: true });
          quarantine.set(entry, reasonOf(error));
        }
      }
      emit({ type: "progress", phase: "write", done: dicomFiles.length, total: dicomFiles.length });
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      activeStaging.delete(staging);
      throw error;
    }
  }

  for (const entry of entries) {
    const problem = quarantine.get(entry);
    if (!problem) continue;
    const outputPath = outputPathOf.get(entry)!;
    quarantined.push({ path: outputPath, reason: problem.reason, message: problem.message });
    files.push({ input: entry.relativePath, output: outputPath, status: "quarantined", reason: problem.reason });
    emit({ type: "quarantined", outputPath, reason: problem.reason, message: problem.message });
  }

  const report = buildReport({
    startedAt,
    finishedAt: new Date(),
    options: [...profile.options],
    filesSeen: entries.length,
    filesWritten: files.filter((file) => file.status === "written").length,
    quarantined,
    counts: addCounts(totals),
    patients: registry.patients.size,
    uids: uidMap.size,
    dryRun: Boolean(options.dryRun),
  });
  if (options.dryRun) return { report, keyPath, reportPath, outputPath: options.output };

  try {
    emit({ type: "phase", phase: "key" });
    const payload = buildKeyPayload({ secret, registry, uidMap, files, report, secretSupplied: options.secret !== undefined });
    await options.writeKey(keyPath, payload, {
      patients: registry.patients.size,
      files: report.filesWritten,
      uids: uidMap.size,
      profile: report.options.join(",") || "basic",
    });
    await rename(staging, options.output);
    activeStaging.delete(staging);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    activeStaging.delete(staging);
    throw error;
  }
  await writeReport(reportPath, report);
  return { report, keyPath, reportPath, outputPath: options.output };
}

async function writeReport(path: string, report: RunReport): Promise<void> {
  const { writeFile } = await import("node:fs/promises");
  const temp = `${path}.deidkit-tmp-${randomBytes(4).toString("hex")}`;
  await writeFile(temp, `${JSON.stringify(report, null, 2)}\n`, { flag: "wx", mode: 0o644 });
  await rename(temp, path);
}
