/**
 * X25519 identities (secret keys) and recipients (public keys): generation,
 * their one-line text forms with a checksum, fingerprints, and the identity
 * and recipient files. docs/keyfile-format.md defines the encodings.
 */

import { createHash } from "node:crypto";
import { readFile, stat, unlink } from "node:fs/promises";
import { join } from "node:path";

import { DeidError, KeyFileError, type ErrorCode } from "../errors.js";
import { assertOutputAbsent, writeFileExclusive } from "./exclusive-write.js";
import { decodeBase32, encodeBase32 } from "./format.js";
import { generateKeyPair, isLowOrderPublicKey, loadSodium, publicKeyFromSecretKey, wipe } from "./seal.js";

export const IDENTITY_PREFIX = "DEIDKIT-IDENTITY-1-";
export const RECIPIENT_PREFIX = "deidkit-recipient-1-";
export const MAX_KEY_TEXT_FILE_BYTES = 65536;

const KEY_BYTES = 32;
const CHECKSUM_BYTES = 4;
const FINGERPRINT_LABEL = "deidkit-fingerprint-1";

/** A public key that key files can be sealed to. */
export interface KeyRecipient {
  publicKey: Uint8Array;
  /** The `deidkit-recipient-1-...` text. */
  text: string;
  /** 16 hex digits naming the recipient in headers and messages. */
  fingerprint: string;
}

/** An X25519 key pair that opens key files sealed to its recipient. */
export interface KeyIdentity {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  recipient: KeyRecipient;
}

function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash("sha256");
  for (const part of parts) {
    hash.update(part);
  }
  return new Uint8Array(hash.digest());
}

function checksum(prefix: string, key: Uint8Array): Uint8Array {
  return sha256(Buffer.from(prefix, "ascii"), key).subarray(0, CHECKSUM_BYTES);
}

/** Returns the fingerprint of a recipient public key: 8 bytes of SHA-256, in hex. */
export function fingerprintOf(publicKey: Uint8Array): string {
  return Buffer.from(sha256(Buffer.from(FINGERPRINT_LABEL, "ascii"), publicKey).subarray(0, 8)).toString("hex");
}

function encodeKeyText(prefix: string, key: Uint8Array): string {
  const bytes = new Uint8Array(KEY_BYTES + CHECKSUM_BYTES);
  bytes.set(key);
  bytes.set(checksum(prefix, key), KEY_BYTES);
  const text = encodeBase32(bytes);
  wipe(bytes);
  return prefix + (prefix === RECIPIENT_PREFIX ? text.toLowerCase() : text);
}

function keyTextError(code: ErrorCode, rule: string, source: string, message: string, hint: string): KeyFileError {
  return new KeyFileError(code, `${source}: ${message} (rule ${rule})`, {
    path: source === "identity" || source === "recipient" ? undefined : source,
    hint,
  });
}

/**
 * Decodes the key bytes of an identity or recipient text. Error messages never
 * repeat the text, because an identity text is a secret.
 */
function decodeKeyText(text: string, kind: "identity" | "recipient", source: string): Uint8Array {
  const prefix = kind === "identity" ? IDENTITY_PREFIX : RECIPIENT_PREFIX;
  const trimmed = text.trim();
  if (!trimmed.startsWith(prefix)) {
    let message = `not a deidkit ${kind}: it does not start with "${prefix}"`;
    if (kind === "recipient" && trimmed.toUpperCase().startsWith("DEIDKIT-IDENTITY-")) {
      message = "this is a secret identity, not a recipient; never pass an identity where a recipient is expected";
    } else if (kind === "identity" && trimmed.toLowerCase().startsWith("deidkit-recipient-")) {
      message = "this is a public recipient, not an identity";
    }
    const hint =
      kind === "identity"
        ? "Use the DEIDKIT-IDENTITY-1-... line from identity.key."
        : "Use the deidkit-recipient-1-... line from recipient.pub.";
    throw keyTextError("KEY_FORMAT", "I1", source, message, hint);
  }

  const body = trimmed.slice(prefix.length);
  const expectedCase = kind === "identity" ? body.toUpperCase() : body.toLowerCase();
  const bytes = body === expectedCase ? decodeBase32(body.toUpperCase(), KEY_BYTES + CHECKSUM_BYTES) : undefined;
  if (bytes === undefined) {
    throw keyTextError(
      "KEY_FORMAT",
      "I2",
      source,
      `the ${kind} text has invalid characters or the wrong length`,
      `Copy the whole ${kind} line again; it was mistyped or cut.`,
    );
  }

  const key = bytes.slice(0, KEY_BYTES);
  const valid = Buffer.from(checksum(prefix, key)).equals(bytes.subarray(KEY_BYTES));
  wipe(bytes);
  if (!valid) {
    wipe(key);
    throw keyTextError(
      "KEY_FORMAT",
      "I3",
      source,
      `the ${kind} checksum does not match`,
      `Copy the whole ${kind} line again; a character was mistyped.`,
    );
  }
  return key;
}

export function recipientFromPublicKey(publicKey: Uint8Array): KeyRecipient {
  const copy = Uint8Array.from(publicKey);
  return { publicKey: copy, text: encodeKeyText(RECIPIENT_PREFIX, copy), fingerprint: fingerprintOf(copy) };
}

function identityFromSecretKey(secretKey: Uint8Array): KeyIdentity {
  const publicKey = publicKeyFromSecretKey(secretKey);
  return { secretKey, publicKey, recipient: recipientFromPublicKey(publicKey) };
}

export async function generateIdentity(): Promise<KeyIdentity> {
  await loadSodium();
  const { secretKey } = generateKeyPair();
  return identityFromSecretKey(secretKey);
}

