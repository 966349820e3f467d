import { createHash } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import sodium from "libsodium-wrappers-sumo";
import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { DeidError, KeyFileError } from "../../src/errors.js";
import { encodeBase32 } from "../../src/keyfile/format.js";
import {
  formatIdentity,
  generateIdentity,
  identityFilePermissionsTooOpen,
  parseIdentity,
  parseRecipient,
  readIdentityFile,
  readRecipientFile,
  writeIdentityFiles,
} from "../../src/keyfile/index.js";
import { fingerprintOf } from "../../src/keyfile/identity.js";

const specPath = new URL("../../docs/keyfile-format.md", import.meta.url);

// Test identity A from fixtures/keyfile/vectors: secret key = SHA-256("deidkit test identity A").
const KNOWN_IDENTITY = "DEIDKIT-IDENTITY-1-GO56M7ASV62FPC2B3LC2JAWTJNTPRLV6WP2XQKQLPJK24PWOJOHNP5JERU";
const KNOWN_RECIPIENT = "deidkit-recipient-1-ukhioveydozro46yxrj5p3ilcf3gujis5degxgiktkdzfgbcfe26mp5r5e";
const KNOWN_FINGERPRINT = "e3600f2b08a434a8";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "deidkit-identity-"));
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

/** Builds a key text with a valid checksum, for keys the library would never encode itself. */
function keyText(prefix: string, key: Uint8Array): string {
  const checksum = createHash("sha256").update(prefix).update(key).digest().subarray(0, 4);
  const body = encodeBase32(new Uint8Array([...key, ...checksum]));
  return prefix + (prefix.startsWith("deidkit-recipient") ? body.toLowerCase() : body);
}

