/**
 * The audit log: one JSON line per command run, appended to the file named
 * by `--audit-log FILE` or the DEIDKIT_AUDIT_LOG environment variable.
 *
 * A line holds the time, user, host, command, the options that are safe to
 * record (see audit-options.ts), counts from the command's result, the exit
 * code and the tool version. It never holds a secret, a passphrase or a
 * value read from input files.
 */
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { hostname, userInfo } from "node:os";

import { DeidError, UsageError } from "../errors.js";
import { TOOL_NAME, TOOL_VERSION } from "../version.js";

export const AUDIT_LOG_ENV = "DEIDKIT_AUDIT_LOG";

/** One line of the audit log. */
export interface AuditRecord {
  /** When the command finished, as `toISOString` writes it. */
  time: string;
  user: string;
  host: string;
  /** The command and subcommand, such as "anonymize" or "key merge". */
  command: string;
  options: Record<string, unknown>;
  counts: Record<string, number>;
  exitCode: number;
  tool: string;
  version: string;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    // userInfo throws when the user id has no passwd entry, as in some containers.
    return `uid ${process.getuid?.() ?? "unknown"}`;
  }
}

/** Opens an audit log for appending, creating it with mode 0600. Symbolic links are not followed. */
export async function openAuditLog(path: string): Promise<FileHandle> {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0);
  try {
    return await open(path, flags, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    const hint =
      code === "ELOOP"
        ? "the audit log must not be a symbolic link; name the file itself"
        : "check that the folder exists and is writable, or name another file with --audit-log or DEIDKIT_AUDIT_LOG";
    throw new UsageError(`${path}: cannot open the audit log for appending (${code})`, { path, hint });
  }
}

/**
 * Appends `record` as one line with a single write(). With O_APPEND the
 * kernel places each write at the end of the file, so lines from
 * concurrent runs on a local file system do not interleave.
 */
export async function appendAuditRecord(handle: FileHandle, record: AuditRecord, path: string): Promise<void> {
  const line = Buffer.from(`${JSON.stringify(record)}\n`, "utf8");
  const { bytesWritten } = await handle.write(line, 0, line.length);
  if (bytesWritten !== line.length) {
    throw new DeidError("IO", `${path}: the audit line was written only in part (${bytesWritten} of ${line.length} bytes)`, {
      path,
      hint: "check free disk space; the last line of the audit log is incomplete",
    });
  }
}

/**
 * The audit state of one command run: opened before the command's action
 * runs, so an unwritable log stops the command before it does anything,
 * and written once the exit code is known.
 */
export class AuditSession {
  private handle?: FileHandle;
  private path?: string;
  private command = "";
  private options: Record<string, unknown> = {};
  private counts: Record<string, number> = {};

  /** Opens the log at `path` for the command about to run. */
  async begin(path: string, command: string, options: Record<string, unknown>): Promise<void> {
    this.handle = await openAuditLog(path);
    this.path = path;
    this.command = command;
    this.options = options;
  }

  /** Adds counts from the command's result (files written, conflicts and so on); never identifiers. */
  addCounts(counts: Record<string, number>): void {
    Object.assign(this.counts, counts);
  }

  /** Appends the line for this run, if a log was opened, and closes the log. */
  async finish(exitCode: number): Promise<void> {
    const handle = this.handle;
    if (handle === undefined || this.path === undefined) return;
    this.handle = undefined;
    try {
      await appendAuditRecord(
        handle,
        {
          time: new Date().toISOString(),
          user: currentUser(),
          host: hostname(),
          command: this.command,
          options: this.options,
          counts: this.counts,
          exitCode,
          tool: TOOL_NAME,
          version: TOOL_VERSION,
        },
        this.path,
      );
    } finally {
      await handle.close();
    }
  }
}
