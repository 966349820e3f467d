import { open, readFile, stat } from "node:fs/promises";

import { DeidError, UsageError } from "../errors.js";
import { initSodium, randomSecret, SECRET_BYTES } from "./keyed-hash.js";

const SECRET_PREFIX = "DEIDKIT-SECRET-1-";

/** Writes a new random 32-byte secret, created exclusively with mode 0600. */
export async function writeNewSecret(path: string): Promise<void> {
  await initSodium();
  const secret = Buffer.from(randomSecret());
  let handle;
  try {
    handle = await open(path, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new DeidError("OUTPUT_EXISTS", `secret file already exists: ${path}`, {
        path,
        hint: "choose a new path; deidkit never overwrites a secret",
      });
    }
    throw error;
  }
  try {
    await handle.writeFile(`${SECRET_PREFIX}${secret.toString("base64url")}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads a secret written by `writeNewSecret`. */
export async function readSecret(path: string): Promise<Uint8Array> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read secret file ${path}: ${(error as NodeJS.ErrnoException).code ?? "error"}`, {
      path,
      hint: "pass the file made by `deidkit secret new FILE`",
    });
  }
  const line = text.trim();
  const secret = line.startsWith(SECRET_PREFIX) ? Buffer.from(line.slice(SECRET_PREFIX.length), "base64url") : undefined;
  if (!secret || secret.length !== SECRET_BYTES) {
    throw new UsageError(`invalid secret file ${path}: expected one line starting with ${SECRET_PREFIX}`, {
      path,
      hint: "pass the file made by `deidkit secret new FILE`",
    });
  }
  return new Uint8Array(secret);
}

/** True when group or others may read the file. */
export async function isReadableByOthers(path: string): Promise<boolean> {
  const info = await stat(path);
  return (info.mode & 0o077) !== 0;
}

/** Reads the text form written by `encodeSecret`; returns undefined when it is not one. */
export function decodeSecret(text: string): Uint8Array | undefined {
  const line = text.trim();
  if (!line.startsWith(SECRET_PREFIX)) return undefined;
  const secret = Buffer.from(line.slice(SECRET_PREFIX.length), "base64url");
  return secret.length === SECRET_BYTES ? new Uint8Array(secret) : undefined;
}

export function encodeSecret(secret: Uint8Array): string {
  return `${SECRET_PREFIX}${Buffer.from(secret).toString("base64url")}`;
}
