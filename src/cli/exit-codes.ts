/** Exit codes of the deidkit command, documented in docs/cli.md. */
import { isDeidError, type ErrorCode } from "../errors.js";

export const EXIT = {
  /** Every input was de-identified (or: verified clean, decrypted). */
  OK: 0,
  /** The run finished, but some inputs were left out; the report lists them. */
  INCOMPLETE: 1,
  /** Usage or configuration error found before anything was written. */
  USAGE: 2,
  /** A key file could not be opened: wrong identity, tampered, truncated or unknown version. */
  KEY: 3,
  /** The run failed while reading or writing (I/O error, full disk); nothing was published. */
  FAILED: 4,
  /** A defect in deidkit; please report it. */
  INTERNAL: 70,
  /** Interrupted by a signal (SIGINT/SIGTERM); nothing was published. */
  INTERRUPTED: 130,
} as const;

const CODE_TO_EXIT: Partial<Record<ErrorCode, number>> = {
  USAGE: EXIT.USAGE,
  CONFIG: EXIT.USAGE,
  OUTPUT_EXISTS: EXIT.USAGE,
  PATH_OVERLAP: EXIT.USAGE,
  LOCKED: EXIT.USAGE,
  PROFILE: EXIT.USAGE,
  KEY_FORMAT: EXIT.KEY,
  KEY_VERSION: EXIT.KEY,
  KEY_NO_MATCH: EXIT.KEY,
  KEY_AUTH: EXIT.KEY,
  KEY_TRUNCATED: EXIT.KEY,
  KEY_LIMIT: EXIT.KEY,
  IO: EXIT.FAILED,
  INPUT_INVALID: EXIT.FAILED,
  PSEUDONYM_COLLISION: EXIT.FAILED,
};

/** Maps an error thrown by a command to the process exit code. */
export function exitCodeFor(error: unknown): number {
  if (isDeidError(error)) return CODE_TO_EXIT[error.code] ?? EXIT.FAILED;
  if ((error as NodeJS.ErrnoException)?.code && typeof (error as NodeJS.ErrnoException).code === "string") return EXIT.FAILED;
  return EXIT.INTERNAL;
}
