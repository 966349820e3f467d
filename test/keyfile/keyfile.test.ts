import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import sodium from "libsodium-wrappers-sumo";
import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { DeidError, KeyFileError } from "../../src/errors.js";
import { CHUNK_BYTES, MAX_PAYLOAD_BYTES } from "../../src/keyfile/format.js";
import {
  formatIdentity,
  generateIdentity,
  inspectKeyFile,
  readKeyFile,
  writeKeyFile,
  type KeyIdentity,
  type WriteKeyFileOptions,
} from "../../src/keyfile/index.js";
import { TAG_FINAL, TAG_MESSAGE } from "../../src/keyfile/seal.js";

const LOW_COST = { opslimit: 1, memlimit: 65536 };

let dir: string;
let alice: KeyIdentity;
let bob: KeyIdentity;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "deidkit-keyfile-"));
  alice = await generateIdentity();
  bob = await generateIdentity();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function captureError(action: () => Promise<unknown>): Promise<DeidError> {
  try {
    await action();
  } catch (error) {
    expect(error).toBeInstanceOf(DeidError);
    return error as DeidError;
  }
  throw new Error("expected the call to throw, but it returned");
}

function uidMap(count: number): Record<string, unknown> {
  const uids: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    uids[`2.25.${100000000 + i}`] = `2.25.${900000000 + i}`;
  }
  return { patients: { "PSEUDO-1": { name: "Test^Patient", id: "TEST-0001" } }, uids };
}

