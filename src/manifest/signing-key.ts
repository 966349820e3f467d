/**
 * Ed25519 signing keys for output manifests: the secret `signing.key`
 * (mode 0600) and the public `signing.pub`, written by
 * `deidkit keygen --signing`. The text forms follow the identity and
 * recipient texts of docs/keyfile-format.md: a prefix, then base32 of the
 * key and a 4-byte SHA-256 checksum.
 */
import { createHash } from "node:crypto";
import { readFile, stat, unlink } from "node:fs/promises";
import { join } from "node:path";

import sodium from "libsodium-wrappers-sumo";

import { DeidError, UsageError } from "../errors.js";
import { assertOutputAbsent, writeFileExclusive } from "../keyfile/exclusive-write.js";
import { decodeBase32, encodeBase32 } from "../keyfile/format.js";

export const SIGNING_KEY_PREFIX = "DEIDKIT-SIGNING-KEY-1-";
export const SIGNER_PREFIX = "deidkit-signer-1-";
export const SIGNING_KEY_FILE_NAME = "signing.key";
export const SIGNER_FILE_NAME = "signing.pub";

const KEY_BYTES = 32;
const CHECKSUM_BYTES = 4;
const MAX_KEY_FILE_BYTES = 65536;
const FINGERPRINT_LABEL = "deidkit-signer-fingerprint-1";

/** The public half of a signing key, as manifests and `verify --signer` name it. */
export interface Signer {
  publicKey: Uint8Array;
  /** The `deidkit-signer-1-...` text. */
  text: string;
  /** 16 hex digits: the first 8 bytes of SHA-256 over a label and the public key. */
  fingerprint: string;
}

/** An Ed25519 key pair; `secretKey` is libsodium's 64-byte form (seed and public key). */
export interface SigningKey {
  secretKey: Uint8Array;
  signer: Signer;
}

function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function checksum(prefix: string, key: Uint8Array): Uint8Array {
  return sha256(Buffer.from(prefix, "ascii"), key).subarray(0, CHECKSUM_BYTES);
}

function encodeText(prefix: string, key: Uint8Array): string {
  const bytes = new Uint8Array(KEY_BYTES + CHECKSUM_BYTES);
  bytes.set(key);
  bytes.set(checksum(prefix, key), KEY_BYTES);
  const text = encodeBase32(bytes);
  bytes.fill(0);
  return prefix + (prefix === SIGNER_PREFIX ? text.toLowerCase() : text);
}

/** Decodes a key text; the error never repeats the text, because a signing key text is a secret. */
function decodeText(text: string, prefix: string, what: string, path: string): Uint8Array {
  const invalid = (problem: string): UsageError =>
    new UsageError(`${path}: ${problem}`, {
      path,
      hint: `pass the ${what === "signing key" ? SIGNING_KEY_FILE_NAME : SIGNER_FILE_NAME} file written by deidkit keygen --signing`,
    });
  if (!text.startsWith(prefix)) {
    if (prefix === SIGNER_PREFIX && text.startsWith(SIGNING_KEY_PREFIX)) {
      throw invalid("this is a secret signing key, not the public signer; give verify the signing.pub file");
    }
    throw invalid(`not a deidkit ${what}: the key line does not start with "${prefix}"`);
  }
  const body = text.slice(prefix.length);
  const expectedCase = prefix === SIGNER_PREFIX ? body.toLowerCase() : body.toUpperCase();
  const bytes = body === expectedCase ? decodeBase32(body.toUpperCase(), KEY_BYTES + CHECKSUM_BYTES) : undefined;
  if (bytes === undefined) throw invalid(`the ${what} text has invalid characters or the wrong length`);
  const key = bytes.slice(0, KEY_BYTES);
  const valid = Buffer.from(checksum(prefix, key)).equals(bytes.subarray(KEY_BYTES));
  bytes.fill(0);
  if (!valid) {
    key.fill(0);
    throw invalid(`the ${what} checksum does not match, so a character was changed`);
  }
  return key;
}

export function fingerprintOfSigner(publicKey: Uint8Array): string {
  return sha256(Buffer.from(FINGERPRINT_LABEL, "ascii"), publicKey).subarray(0, 8).toString("hex");
}

