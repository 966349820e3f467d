/**
 * `reidentify`: a de-identified tree (or one file) into a new copy with
 * the originals the key records put back. The copy appears at once: files
 * are written under temporary names in a private staging folder, which is
 * renamed to OUTPUT at the end.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { chmod, link, mkdir, realpath, rename, rm, rmdir, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";

import { DeidError, UsageError } from "../errors.js";
import { DEFAULT_READ_LIMITS } from "../dicom/reader.js";
import { PathMapper } from "../tree/paths.js";
import { walkTree } from "../tree/walk.js";
import type { DicomPassOptions } from "../run/dicom-file.js";
import { problemOf } from "../run/tasks.js";
import { FileRestorer } from "./files.js";
import type { ReverseKey } from "./key-index.js";

export interface ReidentifyOptions {
  /** De-identified folder or file; never modified. */
  input: string;
  /** New folder (or file, for a file INPUT); must not exist. */
  output: string;
  key: ReverseKey;
  passOptions?: DicomPassOptions;
  onEvent?: (event: ReidentifyEvent) => void;
}

export type ReidentifyEvent =
  | { type: "progress"; done: number; total: number }
  | { type: "left-out"; path: string; reason: string; message: string };

export interface LeftOutFile {
  /** Path in INPUT (the de-identified tree), which names no patient. */
  path: string;
  reason: string;
  message: string;
}

export interface ReidentifyResult {
  filesWritten: number;
  /** Files written whose path the key records, so their original path was restored. */
  pathsFromKey: number;
  leftOut: LeftOutFile[];
  /** Values in patient ID fields of non-DICOM files that no pseudonym of the key matched. */
  unknownPatientIds: number;
}

const DEFAULT_PASS_OPTIONS: DicomPassOptions = { limits: DEFAULT_READ_LIMITS, maxInflatedBytes: 4 * 1024 ** 3 };

/** Staging folders and temporary files of runs in progress, removed on interrupt. */
const activeStaging = new Set<string>();

