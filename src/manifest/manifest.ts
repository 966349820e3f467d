/**
 * Signed manifests of an anonymize output: every file's relative path, size
 * and SHA-256, the run's counts and options, and an Ed25519 detached
 * signature (libsodium `crypto_sign_detached`) over the canonical
 * serialization of everything else. docs/cli.md describes the format.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { pipeline } from "node:stream/promises";

import sodium from "libsodium-wrappers-sumo";

import { DeidError, UsageError } from "../errors.js";
import { writeFileExclusive } from "../keyfile/exclusive-write.js";
import type { RunReport } from "../run/report.js";
import { walkTree } from "../tree/walk.js";
import { TOOL_NAME, TOOL_VERSION } from "../version.js";
import { canonicalJson } from "./canonical-json.js";
import { parseSigner, type Signer, type SigningKey } from "./signing-key.js";

export const MANIFEST_FORMAT = "deidkit-manifest";
export const MANIFEST_VERSION = 1;
/** Prefix of the signed bytes, so a manifest signature can never be mistaken for a signature over other data. */
export const SIGNATURE_CONTEXT = "deidkit-manifest-signature-1\n";
/** Largest manifest that verify reads, in bytes (about 2 million files). */
export const MAX_MANIFEST_BYTES = 512 * 1024 * 1024;

export interface ManifestFile {
  /** Path relative to OUTPUT, with "/" separators. */
  path: string;
  size: number;
  /** Lower-case hex SHA-256 of the file's bytes. */
  sha256: string;
}

/** Run metadata without identifiers: counts, options and times from the run report. */
export type ManifestRun = Pick<
  RunReport,
  "startedAt" | "finishedAt" | "profile" | "options" | "filesSeen" | "filesWritten" | "filesQuarantined" | "patients" | "uidsReplaced"
>;

export interface ManifestBody {
  format: typeof MANIFEST_FORMAT;
  version: number;
  tool: string;
  created: string;
  /** The signer's `deidkit-signer-1-...` text; it is signed too, so it cannot be swapped. */
  signer: string;
  run: ManifestRun;
  files: ManifestFile[];
}

export interface Manifest extends ManifestBody {
  signature: { algorithm: "ed25519"; value: string };
}

/** Computes a file's SHA-256 by streaming it, so large files never sit in memory. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

/**
 * Lists every regular file below `root` with its size and SHA-256, in the
 * byte order of their relative paths. Symbolic links and special files are
 * returned in `others`, because a manifest cannot vouch for them.
 */
export async function hashTree(root: string): Promise<{ files: ManifestFile[]; others: string[] }> {
  const files: ManifestFile[] = [];
  const others: string[] = [];
  for (const entry of await walkTree(root)) {
    if (entry.kind !== "file") {
      others.push(entry.relativePath);
      continue;
    }
    const sha256 = await sha256File(entry.path);
    // The size is read again after hashing, so a file that grew meanwhile does not pass with its old size.
    const size = (await stat(entry.path)).size;
    files.push({ path: entry.relativePath, size, sha256 });
  }
  return { files, others };
}

function signedBytes(body: ManifestBody): Uint8Array {
  return Buffer.from(SIGNATURE_CONTEXT + canonicalJson(body), "utf8");
}

function runOf(report: RunReport): ManifestRun {
  return {
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    profile: report.profile,
    options: report.options,
    filesSeen: report.filesSeen,
    filesWritten: report.filesWritten,
    filesQuarantined: report.filesQuarantined,
    patients: report.patients,
    uidsReplaced: report.uidsReplaced,
  };
}

/** Hashes OUTPUT and returns the signed manifest. Throws IO when OUTPUT contains a symbolic link or special file. */
export async function buildManifest(outputFolder: string, report: RunReport, key: SigningKey): Promise<Manifest> {
  await sodium.ready;
  const { files, others } = await hashTree(outputFolder);
  if (others.length > 0) {
    throw new DeidError("IO", `${outputFolder}: ${others.length} entries are not regular files, so no manifest was written`, {
      path: outputFolder,
      hint: "anonymize writes only regular files; check whether something else wrote into OUTPUT",
    });
  }
  const body: ManifestBody = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    tool: `${TOOL_NAME} ${TOOL_VERSION}`,
    created: new Date().toISOString(),
    signer: key.signer.text,
    run: runOf(report),
    files,
  };
  const signature = sodium.crypto_sign_detached(signedBytes(body), key.secretKey);
  return { ...body, signature: { algorithm: "ed25519", value: Buffer.from(signature).toString("base64") } };
}

