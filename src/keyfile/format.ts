/**
 * Parsing and serialization of the key file header and of the text encodings
 * it uses, as specified in docs/keyfile-format.md.
 *
 * This module does no cryptography: seal.ts computes the MAC, wraps file keys
 * and encrypts the payload. Parse errors carry the number of the rejection
 * rule from the spec, for example "(rule R13)".
 */

import { KeyFileError, type ErrorCode } from "../errors.js";

export const FORMAT_VERSION = 1;
export const MAGIC = "deidkit-keyfile/";

export const MAX_HEADER_BYTES = 65536;
export const MAX_STANZAS = 64;
export const MAX_STANZA_ARGS = 8;
export const MAX_STANZA_ARG_LENGTH = 1024;
export const MAX_FIELDS = 64;
export const MAX_FIELD_VALUE_LENGTH = 1024;
export const MAX_TOOL_LENGTH = 128;
export const MIN_PAYLOAD_BYTES = 2;
export const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024;

export const CHUNK_BYTES = 65536;
export const CHUNK_OVERHEAD_BYTES = 17;
export const STREAM_HEADER_BYTES = 24;
export const FILE_KEY_BYTES = 32;
export const MAC_BYTES = 32;
export const SEALED_FILE_KEY_BYTES = 80;
export const WRAPPED_FILE_KEY_BYTES = 48;
export const ARGON2ID_SALT_BYTES = 16;
export const ARGON2ID_MIN_OPSLIMIT = 1;
export const ARGON2ID_MAX_OPSLIMIT = 10;
export const ARGON2ID_MIN_MEMLIMIT = 8192;
export const ARGON2ID_MAX_MEMLIMIT = 1024 * 1024 * 1024;

const FINGERPRINT_PATTERN = /^[0-9a-f]{16}$/;
const FIELD_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const STANZA_TYPE_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
const CREATED_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const DECIMAL_PATTERN = /^(0|[1-9][0-9]*)$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]*$/;
/** Control characters and bidirectional formatting characters, which could disguise text printed to a terminal. */
const FORBIDDEN_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

export type MetadataFieldValue = string | number;

/** The cleartext metadata object of the meta line. */
export interface HeaderMetadata {
  created: string;
  tool: string;
  fields: Record<string, MetadataFieldValue>;
}

export interface X25519Stanza {
  kind: "x25519";
  fingerprint: string;
  sealedFileKey: Uint8Array;
}

export interface Argon2idStanza {
  kind: "argon2id";
  salt: Uint8Array;
  opslimit: number;
  memlimit: number;
  wrappedFileKey: Uint8Array;
}

/** A stanza of a type that version 1 does not define; readers skip it. */
export interface UnsupportedStanza {
  kind: "unsupported";
  type: string;
  args: string[];
}

export type Stanza = X25519Stanza | Argon2idStanza | UnsupportedStanza;

/** A parsed header. `macInput` is a view of the bytes the header MAC covers. */
export interface ParsedHeader {
  version: number;
  metadata: HeaderMetadata;
  payloadLength: number;
  stanzas: Stanza[];
  macInput: Uint8Array;
  mac: Uint8Array;
  /** Header length in bytes, including the LF of the MAC line. */
  length: number;
}

/** A problem found in metadata: the error code and rule it maps to when read from a file. */
export interface MetadataProblem {
  code: ErrorCode;
  rule: string;
  message: string;
}

export function keyFileError(
  code: ErrorCode,
  rule: string,
  path: string,
  message: string,
  hint?: string,
): KeyFileError {
  return new KeyFileError(code, `${path}: ${message} (rule ${rule})`, { path, hint });
}

// ---------------------------------------------------------------------------
// Text encodings

