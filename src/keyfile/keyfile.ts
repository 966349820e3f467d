/**
 * Writing, reading and inspecting key files (docs/keyfile-format.md).
 *
 * The payload is a caller-defined JSON object. It is encoded and encrypted
 * one 64 KiB chunk at a time, and error messages never contain any of it.
 */

import { createRequire } from "node:module";
import { open, type FileHandle } from "node:fs/promises";

import { DeidError, KeyFileError, UsageError } from "../errors.js";
import { writeFileExclusive } from "./exclusive-write.js";
import {
  CHUNK_BYTES,
  CHUNK_OVERHEAD_BYTES,
  FORMAT_VERSION,
  MAX_HEADER_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_STANZAS,
  STREAM_HEADER_BYTES,
  chunkPlaintextLength,
  expectedFileSize,
  findCreatedProblem,
  findFieldsProblem,
  findToolProblem,
  keyFileError,
  parseHeader,
  payloadChunkCount,
  serializeHeaderBody,
  serializeMacLine,
  type MetadataFieldValue,
  type ParsedHeader,
  type Stanza,
} from "./format.js";
import { fingerprintOf, type KeyIdentity, type KeyRecipient } from "./identity.js";
import {
  DEFAULT_PASSPHRASE_COST,
  PayloadDecryptor,
  PayloadEncryptor,
  TAG_FINAL,
  TAG_MESSAGE,
  computeHeaderMac,
  deriveSubkeys,
  generateFileKey,
  headerMacMatches,
  loadSodium,
  openSealedFileKey,
  publicKeyFromSecretKey,
  sealFileKey,
  unwrapFileKeyWithPassphrase,
  wipe,
  wipeSubkeys,
  wrapFileKeyWithPassphrase,
  type PassphraseCost,
} from "./seal.js";

/** The cleartext header of a key file. Unauthenticated when returned by `inspectKeyFile`. */
export interface KeyFileMetadata {
  version: number;
  /** Creation time, `YYYY-MM-DDTHH:MM:SS.sssZ`. */
  created: string;
  /** Name and version of the writer, for example `deidkit/0.1.0`. */
  tool: string;
  /** Fingerprints of the X25519 recipients, in header order. */
  recipients: string[];
  fields: Record<string, MetadataFieldValue>;
  /** Whether a passphrase can open the file. */
  passphrase: boolean;
  /** Type of every stanza in header order, including types this version skips. */
  stanzaTypes: string[];
  /** Length of the payload plaintext in bytes. */
  payloadBytes: number;
}

/** A passphrase that opens a key file with an argon2id stanza. */
export interface KeyPassphrase {
  passphrase: string;
}

export type KeyCredential = KeyIdentity | KeyPassphrase;

export interface WriteKeyFileOptions {
  recipients: KeyRecipient[];
  /** Also seal the file to this passphrase (an argon2id stanza). */
  passphrase?: string;
  /** Argon2id cost for `passphrase`; defaults to OPSLIMIT 3 and MEMLIMIT 256 MiB. */
  passphraseCost?: PassphraseCost;
  /** Cleartext metadata. The caller guarantees it contains no identifier. */
  fields?: Record<string, string | number>;
  /** Writer name and version; defaults to `deidkit/<package version>`. */
  tool?: string;
  /** Creation time; defaults to now. */
  created?: Date;
}

function defaultTool(): string {
  // src/keyfile and dist/keyfile are both two levels below the package root.
  const manifest = createRequire(import.meta.url)("../../package.json") as { version?: unknown };
  return `deidkit/${typeof manifest.version === "string" ? manifest.version : "unknown"}`;
}

function toMetadata(header: ParsedHeader): KeyFileMetadata {
  const recipients: string[] = [];
  for (const stanza of header.stanzas) {
    if (stanza.kind === "x25519") {
      recipients.push(stanza.fingerprint);
    }
  }
  return {
    version: header.version,
    created: header.metadata.created,
    tool: header.metadata.tool,
    recipients,
    fields: header.metadata.fields,
    passphrase: header.stanzas.some((stanza) => stanza.kind === "argon2id"),
    stanzaTypes: header.stanzas.map((stanza) => (stanza.kind === "unsupported" ? stanza.type : stanza.kind)),
    payloadBytes: header.payloadLength,
  };
}

