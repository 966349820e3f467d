/**
 * The libsodium operations of the key file: key generation, sealed boxes for
 * X25519 recipients, Argon2id passphrase wrapping, the header MAC and the
 * chunked payload stream. docs/keyfile-format.md defines every parameter.
 *
 * Call `loadSodium()` once before the synchronous functions here.
 */

import sodium, { type StateAddress } from "libsodium-wrappers-sumo";

import {
  ARGON2ID_SALT_BYTES,
  FILE_KEY_BYTES,
  MAC_BYTES,
  type Argon2idStanza,
} from "./format.js";

const KDF_CONTEXT = "deidkey1";
const HEADER_MAC_SUBKEY_ID = 1;
const PAYLOAD_SUBKEY_ID = 2;

export async function loadSodium(): Promise<void> {
  await sodium.ready;
}

export function randomBytes(length: number): Uint8Array {
  return sodium.randombytes_buf(length);
}

/** Overwrites secret bytes with zeros. */
export function wipe(bytes: Uint8Array | undefined): void {
  if (bytes !== undefined) {
    sodium.memzero(bytes);
  }
}

// ---------------------------------------------------------------------------
// X25519 keys and sealed boxes

export function generateKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const pair = sodium.crypto_box_keypair();
  return { publicKey: pair.publicKey, secretKey: pair.privateKey };
}

export function publicKeyFromSecretKey(secretKey: Uint8Array): Uint8Array {
  return sodium.crypto_scalarmult_base(secretKey);
}

/**
 * Returns whether an X25519 public key is a low-order point. Every shared
 * secret with such a key is zero, so libsodium refuses to seal to it.
 */
export function isLowOrderPublicKey(publicKey: Uint8Array): boolean {
  const scalar = new Uint8Array(32).fill(0x5a);
  try {
    sodium.crypto_scalarmult(scalar, publicKey);
    return false;
  } catch {
    return true;
  }
}

export function sealFileKey(fileKey: Uint8Array, recipientPublicKey: Uint8Array): Uint8Array {
  return sodium.crypto_box_seal(fileKey, recipientPublicKey);
}