/** Encodes bytes as standard base64 without padding. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64").replace(/=+$/, "");
}

/** Decodes canonical unpadded base64 of exactly `byteLength` bytes, or returns undefined. */
export function decodeBase64(text: string, byteLength: number): Uint8Array | undefined {
  if (!BASE64_PATTERN.test(text) || text.length !== Math.ceil((byteLength * 4) / 3)) {
    return undefined;
  }
  const bytes = new Uint8Array(Buffer.from(text, "base64"));
  if (bytes.length !== byteLength || encodeBase64(bytes) !== text) {
    return undefined;
  }
  return bytes;
}

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** Encodes bytes as upper-case RFC 4648 base32 without padding. */
export function encodeBase32(bytes: Uint8Array): string {
  let output = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      output += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) {
    output += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  }
  return output;
}

/** Decodes canonical upper-case unpadded base32 of exactly `byteLength` bytes, or returns undefined. */
export function decodeBase32(text: string, byteLength: number): Uint8Array | undefined {
  if (text.length !== Math.ceil((byteLength * 8) / 5)) {
    return undefined;
  }
  const bytes = new Uint8Array(byteLength);
  let buffer = 0;
  let bits = 0;
  let index = 0;
  for (const character of text) {
    const value = BASE32_ALPHABET.indexOf(character);
    if (value < 0) {
      return undefined;
    }
    buffer = ((buffer << 5) | value) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bytes[index++] = (buffer >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  // Canonical text leaves zero padding bits, so a second spelling of the same bytes is rejected.
  if (index !== byteLength || encodeBase32(bytes) !== text) {
    return undefined;
  }
  return bytes;
}

function parseDecimal(text: string): number | undefined {
  if (!DECIMAL_PATTERN.test(text) || text.length > 15) {
    return undefined;
  }
  return Number(text);
}

// ---------------------------------------------------------------------------
// Metadata

export function hasForbiddenCharacter(text: string): boolean {
  return FORBIDDEN_CHARACTERS.test(text);
}

function codePointLength(text: string): number {
  let count = 0;
  for (const _ of text) {
    count += 1;
  }
  return count;
}

/** Validates one caller field, returning the problem or undefined. */
function findFieldProblem(name: string, value: unknown): MetadataProblem | undefined {
  if (!FIELD_NAME_PATTERN.test(name)) {
    return {
      code: "KEY_FORMAT",
      rule: "R7",
      message: `metadata field name ${JSON.stringify(name)} is invalid, expected 1 to 64 characters of A-Z a-z 0-9 _ . -`,
    };
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      return { code: "KEY_FORMAT", rule: "R7", message: `metadata field ${name} is not a finite number` };
    }
    return undefined;
  }
  if (typeof value !== "string") {
    return { code: "KEY_FORMAT", rule: "R7", message: `metadata field ${name} is neither a string nor a number` };
  }
  if (hasForbiddenCharacter(value)) {
    return {
      code: "KEY_FORMAT",
      rule: "R7",
      message: `metadata field ${name} contains a control or bidirectional formatting character`,
    };
  }
  if (codePointLength(value) > MAX_FIELD_VALUE_LENGTH) {
    return {
      code: "KEY_LIMIT",
      rule: "R8",
      message: `metadata field ${name} is longer than ${MAX_FIELD_VALUE_LENGTH} characters`,
    };
  }
  return undefined;
}

/** Returns the first problem in `tool`, or undefined. */
export function findToolProblem(tool: unknown): MetadataProblem | undefined {
  if (typeof tool !== "string" || tool.length === 0) {
    return { code: "KEY_FORMAT", rule: "R7", message: "metadata tool is not a non-empty string" };
  }
  if (hasForbiddenCharacter(tool)) {
    return {
      code: "KEY_FORMAT",
      rule: "R7",
      message: "metadata tool contains a control or bidirectional formatting character",
    };
  }
  if (codePointLength(tool) > MAX_TOOL_LENGTH) {
    return { code: "KEY_LIMIT", rule: "R8", message: `metadata tool is longer than ${MAX_TOOL_LENGTH} characters` };
  }
  return undefined;
}

/** Returns the first problem in a `created` time, or undefined. */
export function findCreatedProblem(created: unknown): MetadataProblem | undefined {
  const valid =
    typeof created === "string" &&
    CREATED_PATTERN.test(created) &&
    !Number.isNaN(Date.parse(created)) &&
    new Date(created).toISOString() === created;
  if (!valid) {
    return {
      code: "KEY_FORMAT",
      rule: "R7",
      message: "metadata created is not a UTC time of the form YYYY-MM-DDTHH:MM:SS.sssZ",
    };
  }
  return undefined;
}

/** Returns the first problem in a caller's fields object, or undefined. */
export function findFieldsProblem(fields: unknown): MetadataProblem | undefined {
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    return { code: "KEY_FORMAT", rule: "R7", message: "metadata fields is not an object" };
  }
  const entries = Object.entries(fields);
  if (entries.length > MAX_FIELDS) {
    return { code: "KEY_LIMIT", rule: "R8", message: `metadata has ${entries.length} fields, more than ${MAX_FIELDS}` };
  }
  for (const [name, value] of entries) {
    const problem = findFieldProblem(name, value);
    if (problem !== undefined) {
      return problem;
    }
  }
  return undefined;
}

