// Per-test scratch folders: a copy of a fixture tree, a fixed secret file and
// a fresh identity, plus readers for everything a run writes.

import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { readIdentityFile, readKeyFile, writeIdentityFiles } from "../../src/keyfile/index.js";
import type { KeyPayload } from "../../src/run/key-payload.js";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const FIXTURES_DIR = join(REPO_ROOT, "fixtures");

/** The fixed 32-byte secret every test run uses: the bytes 0x00 to 0x1F. */
export const TEST_SECRET: Uint8Array = Uint8Array.from({ length: 32 }, (_, index) => index);

/** A second fixed secret, for checks that a different secret changes the output. */
export const OTHER_SECRET: Uint8Array = Uint8Array.from({ length: 32 }, (_, index) => 0xff - index);

/** Returns the text of a secret file as `deidkit secret new` writes it (pseudonym/secret.ts). */
function secretFileText(secret: Uint8Array): string {
  return `DEIDKIT-SECRET-1-${Buffer.from(secret).toString("base64url")}\n`;
}

export interface TestTree {
  /** The scratch folder that contains everything below. */
  dir: string;
  /** The copied input tree. */
  input: string;
  /** A secret file containing TEST_SECRET, mode 0600. */
  secretPath: string;
  /** identity.key and recipient.pub written by the key file library. */
  identityPath: string;
  recipientPath: string;
  /** Returns a path inside the scratch folder. */
  at(...parts: string[]): string;
  cleanup(): Promise<void>;
}

export interface TestTreeOptions {
  /** Folder under fixtures/ to copy; default "sample". */
  fixture?: string;
  /** Copy only these paths (files or folders) relative to the fixture folder. */
  include?: readonly string[];
  /** Leave out every file that is not Part 10 DICOM (README.txt, notes.txt). */
  dicomOnly?: boolean;
}

/**
 * Creates a scratch folder with `input/` (a copy of the fixture tree),
 * `test.secret` and `keys/`. Nothing is ever written under fixtures/.
 */
export async function makeTestTree(options: TestTreeOptions = {}): Promise<TestTree> {
  const dir = await mkdtemp(join(tmpdir(), "deidkit-test-"));
  const source = join(FIXTURES_DIR, options.fixture ?? "sample");
  const input = join(dir, "input");
  if (options.include) {
    await mkdir(input);
    for (const part of options.include) await cp(join(source, part), join(input, part), { recursive: true });
  } else {
    await cp(source, input, { recursive: true });
  }
  if (options.dicomOnly) {
    for (const relativePath of await listFiles(input)) {
      const path = join(input, ...relativePath.split("/"));
      if (!isPart10(await readFile(path))) await rm(path);
    }
  }
  const secretPath = join(dir, "test.secret");
  await writeSecretFile(secretPath, TEST_SECRET);
  const keys = await writeIdentityFiles(await makeFolder(join(dir, "keys")));
  return {
    dir,
    input,
    secretPath,
    identityPath: keys.identityPath,
    recipientPath: keys.recipientPath,
    at: (...parts) => join(dir, ...parts),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** True for a Part 10 file: a 128-byte preamble followed by "DICM". */
export function isPart10(bytes: Buffer): boolean {
  return bytes.length >= 132 && bytes.toString("latin1", 128, 132) === "DICM";
}

async function makeFolder(path: string): Promise<string> {
  await mkdir(path, { recursive: true });
  return path;
}

/** Writes a secret file in the `deidkit secret new` format with mode 0600. */
export async function writeSecretFile(path: string, secret: Uint8Array): Promise<void> {
  await writeFile(path, secretFileText(secret), { flag: "wx", mode: 0o600 });
  await chmod(path, 0o600);
}

export interface TreeFile {
  /** Path relative to the root, with "/" separators. */
  relativePath: string;
  bytes: Buffer;
}

/** Lists the files (not folders) below `root` as sorted, "/"-separated relative paths. */
export async function listFiles(root: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const relativePath = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) files.push(...(await listFiles(root, relativePath)));
    else files.push(relativePath);
  }
  return files.sort();
}

/** Lists every file and folder below `root` as sorted, "/"-separated relative paths (folders end in "/"). */
export async function listEntries(root: string, prefix = ""): Promise<string[]> {
  const entries: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const relativePath = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) entries.push(`${relativePath}/`, ...(await listEntries(root, relativePath)));
    else entries.push(relativePath);
  }
  return entries.sort();
}

/** Reads every file below `root`, sorted by relative path. */
export async function readTreeFiles(root: string): Promise<TreeFile[]> {
  const files: TreeFile[] = [];
  for (const relativePath of await listFiles(root)) {
    files.push({ relativePath, bytes: await readFile(join(root, ...relativePath.split("/"))) });
  }
  return files;
}

/** Decrypts a key file with an identity file, using the key file library. */
export async function decryptKey(keyPath: string, identityPath: string): Promise<KeyPayload> {
  const identity = await readIdentityFile(identityPath);
  const { payload } = await readKeyFile(keyPath, identity);
  return payload as unknown as KeyPayload;
}

export interface Planted {
  patients: Array<{ patientId: string; patientName: string; courses: string[] }>;
  identifiers: Record<string, string[]>;
  decoys: string[];
}

/** Reads the identifiers planted in fixtures/sample, by category. */
export async function readPlanted(): Promise<Planted> {
  return JSON.parse(await readFile(join(FIXTURES_DIR, "sample.planted.json"), "utf8")) as Planted;
}
