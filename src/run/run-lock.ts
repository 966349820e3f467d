/**
 * The lock that keeps two `anonymize` runs from writing the same OUTPUT:
 * the file OUTPUT.deidkit-lock, created exclusively, holding the process id
 * and host name of the run that owns it.
 */
import { unlinkSync } from "node:fs";
import { link, readFile, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";

import { DeidError } from "../errors.js";

export interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

export interface RunLock {
  readonly path: string;
  /** Removes the lock file; safe to call more than once. */
  release(): Promise<void>;
}

/** Lock files held by this process, removed by `releaseHeldLocksSync` when it is interrupted. */
const heldLocks = new Set<string>();

export function lockPathFor(output: string): string {
  return `${output.replace(/[/\\]+$/, "")}.deidkit-lock`;
}

/** True when a process with this id exists on this host (EPERM means it exists but belongs to another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid === "number" && Number.isInteger(value.pid) && value.pid > 0 && typeof value.host === "string") {
      return { pid: value.pid, host: value.host, startedAt: String(value.startedAt ?? "") };
    }
  } catch {
    // fall through: a lock file that is not ours, or damaged
  }
  return undefined;
}

/**
 * Creates the lock file with its full content in one step: the content is
 * written under a name of this process, then hard-linked to the lock path,
 * which fails with EEXIST when another run holds the lock. So no run ever
 * reads an empty lock file.
 */
async function tryCreate(path: string, owner: LockOwner): Promise<boolean> {
  const temp = `${path}.${owner.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(owner)}\n`, { mode: 0o644 });
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    await unlink(temp).catch(() => {});
  }
}

/**
 * Takes the lock for OUTPUT or raises LOCKED. A lock left by a process that
 * no longer runs on this host is stale: it is replaced, and `onStale` is
 * called with a message. A lock from another host is never replaced, because its process
 * cannot be checked from here.
 */
export async function acquireRunLock(output: string, onStale: (message: string) => void = () => {}): Promise<RunLock> {
  const path = lockPathFor(output);
  const owner: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await tryCreate(path, owner)) {
      heldLocks.add(path);
      return {
        path,
        release: async () => {
          if (!heldLocks.delete(path)) return;
          await unlink(path).catch(() => {});
        },
      };
    }
    const text = await readFile(path, "utf8").catch(() => undefined);
    if (text === undefined) continue; // removed meanwhile: try again
    const holder = parseOwner(text);
    if (!holder) {
      throw new DeidError("LOCKED", "the lock file of OUTPUT is not a deidkit lock, or is damaged", {
        path,
        hint: "make sure no deidkit run is writing OUTPUT, then delete the lock file and run again",
      });
    }
    if (holder.host !== owner.host) {
      throw new DeidError("LOCKED", `another deidkit run (process ${holder.pid} on host ${holder.host}) holds the lock of OUTPUT`, {
        path,
        hint: "wait for that run to finish; if it no longer runs, delete the lock file and run again with --resume",
      });
    }
    if (processAlive(holder.pid)) {
      throw new DeidError("LOCKED", `another deidkit run (process ${holder.pid}) is writing OUTPUT`, {
        path,
        hint: "wait for it to finish, or stop it; deidkit runs one writer per OUTPUT",
      });
    }
    // NOTE: two runs that find the same stale lock at the same moment could
    // both pass this check, and then the second one removes the first one's
    // lock. The re-read below narrows that window to a few system calls.
    const again = await readFile(path, "utf8").catch(() => undefined);
    if (again === text) await unlink(path).catch(() => {});
    onStale(`removed a stale lock of OUTPUT left by process ${holder.pid}, which no longer runs`);
  }
  throw new DeidError("LOCKED", "could not take the lock of OUTPUT: another run took it meanwhile", {
    path,
    hint: "wait for the other run to finish",
  });
}

/** Removes every lock file this process holds; for signal handlers, which cannot wait. */
export function releaseHeldLocksSync(): void {
  for (const path of heldLocks) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
  heldLocks.clear();
}
