/**
 * `anonymize --continue KEYFILE`: takes the secret and the --map pseudonyms
 * of an earlier run from its key, so that a returning patient gets the same
 * pseudonym, UIDs and date shift as before.
 */
import { UsageError } from "../errors.js";
import { readKeyFile, type KeyCredential } from "../keyfile/index.js";
import { decodeSecret } from "../pseudonym/secret.js";
import type { KeyPayload } from "../run/key-payload.js";

export interface ContinuedRun {
  secret: Uint8Array;
  /** Original Patient ID to pseudonym for the patients that an earlier --map named. */
  crosswalk: Map<string, string>;
}

/** Opens the earlier key with `credentials` and returns its secret and --map pseudonyms. */
export async function readContinuation(keyPath: string, credentials: KeyCredential[]): Promise<ContinuedRun> {
  const { payload } = await readKeyFile(keyPath, credentials);
  const key = payload as unknown as KeyPayload;
  const secret = typeof key.secret === "string" ? decodeSecret(key.secret) : undefined;
  if (!secret) {
    throw new UsageError("the key given to --continue contains no secret", {
      path: keyPath,
      hint: "pass a key file written by deidkit anonymize",
    });
  }
  const crosswalk = new Map<string, string>();
  for (const patient of key.patients ?? []) if (patient.mapped) crosswalk.set(patient.originalId, patient.pseudonymId);
  return { secret, crosswalk };
}