// ---------------------------------------------------------------------------
// Writing

function serializePayload(payload: unknown, path: string): string {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    throw new UsageError(`${path}: the key file payload must be a JSON object`, { path });
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch {
    // The cause is dropped on purpose: JSON.stringify's message can quote property names from the payload.
    throw new UsageError(`${path}: the key file payload cannot be serialized as JSON (a cycle or a BigInt)`, {
      path,
    });
  }
  if (json === undefined || !json.startsWith("{")) {
    throw new UsageError(`${path}: the key file payload must serialize to a JSON object`, { path });
  }
  return json;
}

function buildStanzas(fileKey: Uint8Array, options: WriteKeyFileOptions, path: string): Stanza[] {
  const stanzas: Stanza[] = [];
  const seen = new Set<string>();
  for (const recipient of options.recipients) {
    // The fingerprint is recomputed so a hand-built KeyRecipient cannot label a stanza wrongly.
    const fingerprint = fingerprintOf(recipient.publicKey);
    if (seen.has(fingerprint)) {
      throw new UsageError(`${path}: recipient ${fingerprint} is given more than once`, { path });
    }
    seen.add(fingerprint);
    let sealedFileKey: Uint8Array;
    try {
      sealedFileKey = sealFileKey(fileKey, recipient.publicKey);
    } catch {
      throw new UsageError(`${path}: recipient ${fingerprint} is not a usable X25519 public key`, {
        path,
        hint: "Read recipients with parseRecipient or readRecipientFile.",
      });
    }
    stanzas.push({ kind: "x25519", fingerprint, sealedFileKey });
  }
  if (options.passphrase !== undefined) {
    if (options.passphrase.length === 0) {
      throw new UsageError(`${path}: the passphrase is empty`, { path });
    }
    const cost = options.passphraseCost ?? DEFAULT_PASSPHRASE_COST;
    stanzas.push(wrapFileKeyWithPassphrase(fileKey, options.passphrase, cost));
  }
  return stanzas;
}

function checkWriteOptions(options: WriteKeyFileOptions, tool: string, created: string, path: string): void {
  const stanzaCount = options.recipients.length + (options.passphrase === undefined ? 0 : 1);
  if (stanzaCount === 0) {
    throw new UsageError(`${path}: a key file needs at least one recipient or a passphrase`, { path });
  }
  if (stanzaCount > MAX_STANZAS) {
    throw new UsageError(`${path}: a key file can have at most ${MAX_STANZAS} recipients`, { path });
  }
  const cost = options.passphraseCost;
  if (cost !== undefined) {
    const valid =
      Number.isInteger(cost.opslimit) &&
      Number.isInteger(cost.memlimit) &&
      cost.opslimit >= 1 &&
      cost.opslimit <= 10 &&
      cost.memlimit >= 8192 &&
      cost.memlimit <= 1024 * 1024 * 1024;
    if (!valid) {
      throw new UsageError(
        `${path}: passphraseCost must have an integer opslimit from 1 to 10 and memlimit from 8192 to 1073741824`,
        { path },
      );
    }
  }
  const problem = findCreatedProblem(created) ?? findToolProblem(tool) ?? findFieldsProblem(options.fields ?? {});
  if (problem !== undefined) {
    throw new UsageError(`${path}: ${problem.message}`, { path });
  }
}