function parseMetadata(json: string, path: string): HeaderMetadata {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw keyFileError("KEY_FORMAT", "R7", path, "the meta line is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw keyFileError("KEY_FORMAT", "R7", path, "the meta line is not a JSON object");
  }
  const record = value as Record<string, unknown>;
  const names = Object.keys(record).sort().join(",");
  if (names !== "created,fields,tool") {
    throw keyFileError("KEY_FORMAT", "R7", path, "the meta object must have exactly the members created, tool and fields");
  }
  const problem =
    findCreatedProblem(record.created) ?? findToolProblem(record.tool) ?? findFieldsProblem(record.fields);
  if (problem !== undefined) {
    throw keyFileError(problem.code, problem.rule, path, problem.message);
  }
  // Object.fromEntries defines own properties, so a field named "__proto__" stays a plain field.
  const fields = Object.fromEntries(Object.entries(record.fields as Record<string, MetadataFieldValue>));
  return { created: record.created as string, tool: record.tool as string, fields };
}

/** Serializes the meta object as JSON with every character outside printable ASCII escaped. */
export function serializeMetadata(metadata: HeaderMetadata): string {
  const json = JSON.stringify({ created: metadata.created, tool: metadata.tool, fields: metadata.fields });
  return json.replace(/[^\x20-\x7e]/g, (character) => {
    return "\\u" + character.charCodeAt(0).toString(16).padStart(4, "0");
  });
}

// ---------------------------------------------------------------------------
// Stanzas

/** Serializes one stanza as its header line, without the LF. */
export function serializeStanza(stanza: Stanza): string {
  switch (stanza.kind) {
    case "x25519":
      return `-> x25519 ${stanza.fingerprint} ${encodeBase64(stanza.sealedFileKey)}`;
    case "argon2id":
      return [
        "-> argon2id",
        encodeBase64(stanza.salt),
        String(stanza.opslimit),
        String(stanza.memlimit),
        encodeBase64(stanza.wrappedFileKey),
      ].join(" ");
    case "unsupported":
      return ["->", stanza.type, ...stanza.args].join(" ");
  }
}

function parseStanza(line: string, lineNumber: number, path: string): Stanza {
  const tokens = line.split(" ");
  const type = tokens[1] ?? "";
  const args = tokens.slice(2);
  const syntaxValid =
    tokens[0] === "->" &&
    STANZA_TYPE_PATTERN.test(type) &&
    args.length <= MAX_STANZA_ARGS &&
    args.every((arg) => arg.length >= 1 && arg.length <= MAX_STANZA_ARG_LENGTH);
  if (!syntaxValid) {
    throw keyFileError("KEY_FORMAT", "R11", path, `header line ${lineNumber} is not a valid stanza line`);
  }
  if (type === "x25519") {
    return parseX25519Stanza(args, lineNumber, path);
  }
  if (type === "argon2id") {
    return parseArgon2idStanza(args, lineNumber, path);
  }
  return { kind: "unsupported", type, args };
}

