/**
 * Creation of secret output files that never replace an existing file and
 * appear complete or not at all.
 */

import { randomBytes } from "node:crypto";
import { link, lstat, open, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

import { DeidError } from "../errors.js";

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;
}

export function outputExistsError(path: string): DeidError {
  return new DeidError("OUTPUT_EXISTS", `${path}: file already exists, and deidkit never overwrites it`, {
    path,
    hint: "Choose another output path.",
  });
}

function ioError(path: string, action: string, cause: unknown): DeidError {
  const code = errorCode(cause);
  let hint = "Check that the directory exists and is writable.";
  if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP") {
    hint = "The file system must support hard links; write the file to a local disk instead.";
  }
  return new DeidError("IO", `${path}: cannot ${action}${code === undefined ? "" : ` (${code})`}`, {
    path,
    hint,
    cause,
  });
}

/** Throws OUTPUT_EXISTS when `path` exists, including as a dangling symbolic link. */
export async function assertOutputAbsent(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch (error) {
    if (errorCode(error) === "ENOENT") {
      return;
    }
    throw ioError(path, "check whether the file exists", error);
  }
  throw outputExistsError(path);
}

/**
 * Creates `path` with permission bits `mode` and the content that
 * `writeContent` writes, failing with OUTPUT_EXISTS if `path` exists.
 *
 * The content goes to a temporary file in the same directory (opened with
 * `wx` and mode 0600), which is fsynced and then hard-linked to `path`. The
 * link fails with EEXIST if another process created `path` meanwhile, so no
 * file is ever replaced. The temporary name is removed in every case.
 */
export async function writeFileExclusive(
  path: string,
  mode: number,
  writeContent: (handle: FileHandle) => Promise<void>,
): Promise<void> {
  await assertOutputAbsent(path);
  const directory = dirname(path);
  const tempPath = join(directory, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  let handle: FileHandle;
  try {
    handle = await open(tempPath, "wx", 0o600);
  } catch (error) {
    throw ioError(path, "create a temporary file in its directory", error);
  }
  try {
    try {
      // chmod sets the exact mode whatever the process umask is.
      await handle.chmod(mode);
      await writeContent(handle);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(tempPath, path);
    } catch (error) {
      throw errorCode(error) === "EEXIST" ? outputExistsError(path) : ioError(path, "publish the file", error);
    }
  } finally {
    await unlink(tempPath).catch(() => undefined);
  }
  await syncDirectory(directory);
}

/** Flushes the directory entry of a new file to disk. */
async function syncDirectory(directory: string): Promise<void> {
  // NOTE: opening a directory for fsync fails on Windows; the file itself is already synced there.
  let handle: FileHandle | undefined;
  try {
    handle = await open(directory, "r");
    await handle.sync();
  } catch {
    // The file is complete and published; only its durability after a power loss is weaker.
  } finally {
    await handle?.close();
  }
}