/** Opens a sealed file key, returning undefined when the key pair does not match or the box was changed. */
export function openSealedFileKey(
  sealedFileKey: Uint8Array,
  publicKey: Uint8Array,
  secretKey: Uint8Array,
): Uint8Array | undefined {
  try {
    const fileKey = sodium.crypto_box_seal_open(sealedFileKey, publicKey, secretKey);
    return fileKey.length === FILE_KEY_BYTES ? fileKey : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Passphrase stanza

export interface PassphraseCost {
  opslimit: number;
  /** Memory in bytes. */
  memlimit: number;
}

/** libsodium's MODERATE Argon2id setting: 3 passes over 256 MiB. */
export const DEFAULT_PASSPHRASE_COST: PassphraseCost = { opslimit: 3, memlimit: 268435456 };

const ZERO_NONCE = new Uint8Array(24);

function deriveWrapKey(passphrase: string, salt: Uint8Array, cost: PassphraseCost): Uint8Array {
  const passphraseBytes = new TextEncoder().encode(passphrase.normalize("NFC"));
  try {
    return sodium.crypto_pwhash(
      32,
      passphraseBytes,
      salt,
      cost.opslimit,
      cost.memlimit,
      sodium.crypto_pwhash_ALG_ARGON2ID13,
    );
  } finally {
    wipe(passphraseBytes);
  }
}

/** Wraps the file key under a passphrase, returning the argon2id stanza. */
export function wrapFileKeyWithPassphrase(
  fileKey: Uint8Array,
  passphrase: string,
  cost: PassphraseCost,
): Argon2idStanza {
  const salt = randomBytes(ARGON2ID_SALT_BYTES);
  const wrapKey = deriveWrapKey(passphrase, salt, cost);
  try {
    // A fresh salt gives a fresh wrap key, which encrypts only this one message, so a zero nonce is safe.
    const wrappedFileKey = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(fileKey, null, null, ZERO_NONCE, wrapKey);
    return { kind: "argon2id", salt, opslimit: cost.opslimit, memlimit: cost.memlimit, wrappedFileKey };
  } finally {
    wipe(wrapKey);
  }
}

/**
 * Unwraps the file key of an argon2id stanza. Returns undefined for a wrong
 * passphrase or a changed stanza, because the two are indistinguishable. The caller must
 * have checked the stanza's costs against the caps first.
 */
export function unwrapFileKeyWithPassphrase(stanza: Argon2idStanza, passphrase: string): Uint8Array | undefined {
  const wrapKey = deriveWrapKey(passphrase, stanza.salt, stanza);
  try {
    const fileKey = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      stanza.wrappedFileKey,
      null,
      ZERO_NONCE,
      wrapKey,
    );
    return fileKey.length === FILE_KEY_BYTES ? fileKey : undefined;
  } catch {
    return undefined;
  } finally {
    wipe(wrapKey);
  }
}

// ---------------------------------------------------------------------------
// File key, subkeys and header MAC

export function generateFileKey(): Uint8Array {
  return randomBytes(FILE_KEY_BYTES);
}

export interface Subkeys {
  macKey: Uint8Array;
  payloadKey: Uint8Array;
}

export function deriveSubkeys(fileKey: Uint8Array): Subkeys {
  return {
    macKey: sodium.crypto_kdf_derive_from_key(32, HEADER_MAC_SUBKEY_ID, KDF_CONTEXT, fileKey),
    payloadKey: sodium.crypto_kdf_derive_from_key(32, PAYLOAD_SUBKEY_ID, KDF_CONTEXT, fileKey),
  };
}

export function wipeSubkeys(subkeys: Subkeys | undefined): void {
  wipe(subkeys?.macKey);
  wipe(subkeys?.payloadKey);
}

export function computeHeaderMac(macKey: Uint8Array, headerBytes: Uint8Array): Uint8Array {
  return sodium.crypto_generichash(MAC_BYTES, headerBytes, macKey);
}

/** Returns whether the header MAC matches, comparing in constant time. */
export function headerMacMatches(macKey: Uint8Array, headerBytes: Uint8Array, mac: Uint8Array): boolean {
  const expected = computeHeaderMac(macKey, headerBytes);
  return mac.length === expected.length && sodium.memcmp(expected, mac);
}

// ---------------------------------------------------------------------------
// Payload stream

// The values of libsodium's crypto_secretstream_xchacha20poly1305_TAG_MESSAGE and
// TAG_FINAL. They are fixed here because the wrapper exports them only after `ready`.
export const TAG_MESSAGE = 0;
export const TAG_FINAL = 3;

/** Encrypts payload chunks in order with crypto_secretstream_xchacha20poly1305. */
export class PayloadEncryptor {
  /** The 24-byte stream header, written before the first chunk. */
  readonly header: Uint8Array;
  private readonly state: StateAddress;

  constructor(payloadKey: Uint8Array) {
    const { state, header } = sodium.crypto_secretstream_xchacha20poly1305_init_push(payloadKey);
    this.state = state;
    this.header = header;
  }

  push(plaintext: Uint8Array, tag: number): Uint8Array {
    return sodium.crypto_secretstream_xchacha20poly1305_push(this.state, plaintext, null, tag);
  }
}

/** Decrypts payload chunks in the order they were written. */
export class PayloadDecryptor {
  private readonly state: StateAddress;

  constructor(payloadKey: Uint8Array, header: Uint8Array) {
    this.state = sodium.crypto_secretstream_xchacha20poly1305_init_pull(header, payloadKey);
  }

  /** Returns the plaintext and tag, or undefined when the chunk fails authentication. */
  pull(ciphertext: Uint8Array): { plaintext: Uint8Array; tag: number } | undefined {
    let result: { message: Uint8Array; tag: number } | false;
    try {
      result = sodium.crypto_secretstream_xchacha20poly1305_pull(this.state, ciphertext, null);
    } catch {
      return undefined;
    }
    if (result === false) {
      return undefined;
    }
    return { plaintext: result.message, tag: result.tag };
  }
}