/** Returns the secret one-line identity text. */
export function formatIdentity(identity: KeyIdentity): string {
  return encodeKeyText(IDENTITY_PREFIX, identity.secretKey);
}

async function parseIdentityFrom(text: string, source: string): Promise<KeyIdentity> {
  await loadSodium();
  return identityFromSecretKey(decodeKeyText(text, "identity", source));
}

async function parseRecipientFrom(text: string, source: string): Promise<KeyRecipient> {
  await loadSodium();
  const publicKey = decodeKeyText(text, "recipient", source);
  if (isLowOrderPublicKey(publicKey)) {
    throw keyTextError(
      "KEY_FORMAT",
      "I4",
      source,
      "the recipient public key is a low-order X25519 point, which cannot protect anything",
      "Generate a new identity and use its recipient.",
    );
  }
  return recipientFromPublicKey(publicKey);
}

/** Parses a `DEIDKIT-IDENTITY-1-...` text. Throws KeyFileError KEY_FORMAT without repeating the text. */
export async function parseIdentity(text: string): Promise<KeyIdentity> {
  return parseIdentityFrom(text, "identity");
}

/** Parses a `deidkit-recipient-1-...` text. Throws KeyFileError KEY_FORMAT. */
export async function parseRecipient(text: string): Promise<KeyRecipient> {
  return parseRecipientFrom(text, "recipient");
}

// ---------------------------------------------------------------------------
// Files

export const IDENTITY_FILE_NAME = "identity.key";
export const RECIPIENT_FILE_NAME = "recipient.pub";

function identityFileText(identity: KeyIdentity, created: Date): string {
  return [
    "# deidkit identity: keep this file secret, it opens every key file sealed to it",
    `# created: ${created.toISOString()}`,
    `# recipient: ${identity.recipient.text}`,
    `# fingerprint: ${identity.recipient.fingerprint}`,
    formatIdentity(identity),
    "",
  ].join("\n");
}

function recipientFileText(recipient: KeyRecipient): string {
  return [`# deidkit recipient, fingerprint ${recipient.fingerprint}`, recipient.text, ""].join("\n");
}

/**
 * Generates an identity and writes `dir/identity.key` (mode 0600) and
 * `dir/recipient.pub` (mode 0644). Fails with OUTPUT_EXISTS, writing
 * nothing, if either file exists.
 */
export async function writeIdentityFiles(
  dir: string,
): Promise<{ identityPath: string; recipientPath: string; recipient: KeyRecipient }> {
  const identityPath = join(dir, IDENTITY_FILE_NAME);
  const recipientPath = join(dir, RECIPIENT_FILE_NAME);
  await assertOutputAbsent(identityPath);
  await assertOutputAbsent(recipientPath);
  const identity = await generateIdentity();
  try {
    const content = Buffer.from(identityFileText(identity, new Date()), "ascii");
    try {
      await writeFileExclusive(identityPath, 0o600, async (handle) => {
        await handle.writeFile(content);
      });
    } finally {
      wipe(content);
    }
    try {
      await writeFileExclusive(recipientPath, 0o644, async (handle) => {
        await handle.writeFile(recipientFileText(identity.recipient), "ascii");
      });
    } catch (error) {
      // Nothing was sealed to the new identity yet, so removing it loses nothing and leaves no half pair.
      await unlink(identityPath).catch(() => undefined);
      throw error;
    }
    return { identityPath, recipientPath, recipient: identity.recipient };
  } finally {
    wipe(identity.secretKey);
  }
}

/** Returns the single key line of an identity or recipient file, ignoring comments and empty lines. */
async function readKeyLine(path: string, kind: "identity" | "recipient"): Promise<string> {
  let content: Buffer;
  try {
    const info = await stat(path);
    if (info.size > MAX_KEY_TEXT_FILE_BYTES) {
      throw keyTextError(
        "KEY_LIMIT",
        "I6",
        path,
        `the ${kind} file is larger than ${MAX_KEY_TEXT_FILE_BYTES} bytes`,
        `Pass the ${kind === "identity" ? IDENTITY_FILE_NAME : RECIPIENT_FILE_NAME} file that deidkit wrote.`,
      );
    }
    content = await readFile(path);
  } catch (error) {
    if (error instanceof DeidError) {
      throw error;
    }
    throw new DeidError("IO", `${path}: cannot read the ${kind} file`, {
      path,
      hint: "Check the path and its permissions.",
      cause: error,
    });
  }
  try {
    const lines = content
      .toString("utf8")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"));
    if (lines.length !== 1) {
      throw keyTextError(
        "KEY_FORMAT",
        "I5",
        path,
        `the ${kind} file must contain exactly one key line besides comments, found ${lines.length}`,
        `Pass the ${kind === "identity" ? IDENTITY_FILE_NAME : RECIPIENT_FILE_NAME} file that deidkit wrote.`,
      );
    }
    return lines[0]!;
  } finally {
    wipe(content);
  }
}

export async function readIdentityFile(path: string): Promise<KeyIdentity> {
  return parseIdentityFrom(await readKeyLine(path, "identity"), path);
}

export async function readRecipientFile(path: string): Promise<KeyRecipient> {
  return parseRecipientFrom(await readKeyLine(path, "recipient"), path);
}

/**
 * Returns whether group or others have any permission on an identity file,
 * so the caller can warn. Always false on Windows, where Node reports no
 * meaningful permission bits.
 */
export async function identityFilePermissionsTooOpen(path: string): Promise<boolean> {
  if (process.platform === "win32") {
    return false;
  }
  const info = await stat(path);
  return (info.mode & 0o077) !== 0;
}