describe("round trip", () => {
  test("payload and metadata survive", async () => {
    const path = join(dir, "run.dkey");
    const payload = uidMap(50);
    const written = await writeKeyFile(path, payload, {
      recipients: [alice.recipient],
      fields: { patients: 1, uids: 50, note: "caf\u00e9 \u{1F600}" },
      tool: "deidkit/9.9.9",
      created: new Date("2025-01-02T03:04:05.678Z"),
    });
    const result = await readKeyFile(path, alice);
    expect(result.payload).toEqual(payload);
    expect(result.metadata).toEqual(written);
    expect(written.created).toBe("2025-01-02T03:04:05.678Z");
    expect(written.tool).toBe("deidkit/9.9.9");
    expect(written.recipients).toEqual([alice.recipient.fingerprint]);
    expect(written.fields).toEqual({ patients: 1, uids: 50, note: "caf\u00e9 \u{1F600}" });
    expect(await inspectKeyFile(path)).toEqual(written);
  });

  test("header is printable ASCII", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient], fields: { note: "\u00e9\u{1F600}" } });
    const bytes = await readFile(path);
    const headerEnd = bytes.indexOf("\n--- ") + 1;
    const macEnd = bytes.indexOf("\n", headerEnd) + 1;
    const header = bytes.subarray(0, macEnd);
    expect(header.every((byte) => byte === 0x0a || (byte >= 0x20 && byte <= 0x7e))).toBe(true);
    expect(header.toString("latin1")).toContain('"note":"\\u00e9\\ud83d\\ude00"');
  });

  test("default tool names the package version", async () => {
    const path = join(dir, "run.dkey");
    const manifest = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    const metadata = await writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient] });
    expect(metadata.tool).toBe(`deidkit/${manifest.version}`);
  });

  test("every recipient opens the file", async () => {
    const path = join(dir, "run.dkey");
    const payload = uidMap(5);
    await writeKeyFile(path, payload, { recipients: [alice.recipient, bob.recipient] });
    expect((await readKeyFile(path, alice)).payload).toEqual(payload);
    expect((await readKeyFile(path, bob)).payload).toEqual(payload);
  });

  test("passphrase and recipient both open", async () => {
    const path = join(dir, "run.dkey");
    const payload = uidMap(5);
    const metadata = await writeKeyFile(path, payload, {
      recipients: [alice.recipient],
      passphrase: "correct horse battery staple",
      passphraseCost: LOW_COST,
    });
    expect(metadata.passphrase).toBe(true);
    expect(metadata.stanzaTypes).toEqual(["x25519", "argon2id"]);
    expect((await readKeyFile(path, { passphrase: "correct horse battery staple" })).payload).toEqual(payload);
    expect((await readKeyFile(path, alice)).payload).toEqual(payload);
  });

  test("credential list finds the match", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, { a: 1 }, { recipients: [bob.recipient] });
    const result = await readKeyFile(path, [alice, { passphrase: "nope" }, bob]);
    expect(result.payload).toEqual({ a: 1 });
  });

  test("hand-built identity with wrong public key opens", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient] });
    const mismatched: KeyIdentity = { ...alice, publicKey: bob.publicKey };
    expect((await readKeyFile(path, mismatched)).payload).toEqual({ a: 1 });
  });

  test("prototype-like names stay plain data", async () => {
    const path = join(dir, "run.dkey");
    const payload = JSON.parse('{"__proto__":{"polluted":true},"constructor":"x"}') as Record<string, unknown>;
    const fields = JSON.parse('{"__proto__":"field"}') as Record<string, string>;
    await writeKeyFile(path, payload, { recipients: [alice.recipient], fields });
    const result = await readKeyFile(path, alice);
    expect(Object.keys(result.payload)).toEqual(["__proto__", "constructor"]);
    expect(Object.getPrototypeOf(result.payload)).toBe(Object.prototype);
    expect(Object.keys(result.metadata.fields)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(result.metadata.fields)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test.each([
    ["one byte under a chunk", CHUNK_BYTES - 1],
    ["exactly one chunk", CHUNK_BYTES],
    ["one byte over a chunk", CHUNK_BYTES + 1],
    ["exactly three chunks", 3 * CHUNK_BYTES],
  ])("payload of %s", async (_label, length) => {
    const path = join(dir, "run.dkey");
    const payload = { pad: "\u00e9".repeat(10) + "p".repeat(length - '{"pad":""}'.length - 20) };
    expect(Buffer.byteLength(JSON.stringify(payload))).toBe(length);
    const metadata = await writeKeyFile(path, payload, { recipients: [alice.recipient] });
    expect(metadata.payloadBytes).toBe(length);
    const chunks = Math.max(1, Math.ceil(length / CHUNK_BYTES));
    const bytes = await readFile(path);
    const headerLength = bytes.indexOf("\n", bytes.indexOf("\n--- ") + 1) + 1;
    expect(bytes.length).toBe(headerLength + 24 + length + 17 * chunks);
    expect((await readKeyFile(path, alice)).payload).toEqual(payload);
  });

  test("ten megabyte payload round trips", async () => {
    const path = join(dir, "big.dkey");
    const payload = uidMap(300000);
    const metadata = await writeKeyFile(path, payload, { recipients: [alice.recipient] });
    expect(metadata.payloadBytes).toBeGreaterThan(10_000_000);
    const result = await readKeyFile(path, alice);
    expect(result.payload).toEqual(payload);
  });

  test("secretstream tag constants match libsodium", async () => {
    await sodium.ready;
    expect(TAG_MESSAGE).toBe(sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    expect(TAG_FINAL).toBe(sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL);
  });
});

describe("writer rejects", () => {
  const cyclic: Record<string, unknown> = { "1.2.840.SECRET-UID": {} };
  (cyclic["1.2.840.SECRET-UID"] as Record<string, unknown>).back = cyclic;

  const cases: Array<[string, unknown, Partial<WriteKeyFileOptions>, string]> = [
    ["array payload", [1, 2], {}, "USAGE"],
    ["null payload", null, {}, "USAGE"],
    ["string payload", "text", {}, "USAGE"],
    ["cyclic payload", cyclic, {}, "USAGE"],
    ["BigInt payload", { n: 10n }, {}, "USAGE"],
    ["no recipient", { a: 1 }, { recipients: [] }, "USAGE"],
    ["empty passphrase", { a: 1 }, { recipients: [], passphrase: "" }, "USAGE"],
    ["passphrase cost too high", { a: 1 }, { passphrase: "p", passphraseCost: { opslimit: 11, memlimit: 65536 } }, "USAGE"],
    ["invalid field name", { a: 1 }, { fields: { "bad name": 1 } }, "USAGE"],
    ["control character field", { a: 1 }, { fields: { note: "a\u001bb" } }, "USAGE"],
    ["bidi override field", { a: 1 }, { fields: { note: "a\u202eb" } }, "USAGE"],
    ["non-finite field", { a: 1 }, { fields: { n: Number.NaN } }, "USAGE"],
    ["too long field value", { a: 1 }, { fields: { note: "x".repeat(1025) } }, "USAGE"],
    ["too many fields", { a: 1 }, { fields: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i])) }, "USAGE"],
    ["too long tool", { a: 1 }, { tool: "t".repeat(129) }, "USAGE"],
    ["invalid created", { a: 1 }, { created: new Date(Number.NaN) }, "USAGE"],
  ];

  test.each(cases)("%s", async (_label, payload, overrides, code) => {
    const path = join(dir, "run.dkey");
    const options = { recipients: [alice.recipient], ...overrides } as WriteKeyFileOptions;
    const error = await captureError(() => writeKeyFile(path, payload, options));
    expect(error.code).toBe(code);
    expect(error.message).toContain(path);
    expect(error.message).not.toContain("SECRET-UID");
    expect(String(error.cause ?? "")).not.toContain("SECRET-UID");
    expect(await readdir(dir)).toEqual([]);
  });

  test("duplicate recipient", async () => {
    const path = join(dir, "run.dkey");
    const error = await captureError(() => writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient, alice.recipient] }));
    expect(error.code).toBe("USAGE");
    expect(error.message).toContain(alice.recipient.fingerprint);
    expect(await readdir(dir)).toEqual([]);
  });

  test("low-order recipient", async () => {
    const path = join(dir, "run.dkey");
    const zero = { ...alice.recipient, publicKey: new Uint8Array(32) };
    const error = await captureError(() => writeKeyFile(path, { a: 1 }, { recipients: [zero] }));
    expect(error.code).toBe("USAGE");
    expect(await readdir(dir)).toEqual([]);
  });

  test("payload over 512 MiB", async () => {
    const path = join(dir, "run.dkey");
    // 270 million two-byte characters are 540 MB of UTF-8 but fit in one JavaScript string.
    const payload = { s: "\u00e9".repeat(270_000_000) };
    const error = await captureError(() => writeKeyFile(path, payload, { recipients: [alice.recipient] }));
    expect(error.code).toBe("KEY_LIMIT");
    expect(error.message).toContain(String(MAX_PAYLOAD_BYTES));
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("reader errors", () => {
  test("wrong identity names the recipients", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, uidMap(3), { recipients: [alice.recipient], passphrase: "pw", passphraseCost: LOW_COST });
    const error = await captureError(() => readKeyFile(path, bob));
    expect(error).toBeInstanceOf(KeyFileError);
    expect(error.code).toBe("KEY_NO_MATCH");
    expect(error.message).toContain(alice.recipient.fingerprint);
    expect(error.message).toContain(bob.recipient.fingerprint);
    expect(error.message).toContain("passphrase");
    expect(error.hint).toContain(alice.recipient.fingerprint);
    const secretBody = formatIdentity(bob).slice("DEIDKIT-IDENTITY-1-".length, -8);
    expect(`${error.message}${error.hint}`).not.toContain(secretBody);
  });

  test("wrong passphrase is no match", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, { a: 1 }, { recipients: [], passphrase: "right", passphraseCost: LOW_COST });
    const error = await captureError(() => readKeyFile(path, { passphrase: "hunter2-typo" }));
    expect(error.code).toBe("KEY_NO_MATCH");
    expect(error.message).toContain("wrong passphrase");
    expect(`${error.message}${error.hint}`).not.toContain("hunter2-typo");
  });

  test("missing file is a usage error", async () => {
    const path = join(dir, "absent.dkey");
    const error = await captureError(() => readKeyFile(path, alice));
    expect(error.code).toBe("USAGE");
    expect(error.path).toBe(path);
  });

  test("directory is not a key file", async () => {
    const error = await captureError(() => inspectKeyFile(dir));
    expect(error.code).toBe("IO");
  });

  test("invalid credential is a usage error", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient] });
    const error = await captureError(() => readKeyFile(path, { secretKey: new Uint8Array(3) } as unknown as KeyIdentity));
    expect(error.code).toBe("USAGE");
  });

  test("empty credential list is a usage error", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, { a: 1 }, { recipients: [alice.recipient] });
    const error = await captureError(() => readKeyFile(path, []));
    expect(error.code).toBe("USAGE");
  });

  test("every single-byte change is rejected", async () => {
    const path = join(dir, "run.dkey");
    const payload = { "1.2.3": "4.5.6", "PSEUDO-1": "Test^Patient" };
    await writeKeyFile(path, payload, { recipients: [alice.recipient, bob.recipient], fields: { patients: 1 } });
    const original = await readFile(path);
    const mutated = join(dir, "mutated.dkey");
    const codes = new Set<string>();
    for (let position = 0; position < original.length; position++) {
      const bytes = Buffer.from(original);
      bytes[position]! ^= 0x01;
      await rm(mutated, { force: true });
      await writeFile(mutated, bytes);
      const error = await captureError(() => readKeyFile(mutated, alice));
      expect(error, `byte ${position}`).toBeInstanceOf(KeyFileError);
      // KEY_NO_MATCH comes from a changed stanza type, such as y25519, which a reader skips as unknown.
      expect(["KEY_AUTH", "KEY_FORMAT", "KEY_TRUNCATED", "KEY_NO_MATCH"], `byte ${position}`).toContain(error.code);
      expect(error.message).not.toContain("Test^Patient");
      codes.add(error.code);
    }
    expect(codes).toContain("KEY_AUTH");
    expect(codes).toContain("KEY_FORMAT");
  });

  test("every truncation is rejected as truncated", async () => {
    const path = join(dir, "run.dkey");
    await writeKeyFile(path, { a: "b".repeat(200) }, { recipients: [alice.recipient] });
    const original = await readFile(path);
    const cut = join(dir, "cut.dkey");
    for (let length = 0; length < original.length; length++) {
      await rm(cut, { force: true });
      await writeFile(cut, original.subarray(0, length));
      const error = await captureError(() => readKeyFile(cut, alice));
      expect(error.code, `length ${length}`).toBe("KEY_TRUNCATED");
    }
  });
});