/** Encodes `json` as UTF-8 one piece at a time and writes it as encrypted 64 KiB chunks. */
async function writeEncryptedPayload(
  handle: FileHandle,
  json: string,
  payloadLength: number,
  payloadKey: Uint8Array,
): Promise<void> {
  const encryptor = new PayloadEncryptor(payloadKey);
  await handle.write(encryptor.header);
  const chunkCount = payloadChunkCount(payloadLength);
  const chunk = new Uint8Array(CHUNK_BYTES);
  const encoder = new TextEncoder();
  let filled = 0;
  let chunkIndex = 0;
  const emit = async (): Promise<void> => {
    const final = chunkIndex === chunkCount - 1;
    await handle.write(encryptor.push(chunk.subarray(0, filled), final ? TAG_FINAL : TAG_MESSAGE));
    chunkIndex += 1;
    filled = 0;
  };

  const pieceCharacters = 16384;
  for (let start = 0; start < json.length; ) {
    let end = Math.min(json.length, start + pieceCharacters);
    const lastCode = json.charCodeAt(end - 1);
    if (end < json.length && lastCode >= 0xd800 && lastCode <= 0xdbff) {
      end -= 1; // keep a surrogate pair in one piece
    }
    const piece = encoder.encode(json.slice(start, end));
    start = end;
    for (let offset = 0; offset < piece.length; ) {
      const count = Math.min(CHUNK_BYTES - filled, piece.length - offset);
      chunk.set(piece.subarray(offset, offset + count), filled);
      filled += count;
      offset += count;
      // A full chunk is written at once; the final one is known from the precomputed length.
      if (filled === CHUNK_BYTES) {
        await emit();
      }
    }
  }
  if (filled > 0) {
    await emit();
  }
  wipe(chunk);
  if (chunkIndex !== chunkCount) {
    throw new DeidError("INTERNAL", "the payload length changed while it was being encrypted");
  }
}

/**
 * Encrypts `payload` to the recipients (and optional passphrase) and writes
 * the key file at `path` with mode 0600. Fails with OUTPUT_EXISTS if `path`
 * exists, with USAGE for invalid options or a payload that is not a JSON
 * object, and with KEY_LIMIT for a payload over 512 MiB.
 */
export async function writeKeyFile(
  path: string,
  payload: unknown,
  options: WriteKeyFileOptions,
): Promise<KeyFileMetadata> {
  await loadSodium();
  const tool = options.tool ?? defaultTool();
  const createdDate = options.created ?? new Date();
  if (Number.isNaN(createdDate.getTime())) {
    throw new UsageError(`${path}: the created option is an invalid Date`, { path });
  }
  const created = createdDate.toISOString();
  checkWriteOptions(options, tool, created, path);
  const json = serializePayload(payload, path);
  const payloadLength = Buffer.byteLength(json, "utf8");
  if (payloadLength > MAX_PAYLOAD_BYTES) {
    throw new KeyFileError("KEY_LIMIT", `${path}: the payload is ${payloadLength} bytes, over ${MAX_PAYLOAD_BYTES}`, {
      path,
      hint: "Split the run into smaller batches, each with its own key file.",
    });
  }

  const fileKey = generateFileKey();
  const subkeys = deriveSubkeys(fileKey);
  try {
    const stanzas = buildStanzas(fileKey, options, path);
    const metadata = { created, tool, fields: { ...(options.fields ?? {}) } };
    const headerBody = serializeHeaderBody(metadata, payloadLength, stanzas);
    const macLine = serializeMacLine(computeHeaderMac(subkeys.macKey, headerBody));
    if (headerBody.length + macLine.length > MAX_HEADER_BYTES) {
      throw new UsageError(`${path}: the key file header would be larger than ${MAX_HEADER_BYTES} bytes`, {
        path,
        hint: "Pass fewer or shorter metadata fields.",
      });
    }
    await writeFileExclusive(path, 0o600, async (handle) => {
      await handle.write(headerBody);
      await handle.write(macLine);
      await writeEncryptedPayload(handle, json, payloadLength, subkeys.payloadKey);
    });
    const header = parseHeader(Buffer.concat([headerBody, macLine]), true, path);
    return toMetadata(header);
  } finally {
    wipe(fileKey);
    wipeSubkeys(subkeys);
  }
}

// ---------------------------------------------------------------------------
// Reading