/** Removes the staging folders of unfinished runs; returns those that could not be removed. */
export function removeReidentifyStaging(): string[] {
  const left: string[] = [];
  for (const path of activeStaging) {
    try {
      rmSync(path, { recursive: true, force: true });
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

function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

async function checkArguments(input: string, output: string): Promise<"file" | "folder"> {
  let info;
  try {
    info = await stat(input);
  } catch {
    throw new UsageError("INPUT does not exist or cannot be read", { hint: "pass the de-identified folder or file as INPUT" });
  }
  if (!info.isDirectory() && !info.isFile()) {
    throw new UsageError("INPUT is neither a folder nor a regular file", { hint: "pass the de-identified folder or file as INPUT" });
  }
  if (await pathExists(output)) {
    throw new DeidError("OUTPUT_EXISTS", "OUTPUT already exists", {
      hint: "choose a new OUTPUT path; deidkit never writes into an existing folder or over a file",
    });
  }
  const parent = dirname(resolve(output));
  let realParent: string;
  try {
    realParent = await realpath(parent);
  } catch {
    throw new UsageError("the folder for OUTPUT does not exist", { path: parent, hint: "create the parent folder first" });
  }
  const realOutput = join(realParent, basename(resolve(output)));
  const realInput = await realpath(input);
  if (isInside(realOutput, realInput) || isInside(realInput, realOutput)) {
    throw new DeidError("PATH_OVERLAP", "OUTPUT and INPUT overlap: one is inside the other", {
      hint: "choose an OUTPUT outside INPUT; deidkit never writes into its input",
    });
  }
  return info.isDirectory() ? "folder" : "file";
}

/**
 * Re-identifies a tree or one file; see the module comment.
 * NOTE: files are restored one after another in this thread, unlike anonymize, which uses worker threads.
 */
export async function reidentify(options: ReidentifyOptions): Promise<ReidentifyResult> {
  const kind = await checkArguments(options.input, options.output);
  const restorer = new FileRestorer(options.key, options.passOptions ?? DEFAULT_PASS_OPTIONS);
  if (kind === "file") return reidentifyFile(options, restorer);
  return reidentifyFolder(options, restorer);
}

function temporaryName(folder: string): string {
  return join(folder, `.deidkit-tmp-${randomBytes(6).toString("hex")}`);
}

async function reidentifyFile(options: ReidentifyOptions, restorer: FileRestorer): Promise<ReidentifyResult> {
  const temp = temporaryName(dirname(resolve(options.output)));
  activeStaging.add(temp);
  try {
    await restorer.restore(options.input, basename(options.input), temp);
    // link fails when OUTPUT appeared in the meantime, where rename would replace it.
    await link(temp, options.output);
    return { filesWritten: 1, pathsFromKey: 0, leftOut: [], unknownPatientIds: restorer.unknownPatientIds };
  } finally {
    await rm(temp, { force: true });
    activeStaging.delete(temp);
  }
}

/** Chooses each file's path in OUTPUT: its input path from the key, or its own path with pseudonyms replaced. */
function planPaths(relativePaths: readonly string[], key: ReverseKey): Map<string, { target: string; fromKey: boolean } | undefined> {
  const mapper = new PathMapper(key.cleaner);
  const used = new Set<string>();
  const plan = new Map<string, { target: string; fromKey: boolean } | undefined>();
  const recorded = relativePaths.filter((path) => key.inputPathOf(path) !== undefined);
  for (const path of recorded) {
    const target = key.inputPathOf(path)!;
    used.add(target.toLowerCase());
    plan.set(path, { target, fromKey: true });
  }
  for (const path of relativePaths) {
    if (plan.has(path)) continue;
    const target = mapper.map(path);
    // A file the key does not record may be named like a restored one; it is left out rather than overwrite it.
    plan.set(path, used.has(target.toLowerCase()) ? undefined : { target, fromKey: false });
    used.add(target.toLowerCase());
  }
  return plan;
}

async function reidentifyFolder(options: ReidentifyOptions, restorer: FileRestorer): Promise<ReidentifyResult> {
  const emit = options.onEvent ?? (() => {});
  const entries = await walkTree(options.input);
  const leftOut: LeftOutFile[] = [];
  const leaveOut = (path: string, reason: string, message: string): void => {
    leftOut.push({ path, reason, message });
    emit({ type: "left-out", path, reason, message });
  };
  const files = entries.filter((entry) => {
    if (entry.kind === "file") return true;
    leaveOut(entry.relativePath, entry.kind === "symlink" ? "SYMLINK" : "SPECIAL_FILE", "not a regular file; not followed");
    return false;
  });
  const plan = planPaths(files.map((entry) => entry.relativePath), options.key);

  const output = options.output.replace(/[/\\]+$/, "");
  const staging = `${output}.deidkit-partial-${randomBytes(4).toString("hex")}`;
  await mkdir(staging, { mode: 0o700 });
  activeStaging.add(staging);
  try {
    let filesWritten = 0;
    let pathsFromKey = 0;
    let done = 0;
    for (const entry of files) {
      const planned = plan.get(entry.relativePath);
      if (!planned) {
        leaveOut(entry.relativePath, "PATH_CONFLICT", "its restored name is the path of another restored file");
      } else if (await writeOne(restorer, entry.path, entry.relativePath, staging, planned.target, leaveOut)) {
        filesWritten++;
        if (planned.fromKey) pathsFromKey++;
      }
      emit({ type: "progress", done: ++done, total: files.length });
    }
    await chmod(staging, 0o700);
    if (await pathExists(options.output)) {
      throw new DeidError("OUTPUT_EXISTS", "OUTPUT appeared while the run was writing", { hint: "choose a new OUTPUT path" });
    }
    await rename(staging, options.output);
    activeStaging.delete(staging);
    return { filesWritten, pathsFromKey, leftOut, unknownPatientIds: restorer.unknownPatientIds };
  } finally {
    if (activeStaging.has(staging)) {
      await rm(staging, { recursive: true, force: true });
      activeStaging.delete(staging);
    }
  }
}

/** Writes one restored file under a temporary name and renames it; returns false when it is left out. */
async function writeOne(
  restorer: FileRestorer,
  path: string,
  relativePath: string,
  staging: string,
  target: string,
  leaveOut: (path: string, reason: string, message: string) => void,
): Promise<boolean> {
  const finalPath = join(staging, ...target.split("/"));
  const relativeToStaging = relative(staging, finalPath);
  if (relativeToStaging.startsWith("..") || isAbsolute(relativeToStaging)) {
    leaveOut(relativePath, "PATH_INVALID", "its restored path would lie outside OUTPUT");
    return false;
  }
  const folder = dirname(finalPath);
  const created = await mkdir(folder, { recursive: true, mode: 0o700 });
  const temp = temporaryName(folder);
  try {
    await restorer.restore(path, relativePath, temp);
    await rename(temp, finalPath);
    return true;
  } catch (error) {
    await rm(temp, { force: true });
    const problem = problemOf(error);
    leaveOut(relativePath, problem.reason, problem.message);
    if (created) await removeEmptyFolders(folder, staging);
    return false;
  }
}

/** Removes `folder` and its parents up to (not including) `root` while they are empty. */
async function removeEmptyFolders(folder: string, root: string): Promise<void> {
  let current = folder;
  while (current.length > root.length && current.startsWith(root)) {
    try {
      await rmdir(current);
    } catch {
      return; // not empty
    }
    current = dirname(current);
  }
}
