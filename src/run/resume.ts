/**
 * What `anonymize --resume` needs to finish a run that was killed: a state
 * file next to OUTPUT that records the run's settings and how far it got,
 * and a journal inside the staging folder that records each completed file.
 *
 * Neither contains a value read from the input in clear text. The state file
 * holds keyed hashes only. The journal's entries (input paths, original
 * UIDs) are encrypted with a key derived from the run's secret, so only a
 * run with the same secret can read them.
 */
import { randomBytes } from "node:crypto";
import { appendFileSync, lstatSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";

import sodium from "libsodium-wrappers-sumo";

import { DeidError } from "../errors.js";
import { keyedHash } from "../pseudonym/keyed-hash.js";
import type { WriteResult } from "./tasks.js";

export const STATE_FORMAT = "deidkit-run-state";
export const STATE_VERSION = 1;

/**
 * How far a run got. "write": files go into the staging folder. "key": the
 * key file is being written. "report": the report is being written.
 * "publish": key and report are complete; the staging folder is renamed to
 * OUTPUT next.
 */
export type RunPhase = "write" | "key" | "report" | "publish";

export interface RunState {
  format: typeof STATE_FORMAT;
  version: number;
  /** Keyed hash of a constant, compared to check that a resuming run has the same secret. */
  secretCheck: string;
  /** Keyed hash of the run's settings (paths, profile options, limits, --map). */
  settingsCheck: string;
  phase: RunPhase;
}

export function secretCheckOf(secret: Uint8Array): string {
  return Buffer.from(keyedHash(secret, "resume-secret-check", "")).toString("hex");
}

export function settingsCheckOf(secret: Uint8Array, settings: unknown): string {
  return Buffer.from(keyedHash(secret, "resume-settings-check", JSON.stringify(settings))).toString("hex");
}

export async function readRunState(path: string): Promise<RunState> {
  let value: Partial<RunState>;
  try {
    value = JSON.parse(await readFile(path, "utf8")) as Partial<RunState>;
  } catch {
    throw new DeidError("CONFIG", "the state file of the interrupted run cannot be read", {
      path,
      hint: "delete the state file and the OUTPUT.deidkit-partial folder, then run again without --resume",
    });
  }
  const phases: RunPhase[] = ["write", "key", "report", "publish"];
  if (value.format !== STATE_FORMAT || value.version !== STATE_VERSION || !phases.includes(value.phase as RunPhase)) {
    throw new DeidError("CONFIG", "the state file of the interrupted run has an unknown format or version", {
      path,
      hint: "finish it with the deidkit version that started it, or delete it and the OUTPUT.deidkit-partial folder",
    });
  }
  return value as RunState;
}

/** Replaces the state file in one rename, so that a kill leaves the old or the new state, never a mix. */
export async function writeRunState(path: string, state: RunState): Promise<void> {
  const temp = `${path}.tmp`;
  await writeFile(temp, `${JSON.stringify(state)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/**
 * Size, modification time and inode of a file. A resumed run reuses an
 * output only if its input still has the signature recorded when the output
 * was written, and the output still has its own recorded signature.
 */
export interface FileSignature {
  size: number;
  mtimeMs: number;
  ino: number;
}

/** Returns the signature of a file; a file that cannot be examined gets one that matches no recorded signature. */
export function fileSignature(path: string): FileSignature {
  try {
    const info = lstatSync(path);
    return info.isFile() ? { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino } : { size: -1, mtimeMs: -1, ino: -1 };
  } catch {
    return { size: -1, mtimeMs: -1, ino: -1 };
  }
}

export function sameSignature(a: FileSignature | undefined, b: FileSignature): boolean {
  return a !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/** One completed file of the write pass. */
export interface JournalEntry {
  /** Input path relative to INPUT. */
  input: string;
  /** Output path relative to OUTPUT. */
  output: string;
  /** Carries the signatures of the input and of the output taken when the output was written. */
  result: Extract<WriteResult, { ok: true }>;
}

/**
 * An append-only file of encrypted entries, one line each (base64 of nonce
 * and XSalsa20-Poly1305 box). A line cut short by a kill fails to decrypt
 * and is ignored, and so is its file.
 */
export class ResumeJournal {
  private readonly key: Uint8Array;

  constructor(
    readonly path: string,
    secret: Uint8Array,
  ) {
    this.key = keyedHash(secret, "resume-journal-key", "", sodium.crypto_secretbox_KEYBYTES);
  }

  /** Appends the entries in one write; a kill during it leaves whole lines and at most one cut line. */
  append(entries: readonly JournalEntry[]): void {
    if (entries.length === 0) return;
    // One call for every nonce of the group. libsodium's own randombytes_buf
    // requests 4 bytes from WebCrypto at a time, which cost 0.05 ms per file.
    const nonces = randomBytes(sodium.crypto_secretbox_NONCEBYTES * entries.length);
    const lines = entries.map((entry, index) => {
      const nonce = nonces.subarray(index * sodium.crypto_secretbox_NONCEBYTES, (index + 1) * sodium.crypto_secretbox_NONCEBYTES);
      const box = sodium.crypto_secretbox_easy(Buffer.from(JSON.stringify(entry), "utf8"), nonce, this.key);
      return `${Buffer.concat([Buffer.from(nonce), Buffer.from(box)]).toString("base64")}\n`;
    });
    appendFileSync(this.path, lines.join(""), { mode: 0o600 });
  }

  /** Reads every entry that decrypts, keyed by output path; a missing journal has none. */
  async load(): Promise<Map<string, JournalEntry>> {
    const entries = new Map<string, JournalEntry>();
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch {
      return entries;
    }
    for (const line of text.split("\n")) {
      const entry = this.open(line);
      if (entry) entries.set(entry.output, entry);
    }
    return entries;
  }

  private open(line: string): JournalEntry | undefined {
    const bytes = Buffer.from(line, "base64");
    if (bytes.length <= sodium.crypto_secretbox_NONCEBYTES + sodium.crypto_secretbox_MACBYTES) return undefined;
    try {
      const nonce = bytes.subarray(0, sodium.crypto_secretbox_NONCEBYTES);
      const plain = sodium.crypto_secretbox_open_easy(bytes.subarray(sodium.crypto_secretbox_NONCEBYTES), nonce, this.key);
      return JSON.parse(Buffer.from(plain).toString("utf8")) as JournalEntry;
    } catch {
      return undefined;
    }
  }
}