async function openKeyFile(path: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    // A missing or unreadable key path is a usage error (exit 2), like a missing --secret file.
    throw new DeidError("USAGE", `${path}: cannot open the key file (${(error as NodeJS.ErrnoException).code ?? "error"})`, {
      path,
      hint: "Check the path and its permissions.",
      cause: error,
    });
  }
  const info = await handle.stat();
  if (!info.isFile()) {
    await handle.close();
    throw new DeidError("IO", `${path}: not a regular file`, { path, hint: "Pass the key file itself." });
  }
  return { handle, size: info.size };
}

/** Reads up to `length` bytes at `position`, returning fewer only at the end of the file. */
async function readAt(handle: FileHandle, buffer: Uint8Array, length: number, position: number): Promise<number> {
  let total = 0;
  while (total < length) {
    const { bytesRead } = await handle.read(buffer, total, length - total, position + total);
    if (bytesRead === 0) {
      break;
    }
    total += bytesRead;
  }
  return total;
}

async function readHeader(handle: FileHandle, size: number, path: string): Promise<ParsedHeader> {
  const length = Math.min(size, MAX_HEADER_BYTES);
  const bytes = new Uint8Array(length);
  const read = await readAt(handle, bytes, length, 0);
  return parseHeader(bytes.subarray(0, read), read < MAX_HEADER_BYTES || size <= MAX_HEADER_BYTES, path);
}

function checkFileSize(size: number, header: ParsedHeader, path: string): void {
  const expected = expectedFileSize(header.length, header.payloadLength);
  if (size < expected) {
    throw keyFileError(
      "KEY_TRUNCATED",
      "R20",
      path,
      `the file is ${size} bytes, but its header describes ${expected} bytes`,
      "The file was cut short, for example by an interrupted copy; restore it from a backup.",
    );
  }
  if (size > expected) {
    throw keyFileError(
      "KEY_FORMAT",
      "R21",
      path,
      `the file is ${size} bytes, more than the ${expected} bytes its header describes`,
      "Data was appended to the file; restore it from a backup.",
    );
  }
}

function isIdentity(credential: KeyCredential): credential is KeyIdentity {
  return "secretKey" in credential;
}

function noMatchError(header: ParsedHeader, credentials: KeyCredential[], path: string): KeyFileError {
  const metadata = toMetadata(header);
  const identityFingerprints = credentials.filter(isIdentity).map((identity) => {
    return fingerprintOf(publicKeyFromSecretKey(identity.secretKey));
  });
  const passphraseGiven = credentials.some((credential) => !isIdentity(credential));
  const tried: string[] = [];
  if (identityFingerprints.length > 0) {
    tried.push(`identity ${identityFingerprints.join(", ")}`);
  }
  if (passphraseGiven) {
    tried.push(metadata.passphrase ? "the passphrase given (wrong passphrase)" : "a passphrase");
  }
  const sealedTo: string[] = [];
  if (metadata.recipients.length > 0) {
    sealedTo.push(`recipient ${metadata.recipients.join(", ")}`);
  }
  if (metadata.passphrase) {
    sealedTo.push("a passphrase");
  }
  const unsupported = header.stanzas.flatMap((stanza) => (stanza.kind === "unsupported" ? [stanza.type] : []));
  let message = `this key file does not open with ${tried.join(" or ")}; it is sealed to ${
    sealedTo.join(" and ") || "no credential this version supports"
  }`;
  if (unsupported.length > 0) {
    message += ` (and to stanza types this version does not support: ${[...new Set(unsupported)].join(", ")})`;
  }
  const hints: string[] = [];
  if (metadata.recipients.length > 0) {
    hints.push(
      `Use the identity file whose fingerprint is ${metadata.recipients.join(" or ")}; each identity.key shows its ` +
        "fingerprint in a comment line.",
    );
  }
  if (metadata.passphrase) {
    hints.push("Or open the file with its passphrase.");
  }
  if (unsupported.length > 0) {
    hints.push("A newer deidkit may support the other stanza types.");
  }
  return keyFileError("KEY_NO_MATCH", "R17", path, message, hints.join(" "));
}