/** Writes the manifest at `path` (exclusive create, mode 0644, temporary name then link). */
export async function writeManifest(path: string, manifest: Manifest): Promise<void> {
  await writeFileExclusive(path, 0o644, async (handle) => {
    await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`, "utf8");
  });
}

// ---------------------------------------------------------------------------
// Verification

export type ManifestProblem = "changed" | "added" | "missing" | "not-a-file";

export interface ManifestFinding {
  /** Path relative to OUTPUT; de-identified, so it may be printed. */
  file: string;
  problem: ManifestProblem;
  message: string;
}

export interface ManifestCheck {
  /** Whether the signature is valid for the given signer. */
  signatureValid: boolean;
  /** Why the signature is not valid, when it is not. */
  signatureProblem?: string;
  filesListed: number;
  filesChecked: number;
  findings: ManifestFinding[];
}

function isFileList(value: unknown): value is ManifestFile[] {
  return (
    Array.isArray(value) &&
    value.every(
      (item) =>
        typeof item === "object" &&
        item !== null &&
        typeof item.path === "string" &&
        Number.isSafeInteger(item.size) &&
        item.size >= 0 &&
        typeof item.sha256 === "string" &&
        /^[0-9a-f]{64}$/.test(item.sha256),
    )
  );
}

/** Reads and checks the shape of a manifest file; throws a usage error (exit 2) for one that is not a manifest. */
export async function readManifest(path: string): Promise<Manifest> {
  const invalid = (problem: string): UsageError =>
    new UsageError(`${path}: ${problem}`, { path, hint: "pass the OUTPUT.manifest.json file written by anonymize --sign-key" });
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile() || info.size > MAX_MANIFEST_BYTES) throw invalid(`not a regular file of at most ${MAX_MANIFEST_BYTES} bytes`);
    text = await readFile(path, "utf8");
  } catch (error) {
    if (error instanceof DeidError) throw error;
    throw invalid(`cannot read the manifest (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw invalid("the manifest is not valid JSON");
  }
  if (typeof value !== "object" || value === null || value.format !== MANIFEST_FORMAT) throw invalid("not a deidkit manifest");
  if (value.version !== MANIFEST_VERSION) throw invalid(`manifest version ${String(value.version)} is not supported; this deidkit reads version ${MANIFEST_VERSION}`);
  const signature = value.signature as Record<string, unknown> | undefined;
  if (typeof signature !== "object" || signature === null || signature.algorithm !== "ed25519" || typeof signature.value !== "string") {
    throw invalid("the manifest has no ed25519 signature");
  }
  if (typeof value.signer !== "string" || typeof value.run !== "object" || value.run === null) throw invalid("the manifest lacks its signer or run");
  if (!isFileList(value.files)) throw invalid("the manifest's file list is malformed");
  return value as unknown as Manifest;
}

function checkSignature(manifest: Manifest, signer: Signer): string | undefined {
  const signatureValue = manifest.signature.value;
  const signature = Buffer.from(signatureValue, "base64");
  if (signature.length !== sodium.crypto_sign_BYTES || signature.toString("base64") !== signatureValue) {
    return "the signature is not 64 bytes of base64";
  }
  const { signature: _omitted, ...body } = manifest;
  if (!sodium.crypto_sign_verify_detached(signature, signedBytes(body), signer.publicKey)) {
    return "the signature does not match the manifest and the given signer: the manifest was changed or signed by another key";
  }
  return undefined;
}

/**
 * Checks OUTPUT against a manifest: the signature with `signer` (never with
 * the signer named inside the manifest), then every file for a changed
 * size or hash, files added and files missing.
 */
export async function verifyManifest(outputFolder: string, manifest: Manifest, signer: Signer): Promise<ManifestCheck> {
  await sodium.ready;
  let signatureProblem: string | undefined;
  let named: Signer | undefined;
  try {
    named = await parseSigner(manifest.signer, "the manifest's signer");
  } catch {
    signatureProblem = "the manifest names a signer that is not a valid deidkit-signer-1 text";
  }
  if (named && named.text !== signer.text) {
    signatureProblem = `the manifest was signed by ${named.fingerprint}, not by the given signer ${signer.fingerprint}`;
  }
  signatureProblem ??= checkSignature(manifest, signer);

  const listed = new Map(manifest.files.map((file) => [file.path, file]));
  const findings: ManifestFinding[] = [];
  let filesChecked = 0;
  for (const entry of await walkTree(outputFolder)) {
    const expected = listed.get(entry.relativePath);
    listed.delete(entry.relativePath);
    if (entry.kind !== "file") {
      findings.push({ file: entry.relativePath, problem: "not-a-file", message: `a ${entry.kind} entry, which the manifest cannot vouch for` });
      continue;
    }
    if (expected === undefined) {
      findings.push({ file: entry.relativePath, problem: "added", message: "the file is not in the manifest" });
      continue;
    }
    filesChecked++;
    const sha256 = await sha256File(entry.path);
    if (sha256 !== expected.sha256 || entry.size !== expected.size) {
      findings.push({
        file: entry.relativePath,
        problem: "changed",
        message: entry.size !== expected.size ? `the size is ${entry.size} bytes, the manifest says ${expected.size}` : "the SHA-256 differs from the manifest",
      });
    }
  }
  for (const missing of listed.keys()) {
    findings.push({ file: missing, problem: "missing", message: "the manifest lists the file, but it is not in OUTPUT" });
  }
  findings.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return { signatureValid: signatureProblem === undefined, signatureProblem, filesListed: manifest.files.length, filesChecked, findings };
}