function parseX25519Stanza(args: string[], lineNumber: number, path: string): X25519Stanza {
  const sealedFileKey = args.length === 2 ? decodeBase64(args[1]!, SEALED_FILE_KEY_BYTES) : undefined;
  if (args.length !== 2 || !FINGERPRINT_PATTERN.test(args[0]!) || sealedFileKey === undefined) {
    throw keyFileError(
      "KEY_FORMAT",
      "R13",
      path,
      `header line ${lineNumber}: an x25519 stanza needs a 16-hex-digit fingerprint and 80 bytes of base64`,
    );
  }
  return { kind: "x25519", fingerprint: args[0]!, sealedFileKey };
}

function parseArgon2idStanza(args: string[], lineNumber: number, path: string): Argon2idStanza {
  const malformed = (): KeyFileError =>
    keyFileError(
      "KEY_FORMAT",
      "R14",
      path,
      `header line ${lineNumber}: an argon2id stanza needs a 16-byte salt, OPSLIMIT, MEMLIMIT and a 48-byte wrapped key`,
    );
  if (args.length !== 4) {
    throw malformed();
  }
  const salt = decodeBase64(args[0]!, ARGON2ID_SALT_BYTES);
  const opslimit = parseDecimal(args[1]!);
  const memlimit = parseDecimal(args[2]!);
  const wrappedFileKey = decodeBase64(args[3]!, WRAPPED_FILE_KEY_BYTES);
  if (salt === undefined || opslimit === undefined || memlimit === undefined || wrappedFileKey === undefined) {
    throw malformed();
  }
  if (opslimit < ARGON2ID_MIN_OPSLIMIT || memlimit < ARGON2ID_MIN_MEMLIMIT) {
    throw keyFileError(
      "KEY_FORMAT",
      "R14",
      path,
      `header line ${lineNumber}: argon2id cost is below OPSLIMIT ${ARGON2ID_MIN_OPSLIMIT} or MEMLIMIT ${ARGON2ID_MIN_MEMLIMIT}`,
    );
  }
  if (opslimit > ARGON2ID_MAX_OPSLIMIT || memlimit > ARGON2ID_MAX_MEMLIMIT) {
    throw keyFileError(
      "KEY_LIMIT",
      "R15",
      path,
      `header line ${lineNumber}: argon2id cost OPSLIMIT ${opslimit} MEMLIMIT ${memlimit} is above the reader's cap ` +
        `of OPSLIMIT ${ARGON2ID_MAX_OPSLIMIT} and MEMLIMIT ${ARGON2ID_MAX_MEMLIMIT}`,
      "The file was written with a passphrase cost this reader does not run; it may be hostile.",
    );
  }
  return { kind: "argon2id", salt, opslimit, memlimit, wrappedFileKey };
}