/** Recovers the file key from the first stanza that a credential opens. */
function recoverFileKey(header: ParsedHeader, credentials: KeyCredential[], path: string): Uint8Array {
  const identities = credentials.filter(isIdentity);
  const passphrases = credentials.filter((credential): credential is KeyPassphrase => !isIdentity(credential));
  const fingerprintsTried = new Set<string>();
  for (const identity of identities) {
    // The public key is derived again, so a hand-built identity with a mismatched public key still works.
    const publicKey = publicKeyFromSecretKey(identity.secretKey);
    fingerprintsTried.add(fingerprintOf(publicKey));
    for (const stanza of header.stanzas) {
      if (stanza.kind !== "x25519") {
        continue;
      }
      const fileKey = openSealedFileKey(stanza.sealedFileKey, publicKey, identity.secretKey);
      if (fileKey !== undefined) {
        return fileKey;
      }
    }
  }
  const argon2id = header.stanzas.find((stanza) => stanza.kind === "argon2id");
  if (argon2id !== undefined) {
    for (const { passphrase } of passphrases) {
      const fileKey = unwrapFileKeyWithPassphrase(argon2id, passphrase);
      if (fileKey !== undefined) {
        return fileKey;
      }
    }
  }
  const changedStanza = header.stanzas.find((stanza) => {
    return stanza.kind === "x25519" && fingerprintsTried.has(stanza.fingerprint);
  });
  if (changedStanza !== undefined) {
    throw keyFileError(
      "KEY_AUTH",
      "R18",
      path,
      "the stanza for the given identity does not open: the file was changed or damaged",
      "Restore the key file from a backup.",
    );
  }
  throw noMatchError(header, credentials, path);
}

function tamperedError(path: string, what: string, rule: string): KeyFileError {
  return keyFileError(
    "KEY_AUTH",
    rule,
    path,
    `${what} failed authentication: the file was changed or damaged`,
    "Restore the key file from a backup; do not trust any content of this copy.",
  );
}

/** Decrypts the payload chunk by chunk and parses it as a JSON object. */
async function readEncryptedPayload(
  handle: FileHandle,
  header: ParsedHeader,
  payloadKey: Uint8Array,
  path: string,
): Promise<Record<string, unknown>> {
  const truncated = (): KeyFileError =>
    keyFileError("KEY_TRUNCATED", "R20", path, "the file ended before the last payload chunk", "Restore it from a backup.");
  let position = header.length;
  const streamHeader = new Uint8Array(STREAM_HEADER_BYTES);
  if ((await readAt(handle, streamHeader, STREAM_HEADER_BYTES, position)) < STREAM_HEADER_BYTES) {
    throw truncated();
  }
  position += STREAM_HEADER_BYTES;
  const decryptor = new PayloadDecryptor(payloadKey, streamHeader);
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const buffer = new Uint8Array(CHUNK_BYTES + CHUNK_OVERHEAD_BYTES);
  const parts: string[] = [];
  const chunkCount = payloadChunkCount(header.payloadLength);

  for (let index = 0; index < chunkCount; index++) {
    const last = index === chunkCount - 1;
    const length = chunkPlaintextLength(header.payloadLength, index) + CHUNK_OVERHEAD_BYTES;
    if ((await readAt(handle, buffer, length, position)) < length) {
      throw truncated();
    }
    position += length;
    const result = decryptor.pull(buffer.subarray(0, length));
    if (result === undefined) {
      throw tamperedError(path, `payload chunk ${index + 1} of ${chunkCount}`, "R22");
    }
    if (last && result.tag !== TAG_FINAL) {
      throw keyFileError(
        "KEY_TRUNCATED",
        "R23",
        path,
        "the last payload chunk is not marked final, so the payload was cut short",
        "Restore the key file from a backup.",
      );
    }
    if (!last && result.tag !== TAG_MESSAGE) {
      throw keyFileError("KEY_FORMAT", "R24", path, `payload chunk ${index + 1} of ${chunkCount} has an unexpected tag`);
    }
    try {
      parts.push(decoder.decode(result.plaintext, { stream: !last }));
    } catch {
      throw payloadFormatError(path, "is not valid UTF-8");
    } finally {
      wipe(result.plaintext);
    }
  }
  if ((await readAt(handle, new Uint8Array(1), 1, position)) > 0) {
    throw keyFileError("KEY_FORMAT", "R21", path, "the file has data after the last payload chunk");
  }
  return parsePayloadJson(parts, path);
}

