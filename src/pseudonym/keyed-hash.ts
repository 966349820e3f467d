import sodium from "libsodium-wrappers-sumo";

export const SECRET_BYTES = 32;

let ready: Promise<void> | undefined;

/** Loads libsodium once; every function below needs it. */
export function initSodium(): Promise<void> {
  ready ??= sodium.ready;
  return ready;
}

/**
 * Keyed BLAKE2b (libsodium crypto_generichash) of `value` in the domain
 * `purpose`. The domain prefix keeps the hashes of different kinds of values
 * (UIDs, patient IDs, date shifts) independent, so knowing one pseudonym
 * tells nothing about the others.
 */
export function keyedHash(secret: Uint8Array, purpose: string, value: string, length = 32): Uint8Array {
  const message = Buffer.from(`deidkit/1/${purpose}\0${value}`, "utf8");
  return sodium.crypto_generichash(length, message, secret);
}

export function randomSecret(): Uint8Array {
  return sodium.randombytes_buf(SECRET_BYTES);
}
