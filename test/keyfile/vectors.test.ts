// Walks fixtures/keyfile/vectors/: every <outcome>--<case>.json sidecar names a
// .dkey file, the credential to open it with and the expected result of
// readKeyFile and inspectKeyFile. Adding a vector needs no change here.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import sodium from "libsodium-wrappers-sumo";
import { afterEach, describe, expect, test, vi } from "vitest";

import { KeyFileError } from "../../src/errors.js";
import {
  inspectKeyFile,
  readIdentityFile,
  readKeyFile,
  type KeyCredential,
  type KeyFileMetadata,
} from "../../src/keyfile/index.js";

const vectorsDir = fileURLToPath(new URL("../../fixtures/keyfile/vectors/", import.meta.url));
const specPath = fileURLToPath(new URL("../../docs/keyfile-format.md", import.meta.url));

interface Expected {
  code: string | null;
  rule?: string;
  payloadSha256?: string;
  metadata?: KeyFileMetadata;
}

interface Sidecar {
  description: string;
  outcome: string;
  credential: { identity?: string; passphrase?: string };
  read: Expected;
  inspect: Expected;
}

/** The error code that each outcome label in a vector's name stands for. */
const OUTCOME_CODES: Record<string, string | null> = {
  ok: null,
  "wrong-identity": "KEY_NO_MATCH",
  "wrong-passphrase": "KEY_NO_MATCH",
  tampered: "KEY_AUTH",
  truncated: "KEY_TRUNCATED",
  "unknown-version": "KEY_VERSION",
  "kdf-cost-too-high": "KEY_LIMIT",
  malformed: "KEY_FORMAT",
  limit: "KEY_LIMIT",
};

/** Strings from vector payloads that must never show up in an error. */
const PAYLOAD_MARKERS = ["SECRET-PAYLOAD-MARKER", "1.2.840.99999", "2.25.1000000", "2.25.9000000"];

const vectorNames = readdirSync(vectorsDir)
  .filter((name) => name.endsWith(".json") && name.includes("--"))
  .map((name) => name.slice(0, -".json".length))
  .sort();

function loadSidecar(name: string): Sidecar {
  return JSON.parse(readFileSync(join(vectorsDir, `${name}.json`), "utf8")) as Sidecar;
}

async function credentialFor(sidecar: Sidecar): Promise<KeyCredential> {
  if (sidecar.credential.identity !== undefined) {
    return readIdentityFile(join(vectorsDir, sidecar.credential.identity));
  }
  return { passphrase: sidecar.credential.passphrase! };
}

async function captureError(action: () => Promise<unknown>): Promise<KeyFileError> {
  try {
    await action();
  } catch (error) {
    expect(error).toBeInstanceOf(KeyFileError);
    return error as KeyFileError;
  }
  throw new Error("expected the call to throw, but it returned");
}

function expectErrorMatches(error: KeyFileError, expected: Expected, path: string): void {
  expect(error.code).toBe(expected.code);
  expect(error.message).toContain(`(rule ${expected.rule})`);
  expect(error.message).toContain(path);
  expect(error.path).toBe(path);
  const text = `${error.message}\n${error.hint ?? ""}\n${String(error.cause ?? "")}`;
  for (const marker of PAYLOAD_MARKERS) {
    expect(text).not.toContain(marker);
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

test("vector folder is not empty", () => {
  expect(vectorNames.length).toBeGreaterThan(40);
});

test("vectors cover every outcome label", () => {
  const outcomes = new Set(vectorNames.map((name) => loadSidecar(name).outcome));
  for (const outcome of Object.keys(OUTCOME_CODES)) {
    expect(outcomes, `no vector labelled ${outcome}`).toContain(outcome);
  }
});

test("vectors cover every reject rule", () => {
  const spec = readFileSync(specPath, "utf8");
  const rules = [...spec.matchAll(/^- \*\*(R\d+)\*\*/gm)].map((match) => match[1]!);
  expect(rules.length).toBeGreaterThanOrEqual(25);
  const covered = new Set<string>();
  for (const name of vectorNames) {
    const sidecar = loadSidecar(name);
    for (const expected of [sidecar.read, sidecar.inspect]) {
      if (expected.rule !== undefined) {
        covered.add(expected.rule);
      }
    }
  }
  for (const rule of rules) {
    expect(covered, `no vector for rule ${rule}`).toContain(rule);
  }
});

describe.each(vectorNames)("vector %s", (name) => {
  const sidecar = loadSidecar(name);
  const path = join(vectorsDir, `${name}.dkey`);

  test("label matches sidecar", () => {
    expect(name.split("--")[0]).toBe(sidecar.outcome);
    expect(sidecar.outcome in OUTCOME_CODES).toBe(true);
    expect(sidecar.read.code).toBe(OUTCOME_CODES[sidecar.outcome]);
  });

  test("readKeyFile gives the labelled outcome", async () => {
    await sodium.ready;
    const pwhash = vi.spyOn(sodium, "crypto_pwhash");
    const credential = await credentialFor(sidecar);
    if (sidecar.read.code === null) {
      const result = await readKeyFile(path, credential);
      const digest = createHash("sha256").update(JSON.stringify(result.payload), "utf8").digest("hex");
      expect(digest).toBe(sidecar.read.payloadSha256);
      expect(result.metadata).toEqual(sidecar.read.metadata);
    } else {
      const error = await captureError(() => readKeyFile(path, credential));
      expectErrorMatches(error, sidecar.read, path);
    }
    if (sidecar.outcome === "kdf-cost-too-high") {
      // The cost cap must reject the file before Argon2id runs.
      expect(pwhash).not.toHaveBeenCalled();
    }
    if (name === "ok--passphrase") {
      expect(pwhash).toHaveBeenCalledTimes(1);
    }
  });

  test("inspectKeyFile gives the labelled outcome", async () => {
    if (sidecar.inspect.code === null) {
      const metadata = await inspectKeyFile(path);
      expect(metadata.version).toBe(1);
      if (sidecar.read.metadata !== undefined) {
        expect(metadata).toEqual(sidecar.read.metadata);
      }
    } else {
      const error = await captureError(() => inspectKeyFile(path));
      expectErrorMatches(error, sidecar.inspect, path);
    }
  });
});