function signerFromPublicKey(publicKey: Uint8Array): Signer {
  return { publicKey, text: encodeText(SIGNER_PREFIX, publicKey), fingerprint: fingerprintOfSigner(publicKey) };
}

/** Parses a `deidkit-signer-1-...` text; `source` names it in errors. */
export async function parseSigner(text: string, source = "signer"): Promise<Signer> {
  await sodium.ready;
  return signerFromPublicKey(decodeText(text.trim(), SIGNER_PREFIX, "signer", source));
}

async function readKeyLine(path: string, what: string): Promise<string> {
  let content: Buffer;
  try {
    const info = await stat(path);
    if (!info.isFile() || info.size > MAX_KEY_FILE_BYTES) {
      throw new UsageError(`${path}: not a ${what} file (not a regular file of at most ${MAX_KEY_FILE_BYTES} bytes)`, { path });
    }
    content = await readFile(path);
  } catch (error) {
    if (error instanceof DeidError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw new UsageError(`${path}: cannot read the ${what} file (${code})`, { path, hint: "check the path and its permissions" });
  }
  const lines = content
    .toString("utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  content.fill(0);
  if (lines.length !== 1) {
    throw new UsageError(`${path}: the ${what} file must contain exactly one key line besides comments, found ${lines.length}`, {
      path,
      hint: "pass the file written by deidkit keygen --signing",
    });
  }
  return lines[0]!;
}

export async function readSignerFile(path: string): Promise<Signer> {
  return parseSigner(await readKeyLine(path, "signer"), path);
}

export async function readSigningKeyFile(path: string): Promise<SigningKey> {
  await sodium.ready;
  const seed = decodeText(await readKeyLine(path, "signing key"), SIGNING_KEY_PREFIX, "signing key", path);
  const pair = sodium.crypto_sign_seed_keypair(seed);
  seed.fill(0);
  return { secretKey: pair.privateKey, signer: signerFromPublicKey(pair.publicKey) };
}

/** Returns whether group or others have any permission on a signing key file (always false on Windows). */
export async function signingKeyPermissionsTooOpen(path: string): Promise<boolean> {
  if (process.platform === "win32") return false;
  return ((await stat(path)).mode & 0o077) !== 0;
}

/**
 * Generates an Ed25519 key pair and writes `dir/signing.key` (mode 0600)
 * and `dir/signing.pub` (mode 0644). Fails with OUTPUT_EXISTS, writing
 * nothing, if either file exists.
 */
export async function writeSigningKeyFiles(dir: string): Promise<{ keyPath: string; signerPath: string; signer: Signer }> {
  await sodium.ready;
  const keyPath = join(dir, SIGNING_KEY_FILE_NAME);
  const signerPath = join(dir, SIGNER_FILE_NAME);
  await assertOutputAbsent(keyPath);
  await assertOutputAbsent(signerPath);
  const seed = sodium.randombytes_buf(KEY_BYTES);
  const pair = sodium.crypto_sign_seed_keypair(seed);
  const signer = signerFromPublicKey(pair.publicKey);
  const created = new Date().toISOString();
  const secretText = Buffer.from(
    [
      "# deidkit signing key: keep this file secret, it signs output manifests in your name",
      `# created: ${created}`,
      `# signer: ${signer.text}`,
      `# fingerprint: ${signer.fingerprint}`,
      encodeText(SIGNING_KEY_PREFIX, seed),
      "",
    ].join("\n"),
    "ascii",
  );
  seed.fill(0);
  pair.privateKey.fill(0);
  try {
    await writeFileExclusive(keyPath, 0o600, async (handle) => {
      await handle.writeFile(secretText);
    });
  } finally {
    secretText.fill(0);
  }
  try {
    await writeFileExclusive(signerPath, 0o644, async (handle) => {
      await handle.writeFile(`# deidkit signer (public), fingerprint ${signer.fingerprint}\n${signer.text}\n`, "ascii");
    });
  } catch (error) {
    // Nothing was signed with the new key yet, so removing it loses nothing and leaves no half pair.
    await unlink(keyPath).catch(() => undefined);
    throw error;
  }
  return { keyPath, signerPath, signer };
}