function payloadFormatError(path: string, problem: string): KeyFileError {
  // Never attach the parser's error: its message can quote payload text.
  return keyFileError(
    "KEY_FORMAT",
    "R25",
    path,
    `the decrypted payload ${problem}`,
    "The file was written by a faulty tool; it cannot be read as a deidkit key file.",
  );
}

function parsePayloadJson(parts: string[], path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(parts.join(""));
  } catch (error) {
    if (error instanceof RangeError) {
      throw new KeyFileError("KEY_LIMIT", `${path}: the decrypted payload is too large for this runtime to parse`, {
        path,
      });
    }
    throw payloadFormatError(path, "is not valid JSON");
  } finally {
    parts.length = 0;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw payloadFormatError(path, "is not a JSON object");
  }
  return value as Record<string, unknown>;
}

function normalizeCredentials(credentials: KeyCredential | readonly KeyCredential[]): KeyCredential[] {
  const list = Array.isArray(credentials) ? [...credentials] : [credentials as KeyCredential];
  if (list.length === 0) {
    throw new UsageError("readKeyFile needs at least one identity or passphrase");
  }
  for (const credential of list) {
    const valid =
      typeof credential === "object" &&
      credential !== null &&
      (("secretKey" in credential && credential.secretKey instanceof Uint8Array && credential.secretKey.length === 32) ||
        ("passphrase" in credential && typeof credential.passphrase === "string"));
    if (!valid) {
      throw new UsageError("readKeyFile needs identities (from parseIdentity or readIdentityFile) or passphrases");
    }
  }
  return list;
}

/**
 * Opens a key file with an identity, a passphrase or a list of them, checks
 * its header MAC, size and every payload chunk, and returns the metadata and
 * the payload object. Throws KeyFileError with KEY_FORMAT, KEY_VERSION,
 * KEY_NO_MATCH, KEY_AUTH, KEY_TRUNCATED or KEY_LIMIT (docs/keyfile-format.md
 * lists the rules), or DeidError IO.
 */
export async function readKeyFile(
  path: string,
  identity: KeyCredential | readonly KeyCredential[],
): Promise<{ metadata: KeyFileMetadata; payload: Record<string, unknown> }> {
  const credentials = normalizeCredentials(identity);
  await loadSodium();
  const { handle, size } = await openKeyFile(path);
  try {
    const header = await readHeader(handle, size, path);
    const fileKey = recoverFileKey(header, credentials, path);
    const subkeys = deriveSubkeys(fileKey);
    wipe(fileKey);
    try {
      if (!headerMacMatches(subkeys.macKey, header.macInput, header.mac)) {
        throw tamperedError(path, "the header", "R19");
      }
      checkFileSize(size, header, path);
      const payload = await readEncryptedPayload(handle, header, subkeys.payloadKey, path);
      return { metadata: toMetadata(header), payload };
    } finally {
      wipeSubkeys(subkeys);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Returns the cleartext header of a key file without any credential. The
 * result is unauthenticated: anyone with write access can change it, which
 * only `readKeyFile` detects.
 */
export async function inspectKeyFile(path: string): Promise<KeyFileMetadata> {
  const { handle, size } = await openKeyFile(path);
  try {
    const header = await readHeader(handle, size, path);
    checkFileSize(size, header, path);
    return toMetadata(header);
  } finally {
    await handle.close();
  }
}

export { FORMAT_VERSION };