describe("identity text", () => {
  test("known identity decodes", async () => {
    await sodium.ready;
    const secretKey = new Uint8Array(createHash("sha256").update("deidkit test identity A").digest());
    const identity = await parseIdentity(KNOWN_IDENTITY);
    expect(Buffer.from(identity.secretKey).equals(Buffer.from(secretKey))).toBe(true);
    expect(Buffer.from(identity.publicKey).equals(Buffer.from(sodium.crypto_scalarmult_base(secretKey)))).toBe(true);
    expect(identity.recipient.text).toBe(KNOWN_RECIPIENT);
    expect(identity.recipient.fingerprint).toBe(KNOWN_FINGERPRINT);
    expect(formatIdentity(identity)).toBe(KNOWN_IDENTITY);
  });

  test("fingerprint follows the spec", () => {
    const publicKey = new Uint8Array(32).fill(7);
    const expected = createHash("sha256").update("deidkit-fingerprint-1").update(publicKey).digest("hex").slice(0, 16);
    expect(fingerprintOf(publicKey)).toBe(expected);
  });

  test("generated identity round trips", async () => {
    const identity = await generateIdentity();
    const text = formatIdentity(identity);
    expect(text).toMatch(/^DEIDKIT-IDENTITY-1-[A-Z2-7]{58}$/);
    expect(identity.recipient.text).toMatch(/^deidkit-recipient-1-[a-z2-7]{58}$/);
    expect(identity.recipient.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    const parsed = await parseIdentity(`  ${text}\n`);
    expect(Buffer.from(parsed.secretKey).equals(Buffer.from(identity.secretKey))).toBe(true);
    expect(parsed.recipient).toEqual(identity.recipient);
    const recipient = await parseRecipient(identity.recipient.text);
    expect(recipient).toEqual(identity.recipient);
  });

  test("every single-character typo is caught", async () => {
    const prefix = "DEIDKIT-IDENTITY-1-";
    const body = KNOWN_IDENTITY.slice(prefix.length);
    for (let position = 0; position < body.length; position++) {
      const replacement = body[position] === "A" ? "B" : "A";
      const typo = prefix + body.slice(0, position) + replacement + body.slice(position + 1);
      const error = await captureError(() => parseIdentity(typo));
      expect(error.code, `position ${position}`).toBe("KEY_FORMAT");
      expect(error.message).not.toContain(body.slice(0, 12));
    }
  });

  test("secret identity is not a recipient", async () => {
    const error = await captureError(() => parseRecipient(KNOWN_IDENTITY));
    expect(error.code).toBe("KEY_FORMAT");
    expect(error.message).toContain("secret identity");
    expect(`${error.message}${error.hint}`).not.toContain(KNOWN_IDENTITY.slice(19, 40));
  });

  const rejects: Array<[string, string, () => string, "identity" | "recipient", string]> = [
    ["I1", "wrong prefix", () => KNOWN_IDENTITY.replace("IDENTITY-1", "IDENTITY-2"), "identity", "KEY_FORMAT"],
    ["I1", "recipient passed as identity", () => KNOWN_RECIPIENT, "identity", "KEY_FORMAT"],
    ["I2", "lower-case identity body", () => KNOWN_IDENTITY.slice(0, 19) + KNOWN_IDENTITY.slice(19).toLowerCase(), "identity", "KEY_FORMAT"],
    ["I2", "upper-case recipient body", () => KNOWN_RECIPIENT.slice(0, 20) + KNOWN_RECIPIENT.slice(20).toUpperCase(), "recipient", "KEY_FORMAT"],
    ["I2", "one character cut", () => KNOWN_RECIPIENT.slice(0, -1), "recipient", "KEY_FORMAT"],
    ["I2", "character outside base32", () => KNOWN_RECIPIENT.slice(0, -3) + "1" + KNOWN_RECIPIENT.slice(-2), "recipient", "KEY_FORMAT"],
    ["I3", "checksum mismatch", () => KNOWN_RECIPIENT.slice(0, 25) + (KNOWN_RECIPIENT[25] === "a" ? "b" : "a") + KNOWN_RECIPIENT.slice(26), "recipient", "KEY_FORMAT"],
    ["I4", "low-order public key", () => keyText("deidkit-recipient-1-", new Uint8Array(32)), "recipient", "KEY_FORMAT"],
  ];

  test.each(rejects)("%s %s", async (rule, _label, makeText, kind, code) => {
    const text = makeText();
    const error = await captureError(() => (kind === "identity" ? parseIdentity(text) : parseRecipient(text)));
    expect(error).toBeInstanceOf(KeyFileError);
    expect(error.code).toBe(code);
    expect(error.message).toContain(`(rule ${rule})`);
  });

  test("text rules all have cases", async () => {
    const spec = await readFile(specPath, "utf8");
    const rules = [...spec.matchAll(/^- \*\*(I\d+)\*\*/gm)].map((match) => match[1]!);
    expect(rules).toEqual(["I1", "I2", "I3", "I4", "I5", "I6"]);
    const covered = new Set([...rejects.map((row) => row[0]), ...fileRejectRules]);
    for (const rule of rules) {
      expect(covered, `no case for rule ${rule}`).toContain(rule);
    }
  });
});

// Rules covered by the "identity files" tests below.
const fileRejectRules = ["I5", "I6"];

describe("identity files", () => {
  test("writes both files with their modes", async () => {
    const previous = process.umask(0o077);
    let result: Awaited<ReturnType<typeof writeIdentityFiles>>;
    try {
      result = await writeIdentityFiles(dir);
    } finally {
      process.umask(previous);
    }
    expect(result.identityPath).toBe(join(dir, "identity.key"));
    expect(result.recipientPath).toBe(join(dir, "recipient.pub"));
    expect((await stat(result.identityPath)).mode & 0o777).toBe(0o600);
    expect((await stat(result.recipientPath)).mode & 0o777).toBe(0o644);
    const identity = await readIdentityFile(result.identityPath);
    expect(identity.recipient).toEqual(result.recipient);
    expect(await readRecipientFile(result.recipientPath)).toEqual(result.recipient);
    const content = await readFile(result.identityPath, "utf8");
    expect(content).toContain(`# recipient: ${result.recipient.text}\n`);
    expect(content).toContain(`# fingerprint: ${result.recipient.fingerprint}\n`);
    expect(content).toMatch(/^# created: \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/m);
    expect(await identityFilePermissionsTooOpen(result.identityPath)).toBe(false);
  });

  test("identity mode ignores a zero umask", async () => {
    const previous = process.umask(0);
    try {
      const result = await writeIdentityFiles(dir);
      expect((await stat(result.identityPath)).mode & 0o777).toBe(0o600);
      expect((await stat(result.recipientPath)).mode & 0o777).toBe(0o644);
    } finally {
      process.umask(previous);
    }
  });

  test("second run fails and keeps the first", async () => {
    const first = await writeIdentityFiles(dir);
    const before = await readFile(first.identityPath);
    const error = await captureError(() => writeIdentityFiles(dir));
    expect(error.code).toBe("OUTPUT_EXISTS");
    expect(error.path).toBe(first.identityPath);
    expect(error.message).toContain(first.identityPath);
    expect((await readFile(first.identityPath)).equals(before)).toBe(true);
    expect((await stat(first.identityPath)).mode & 0o777).toBe(0o600);
  });

  test("existing recipient file blocks both", async () => {
    await writeFile(join(dir, "recipient.pub"), "someone else's\n");
    const error = await captureError(() => writeIdentityFiles(dir));
    expect(error.code).toBe("OUTPUT_EXISTS");
    expect(error.path).toBe(join(dir, "recipient.pub"));
    await expect(stat(join(dir, "identity.key"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  test("missing directory is an IO error", async () => {
    const error = await captureError(() => writeIdentityFiles(join(dir, "absent")));
    expect(error.code).toBe("IO");
  });

  test("reader accepts comments and CRLF", async () => {
    const path = join(dir, "edited.key");
    await writeFile(path, `# comment\r\n\r\n${KNOWN_IDENTITY}\r\n# trailing comment\r\n`);
    const identity = await readIdentityFile(path);
    expect(identity.recipient.fingerprint).toBe(KNOWN_FINGERPRINT);
  });

  test("I5 two key lines", async () => {
    const path = join(dir, "two.key");
    await writeFile(path, `${KNOWN_IDENTITY}\n${KNOWN_IDENTITY}\n`);
    const error = await captureError(() => readIdentityFile(path));
    expect(error.code).toBe("KEY_FORMAT");
    expect(error.message).toContain("(rule I5)");
    expect(error.message).not.toContain(KNOWN_IDENTITY.slice(19, 40));
  });

  test("I5 no key line", async () => {
    const path = join(dir, "empty.pub");
    await writeFile(path, "# only a comment\n");
    const error = await captureError(() => readRecipientFile(path));
    expect(error.code).toBe("KEY_FORMAT");
    expect(error.message).toContain("(rule I5)");
  });

  test("I6 oversized file", async () => {
    const path = join(dir, "big.key");
    await writeFile(path, `${"#".repeat(70000)}\n${KNOWN_IDENTITY}\n`);
    const error = await captureError(() => readIdentityFile(path));
    expect(error.code).toBe("KEY_LIMIT");
    expect(error.message).toContain("(rule I6)");
  });

  test("identity file errors name the path", async () => {
    const path = join(dir, "typo.key");
    await writeFile(path, `${KNOWN_IDENTITY.slice(0, -1)}\n`);
    const error = await captureError(() => readIdentityFile(path));
    expect(error.code).toBe("KEY_FORMAT");
    expect(error.path).toBe(path);
    expect(error.message.startsWith(`${path}: `)).toBe(true);
  });

  test("missing identity file is an IO error", async () => {
    const error = await captureError(() => readIdentityFile(join(dir, "absent.key")));
    expect(error.code).toBe("IO");
  });

  test.each([
    [0o600, false],
    [0o400, false],
    [0o640, true],
    [0o604, true],
    [0o644, true],
  ])("mode %o too open: %s", async (mode, expected) => {
    const path = join(dir, "identity.key");
    await writeFile(path, `${KNOWN_IDENTITY}\n`);
    await chmod(path, mode);
    expect(await identityFilePermissionsTooOpen(path)).toBe(expected);
  });
});