function checkStanzaSet(stanzas: Stanza[], path: string): void {
  const fingerprints = new Set<string>();
  let argon2idCount = 0;
  for (const stanza of stanzas) {
    if (stanza.kind === "x25519") {
      if (fingerprints.has(stanza.fingerprint)) {
        throw keyFileError("KEY_FORMAT", "R13", path, `two x25519 stanzas have the fingerprint ${stanza.fingerprint}`);
      }
      fingerprints.add(stanza.fingerprint);
    } else if (stanza.kind === "argon2id") {
      argon2idCount += 1;
      if (argon2idCount > 1) {
        throw keyFileError("KEY_FORMAT", "R14", path, "the header has more than one argon2id stanza");
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Header

/** Serializes every header line before the MAC line, each ending in LF, as ASCII bytes. */
export function serializeHeaderBody(metadata: HeaderMetadata, payloadLength: number, stanzas: Stanza[]): Uint8Array {
  const lines = [
    `${MAGIC}${FORMAT_VERSION}`,
    `meta ${serializeMetadata(metadata)}`,
    `payload ${payloadLength}`,
    ...stanzas.map(serializeStanza),
  ];
  return Buffer.from(lines.map((line) => `${line}\n`).join(""), "latin1");
}

export function serializeMacLine(mac: Uint8Array): Uint8Array {
  return Buffer.from(`--- ${encodeBase64(mac)}\n`, "latin1");
}

function isPrintableAscii(bytes: Uint8Array): boolean {
  return bytes.every((byte) => byte >= 0x20 && byte <= 0x7e);
}

const LF = 0x0a;

/**
 * Parses the version line and returns the offset after its LF.
 * Throws KEY_FORMAT (R2, R5), KEY_VERSION (R3), KEY_TRUNCATED (R1) or KEY_LIMIT (R4).
 */
function parseVersionLine(bytes: Uint8Array, fileEnded: boolean, path: string): number {
  const magic = Buffer.from(MAGIC, "latin1");
  const prefix = bytes.subarray(0, magic.length);
  if (!magic.subarray(0, prefix.length).equals(prefix)) {
    throw keyFileError(
      "KEY_FORMAT",
      "R2",
      path,
      `not a deidkit key file: it does not start with "${MAGIC}"`,
      "Pass the key file that deidkit wrote, not an identity, recipient or other file.",
    );
  }
  const end = bytes.indexOf(LF);
  if (end < 0) {
    throw endOfHeaderError(fileEnded, path);
  }
  const line = bytes.subarray(0, end);
  if (!isPrintableAscii(line)) {
    throw keyFileError(
      "KEY_FORMAT",
      "R5",
      path,
      "header line 1 contains a byte that is not printable ASCII (CRLF line endings are not allowed)",
      "The file may have been converted by a text tool; restore the original bytes from a backup.",
    );
  }
  const versionText = Buffer.from(line.subarray(magic.length)).toString("latin1");
  if (!/^[1-9][0-9]{0,8}$/.test(versionText)) {
    throw keyFileError("KEY_FORMAT", "R2", path, "the version line does not end in a version number");
  }
  const version = Number(versionText);
  if (version !== FORMAT_VERSION) {
    throw keyFileError(
      "KEY_VERSION",
      "R3",
      path,
      `key file format version ${version} is not supported; this deidkit reads version ${FORMAT_VERSION}`,
      "Open the file with the deidkit release that wrote it, or a newer one.",
    );
  }
  return end + 1;
}

function endOfHeaderError(fileEnded: boolean, path: string): KeyFileError {
  if (fileEnded) {
    return keyFileError(
      "KEY_TRUNCATED",
      "R1",
      path,
      "the file ends inside the header",
      "The file was cut short, for example by an interrupted copy; restore it from a backup.",
    );
  }
  return keyFileError("KEY_LIMIT", "R4", path, `the header does not end within the first ${MAX_HEADER_BYTES} bytes`);
}

/**
 * Parses the header from the first bytes of a file.
 *
 * `bytes` holds the first min(file size, MAX_HEADER_BYTES) bytes, and
 * `fileEnded` says whether they reach the end of the file. Throws KeyFileError
 * with the rule from docs/keyfile-format.md for every invalid input.
 */
export function parseHeader(bytes: Uint8Array, fileEnded: boolean, path: string): ParsedHeader {
  if (bytes.length === 0) {
    throw keyFileError("KEY_TRUNCATED", "R1", path, "the file is empty", "Restore the key file from a backup.");
  }
  let offset = parseVersionLine(bytes, fileEnded, path);
  let lineNumber = 1;
  let metadata: HeaderMetadata | undefined;
  let payloadLength: number | undefined;
  const stanzas: Stanza[] = [];

  for (;;) {
    lineNumber += 1;
    const end = bytes.indexOf(LF, offset);
    const lineBytes = bytes.subarray(offset, end < 0 ? bytes.length : end);
    if (!isPrintableAscii(lineBytes)) {
      throw keyFileError(
        "KEY_FORMAT",
        "R5",
        path,
        `header line ${lineNumber} contains a byte that is not printable ASCII (CRLF line endings are not allowed)`,
        "The file may have been converted by a text tool; restore the original bytes from a backup.",
      );
    }
    if (end < 0) {
      throw endOfHeaderError(fileEnded, path);
    }
    const line = Buffer.from(lineBytes).toString("latin1");
    const lineStart = offset;
    offset = end + 1;

    if (lineNumber === 2) {
      if (!line.startsWith("meta ")) {
        throw keyFileError("KEY_FORMAT", "R6", path, "header line 2 is not the meta line");
      }
      metadata = parseMetadata(line.slice("meta ".length), path);
    } else if (lineNumber === 3) {
      payloadLength = parsePayloadLine(line, path);
    } else if (line.startsWith("->")) {
      if (stanzas.length >= MAX_STANZAS) {
        throw keyFileError("KEY_LIMIT", "R12", path, `the header has more than ${MAX_STANZAS} stanzas`);
      }
      stanzas.push(parseStanza(line, lineNumber, path));
    } else if (line.startsWith("---")) {
      if (stanzas.length === 0) {
        throw keyFileError("KEY_FORMAT", "R11", path, "the header has no stanza");
      }
      checkStanzaSet(stanzas, path);
      const mac = line.startsWith("--- ") ? decodeBase64(line.slice(4), MAC_BYTES) : undefined;
      if (mac === undefined) {
        throw keyFileError("KEY_FORMAT", "R16", path, `header line ${lineNumber} is not a valid MAC line`);
      }
      return {
        version: FORMAT_VERSION,
        metadata: metadata!,
        payloadLength: payloadLength!,
        stanzas,
        macInput: bytes.subarray(0, lineStart),
        mac,
        length: offset,
      };
    } else {
      throw keyFileError("KEY_FORMAT", "R6", path, `header line ${lineNumber} is neither a stanza nor the MAC line`);
    }
  }
}

function parsePayloadLine(line: string, path: string): number {
  if (!line.startsWith("payload ")) {
    throw keyFileError("KEY_FORMAT", "R6", path, "header line 3 is not the payload line");
  }
  const text = line.slice("payload ".length);
  if (DECIMAL_PATTERN.test(text) && text.length > 15) {
    throw keyFileError("KEY_LIMIT", "R10", path, `the payload length is larger than ${MAX_PAYLOAD_BYTES} bytes`);
  }
  const length = parseDecimal(text);
  if (length === undefined || length < MIN_PAYLOAD_BYTES) {
    throw keyFileError("KEY_FORMAT", "R9", path, "the payload length is not a decimal number of at least 2");
  }
  if (length > MAX_PAYLOAD_BYTES) {
    throw keyFileError("KEY_LIMIT", "R10", path, `the payload length ${length} is larger than ${MAX_PAYLOAD_BYTES} bytes`);
  }
  return length;
}

// ---------------------------------------------------------------------------
// Payload layout

export function payloadChunkCount(payloadLength: number): number {
  return Math.max(1, Math.ceil(payloadLength / CHUNK_BYTES));
}

/** Returns the plaintext length of chunk `index` (0-based) of a payload. */
export function chunkPlaintextLength(payloadLength: number, index: number): number {
  const count = payloadChunkCount(payloadLength);
  return index < count - 1 ? CHUNK_BYTES : payloadLength - CHUNK_BYTES * (count - 1);
}

/** Returns the exact size in bytes of a file with this header and payload length. */
export function expectedFileSize(headerLength: number, payloadLength: number): number {
  return (
    headerLength + STREAM_HEADER_BYTES + payloadLength + CHUNK_OVERHEAD_BYTES * payloadChunkCount(payloadLength)
  );
}
