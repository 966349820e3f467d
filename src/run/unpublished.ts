/**
 * Paths that commands in this process have written but not published:
 * staging folders, state and journal files, the key and report written just
 * before publishing, and scratch folders with extracted members.
 * `removeStagingFolders` removes them when the process is interrupted, so
 * that nothing partial or in clear text is left behind. This is a module of
 * its own so that the signal handlers need not load the whole run.
 */
import { rmSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";

import { processAlive, releaseHeldLocksSync } from "./run-lock.js";

export const unpublished = new Set<string>();

/**
 * Removes every unpublished path of this process and releases its run
 * locks; for SIGINT and SIGTERM handlers. Returns the paths it could not
 * remove.
 */
export function removeStagingFolders(): string[] {
  const left: string[] = [];
  for (const path of unpublished) {
    try {
      // Worker threads may still be writing into the folder, hence the retries.
      rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    } catch {
      left.push(path);
    }
  }
  unpublished.clear();
  releaseHeldLocksSync();
  return left;
}

/**
 * Runs `work` with a new private folder (mode 0700) under `parent`, for
 * extracted archive members and other clear-text copies. An interrupt
 * removes it with the other unpublished paths, and the end of `work`
 * removes it in any case.
 */
export async function withScratchFolder<T>(parent: string, prefix: string, work: (folder: string) => Promise<T>): Promise<T> {
  const folder = await mkdtemp(join(parent, prefix));
  unpublished.add(folder);
  try {
    return await work(folder);
  } finally {
    await rm(folder, { recursive: true, force: true });
    unpublished.delete(folder);
  }
}

/**
 * Runs `work` like withScratchFolder, in the system's temporary folder,
 * which other processes share. The folder is named
 * deidkit-KIND-PID@HOST-XXXXXX, so that folders of the same kind left by a
 * process of this host that was killed with SIGKILL can be removed first.
 */
export async function withTemporaryScratch<T>(kind: string, work: (folder: string) => Promise<T>): Promise<T> {
  const parent = tmpdir();
  const prefix = `deidkit-${kind}-`;
  await removeOrphanedScratch(parent, prefix);
  return withScratchFolder(parent, `${prefix}${process.pid}@${hostname()}-`, work);
}

async function removeOrphanedScratch(parent: string, prefix: string): Promise<void> {
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const owner = /^(\d+)@(.+)-[^-]{6}$/.exec(name.slice(prefix.length));
    if (!owner || owner[2] !== hostname() || processAlive(Number(owner[1]))) continue;
    await rm(join(parent, name), { recursive: true, force: true });
  }
}
