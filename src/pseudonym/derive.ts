/**
 * Deterministic replacements derived from the run's secret: the same secret
 * and the same original always give the same replacement, on any machine.
 */
import { keyedHash } from "./keyed-hash.js";

/** Crockford base32: no I, L, O or U, so pseudonyms read aloud unambiguously. */
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export const PATIENT_ID_PREFIX = "PAT-";

function base32(bytes: Uint8Array, length: number): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += CROCKFORD[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
    if (out.length >= length) break;
  }
  return out;
}

/** Patient pseudonym: "PAT-" and 10 Crockford base32 characters (50 bits). */
export function derivePatientId(secret: Uint8Array, originalId: string): string {
  return PATIENT_ID_PREFIX + base32(keyedHash(secret, "patient-id", originalId, 16), 10);
}

/**
 * Returns a UID under the 2.25 root (PS3.5 Annex B.2): "2.25." and the decimal
 * form of a 128-bit keyed hash of the original UID, at most 44 characters.
 */
export function deriveUid(secret: Uint8Array, originalUid: string): string {
  const hash = keyedHash(secret, "uid", originalUid, 16);
  const value = BigInt(`0x${Buffer.from(hash).toString("hex")}`);
  return `2.25.${value.toString(10)}`;
}

/** Days in the date shift range: shifts fall in [-MAX_SHIFT_DAYS, -MIN_SHIFT_DAYS]. */
export const MIN_SHIFT_DAYS = 366;
export const MAX_SHIFT_DAYS = 3652;

/** Returns a patient's date shift in days: always into the past, between 366 and 3652 days. */
export function deriveDateShift(secret: Uint8Array, patientKey: string): number {
  const hash = keyedHash(secret, "date-shift", patientKey, 8);
  const value = Buffer.from(hash).readUInt32BE(0);
  return -(MIN_SHIFT_DAYS + (value % (MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1)));
}

/** Returns a short keyed token of 8 base32 characters, used for course pseudonyms. */
export function deriveToken(secret: Uint8Array, purpose: string, original: string): string {
  return base32(keyedHash(secret, purpose, original, 16), 8);
}
