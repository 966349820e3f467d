/**
 * Error types shared by the library and the CLI.
 *
 * Every error carries a stable `code` that scripts can match, the path of the
 * file involved (relative to the input root where there is one) and a `hint`
 * that says what to do next. Messages never contain values read from input
 * files, because those values may identify a patient.
 */

export type ErrorCode =
  | "USAGE"
  | "CONFIG"
  | "IO"
  | "OUTPUT_EXISTS"
  | "PATH_OVERLAP"
  | "LOCKED"
  | "INPUT_INVALID"
  | "DICOM_INVALID"
  | "DICOM_UNSUPPORTED"
  | "LIMIT_EXCEEDED"
  | "PROFILE"
  | "PSEUDONYM_COLLISION"
  | "KEY_FORMAT"
  | "KEY_VERSION"
  | "KEY_NO_MATCH"
  | "KEY_AUTH"
  | "KEY_TRUNCATED"
  | "KEY_LIMIT"
  | "INTERNAL";

export interface DeidErrorOptions {
  path?: string;
  hint?: string;
  cause?: unknown;
}

export class DeidError extends Error {
  readonly code: ErrorCode;
  readonly path?: string;
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, options: DeidErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DeidError";
    this.code = code;
    this.path = options.path;
    this.hint = options.hint;
  }
}

/** Usage or configuration problem found before anything was written. */
export class UsageError extends DeidError {
  constructor(message: string, options: DeidErrorOptions = {}) {
    super("USAGE", message, options);
    this.name = "UsageError";
  }
}

/** A DICOM stream that cannot be parsed with confidence. */
export class DicomParseError extends DeidError {
  /** Byte offset in the file where parsing failed. */
  readonly offset: number;

  constructor(message: string, offset: number, options: DeidErrorOptions = {}) {
    super("DICOM_INVALID", message, options);
    this.name = "DicomParseError";
    this.offset = offset;
  }
}

/** An untrusted number (length, depth, count, size) above its configured cap. */
export class LimitError extends DeidError {
  constructor(message: string, options: DeidErrorOptions = {}) {
    super("LIMIT_EXCEEDED", message, options);
    this.name = "LimitError";
  }
}

/** Problems reading, authenticating or decrypting a key file. */
export class KeyFileError extends DeidError {
  constructor(code: ErrorCode, message: string, options: DeidErrorOptions = {}) {
    super(code, message, options);
    this.name = "KeyFileError";
  }
}

export function isDeidError(value: unknown): value is DeidError {
  return value instanceof DeidError;
}
