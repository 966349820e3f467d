#!/usr/bin/env node
// Rebuilds fixtures/keyfile/vectors/: labelled key files, one sidecar .json
// each, and the test-only identities that open them.
//
// Usage: npm run build && node scripts/make-keyfile-vectors.js
//
// Identities, payloads, metadata and times are fixed. Sealed boxes, salts and
// stream headers are random, so each run writes different bytes that must
// lead to the same outcomes. The test in test/keyfile/vectors.test.ts reads
// every sidecar, so a new vector needs only a new entry here.

import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as format from "../dist/keyfile/format.js";
import * as identity from "../dist/keyfile/identity.js";
import * as keyfile from "../dist/keyfile/keyfile.js";
import * as seal from "../dist/keyfile/seal.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outputDir = join(root, "fixtures", "keyfile", "vectors");

const CREATED = new Date("2025-03-01T09:30:00.000Z");
const TOOL = "deidkit/test-vectors";
const FIELDS = { patients: 3, files: 42, uids: 120, site: "test site \u00e9" };
// Argon2id cost for vectors: 1 pass over 64 KiB keeps tests fast. Real files need far more.
const LOW_COST = { opslimit: 1, memlimit: 65536 };
const PASSPHRASE = "t\u00ebst passphrase";

/** Test-only identities derived from fixed labels; they protect nothing. */
async function testIdentity(label) {
  const secretKey = new Uint8Array(createHash("sha256").update(`deidkit test identity ${label}`).digest());
  const text = identity.formatIdentity({ secretKey });
  return identity.parseIdentity(text);
}

function testIdentityFileText(id, label) {
  return [
    `# TEST ONLY: deidkit test identity ${label} for fixtures/keyfile/vectors, it protects nothing`,
    `# created: ${CREATED.toISOString()}`,
    `# recipient: ${id.recipient.text}`,
    `# fingerprint: ${id.recipient.fingerprint}`,
    identity.formatIdentity(id),
    "",
  ].join("\n");
}

function sha256Hex(text) {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Returns a synthetic UID map in which every value is made up. */
function uidMapPayload(count) {
  const uids = {};
  for (let i = 0; i < count; i++) {
    uids[`2.25.${1000000 + i}`] = `2.25.${9000000 + i * 7}`;
  }
  return { kind: "deidkit-test-payload", uids };
}

/** Returns a payload whose multibyte characters straddle the 64 KiB chunk boundaries. */
function utf8BoundaryPayload() {
  // `{"a":"x` is 7 bytes, so the 2-byte characters start at odd offsets and one spans byte 65536.
  // The 4-byte characters start at byte 66014, so one of them spans byte 131072.
  const twoByte = "x" + "\u00e9".repeat(33000);
  const fourByte = "\u{1F600}".repeat(17000);
  return { a: twoByte, b: fourByte, c: "end" };
}

/** Returns a payload of exactly `length` UTF-8 bytes. */
function exactLengthPayload(length) {
  const overhead = '{"pad":""}'.length;
  return { pad: "p".repeat(length - overhead) };
}

async function writeWithLibrary(payload, options) {
  const dir = await mkdtemp(join(tmpdir(), "deidkit-vectors-"));
  const path = join(dir, "vector.dkey");
  try {
    await keyfile.writeKeyFile(path, payload, { created: CREATED, tool: TOOL, fields: FIELDS, ...options });
    return new Uint8Array(await readFile(path));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Builds a key file from parts with the library's own primitives, for cases
 * the writer never produces: extra stanzas, chosen tags and raw payload bytes.
 */
function craft({ recipients = [], passphrase, extraStanzas = [], plaintext, tagFor, fields = FIELDS }) {
  const fileKey = seal.generateFileKey();
  const subkeys = seal.deriveSubkeys(fileKey);
  const stanzas = recipients.map((recipient) => ({
    kind: "x25519",
    fingerprint: recipient.fingerprint,
    sealedFileKey: seal.sealFileKey(fileKey, recipient.publicKey),
  }));
  if (passphrase !== undefined) {
    stanzas.push(seal.wrapFileKeyWithPassphrase(fileKey, passphrase, LOW_COST));
  }
  stanzas.push(...extraStanzas);
  const metadata = { created: CREATED.toISOString(), tool: TOOL, fields };
  const body = format.serializeHeaderBody(metadata, plaintext.length, stanzas);
  const macLine = format.serializeMacLine(seal.computeHeaderMac(subkeys.macKey, body));
  const encryptor = new seal.PayloadEncryptor(subkeys.payloadKey);
  const parts = [body, macLine, encryptor.header];
  const count = format.payloadChunkCount(plaintext.length);
  for (let i = 0; i < count; i++) {
    const start = i * format.CHUNK_BYTES;
    const chunk = plaintext.subarray(start, start + format.chunkPlaintextLength(plaintext.length, i));
    const defaultTag = i === count - 1 ? seal.TAG_FINAL : seal.TAG_MESSAGE;
    parts.push(encryptor.push(chunk, tagFor === undefined ? defaultTag : tagFor(i, count)));
  }
  return new Uint8Array(Buffer.concat(parts));
}

function utf8(text) {
  return new Uint8Array(Buffer.from(text, "utf8"));
}

/** Splits a key file into its header lines (without LFs) and the bytes after the MAC line. */
function splitHeader(bytes) {
  const header = format.parseHeader(bytes.subarray(0, format.MAX_HEADER_BYTES), bytes.length <= format.MAX_HEADER_BYTES, "v");
  const text = Buffer.from(bytes.subarray(0, header.length)).toString("latin1");
  return { lines: text.slice(0, -1).split("\n"), rest: bytes.subarray(header.length), header };
}

function joinHeader(lines, rest) {
  return new Uint8Array(Buffer.concat([Buffer.from(lines.join("\n") + "\n", "latin1"), rest]));
}

function replaceLine(bytes, predicate, replace) {
  const { lines, rest } = splitHeader(bytes);
  const index = lines.findIndex(predicate);
  if (index < 0) {
    throw new Error("no header line matches");
  }
  lines[index] = replace(lines[index]);
  return joinHeader(lines, rest);
}

/** Changes one base64 character in the middle of `text` to another valid one. */
function flipBase64Character(text, position) {
  const character = text[position] === "A" ? "B" : "A";
  return text.slice(0, position) + character + text.slice(position + 1);
}

const OPEN_A = { identity: "test-identity-a.key" };
const OPEN_B = { identity: "test-identity-b.key" };
const OPEN_PASSPHRASE = { passphrase: PASSPHRASE };
const INSPECT_OK = { code: null };

async function buildVectors(a, b) {
  const vectors = [];
  const add = (name, description, bytes, credential, read, inspect) => {
    vectors.push({ name, description, bytes, credential, read, inspect });
  };
  const fail = (code, rule) => ({ code, rule });
  const okRead = (payload, metadata) => ({ code: null, payloadSha256: sha256Hex(JSON.stringify(payload)), metadata });
  const expectedMetadata = (overrides) => ({
    version: 1,
    created: CREATED.toISOString(),
    tool: TOOL,
    recipients: [a.recipient.fingerprint],
    fields: FIELDS,
    passphrase: false,
    stanzaTypes: ["x25519"],
    ...overrides,
  });

  // --- ok
  const small = uidMapPayload(20);
  const okOne = await writeWithLibrary(small, { recipients: [a.recipient] });
  add("ok--one-recipient", "written by writeKeyFile to identity A", okOne, OPEN_A,
    okRead(small, expectedMetadata({ payloadBytes: JSON.stringify(small).length })), INSPECT_OK);

  const okTwo = await writeWithLibrary(small, { recipients: [a.recipient, b.recipient] });
  add("ok--two-recipients", "sealed to A and B, opened with B (the second stanza)", okTwo, OPEN_B,
    okRead(small, expectedMetadata({
      recipients: [a.recipient.fingerprint, b.recipient.fingerprint],
      stanzaTypes: ["x25519", "x25519"],
      payloadBytes: JSON.stringify(small).length,
    })), INSPECT_OK);

  const boundary = utf8BoundaryPayload();
  const boundaryBytes = Buffer.byteLength(JSON.stringify(boundary));
  const okBoundary = await writeWithLibrary(boundary, { recipients: [a.recipient] });
  add("ok--multi-chunk-utf8", "3 chunks, multibyte characters split across chunk boundaries", okBoundary, OPEN_A,
    okRead(boundary, expectedMetadata({ payloadBytes: boundaryBytes })), INSPECT_OK);

  const exact = exactLengthPayload(2 * format.CHUNK_BYTES);
  const okExact = await writeWithLibrary(exact, { recipients: [a.recipient] });
  add("ok--exact-chunk-multiple", "payload of exactly 131072 bytes: two full chunks, the second final", okExact,
    OPEN_A, okRead(exact, expectedMetadata({ payloadBytes: 2 * format.CHUNK_BYTES })), INSPECT_OK);

  const okPassphrase = await writeWithLibrary(small, { recipients: [], passphrase: PASSPHRASE, passphraseCost: LOW_COST });
  add("ok--passphrase", "passphrase only; the sidecar gives the passphrase in NFD form, which must match",
    okPassphrase, { passphrase: PASSPHRASE.normalize("NFD") },
    okRead(small, expectedMetadata({
      recipients: [], passphrase: true, stanzaTypes: ["argon2id"], payloadBytes: JSON.stringify(small).length,
    })), INSPECT_OK);

  const futureStanza = { kind: "unsupported", type: "future-kind", args: ["abc", "def=="] };
  const okUnsupported = craft({ recipients: [a.recipient], extraStanzas: [futureStanza], plaintext: utf8(JSON.stringify(small)) });
  add("ok--unsupported-stanza-skipped", "an unknown stanza type is skipped, and the MAC still covers it",
    okUnsupported, OPEN_A, okRead(small, expectedMetadata({
      stanzaTypes: ["x25519", "future-kind"], payloadBytes: JSON.stringify(small).length,
    })), INSPECT_OK);

  // --- wrong credentials
  add("wrong-identity--sealed-to-a", "sealed to A only, opened with B", okOne, OPEN_B,
    fail("KEY_NO_MATCH", "R17"), INSPECT_OK);
  const onlyFuture = craft({ extraStanzas: [futureStanza], plaintext: utf8("{}") });
  add("wrong-identity--only-unsupported-stanzas", "no stanza of a type this version opens", onlyFuture, OPEN_A,
    fail("KEY_NO_MATCH", "R17"), INSPECT_OK);
  add("wrong-passphrase--passphrase", "passphrase file opened with another passphrase", okPassphrase,
    { passphrase: "wrong passphrase" }, fail("KEY_NO_MATCH", "R17"), INSPECT_OK);

  // --- Argon2id cost caps, checked before Argon2id runs
  const argonLine = (line) => line.startsWith("-> argon2id");
  const setCost = (opslimit, memlimit) => (line) => {
    const parts = line.split(" ");
    parts[3] = opslimit ?? parts[3];
    parts[4] = memlimit ?? parts[4];
    return parts.join(" ");
  };
  add("kdf-cost-too-high--opslimit", "OPSLIMIT 11, over the cap of 10",
    replaceLine(okPassphrase, argonLine, setCost("11")), OPEN_PASSPHRASE, fail("KEY_LIMIT", "R15"), fail("KEY_LIMIT", "R15"));
  add("kdf-cost-too-high--memlimit", "MEMLIMIT 4 GiB, over the cap of 1 GiB",
    replaceLine(okPassphrase, argonLine, setCost(undefined, "4294967296")), OPEN_PASSPHRASE,
    fail("KEY_LIMIT", "R15"), fail("KEY_LIMIT", "R15"));
  add("malformed--argon2id-cost-below-minimum", "OPSLIMIT 0", replaceLine(okPassphrase, argonLine, setCost("0")),
    OPEN_PASSPHRASE, fail("KEY_FORMAT", "R14"), fail("KEY_FORMAT", "R14"));

  // --- tampered
  add("tampered--meta-field", "the patients count in the meta line was changed from 3 to 4",
    replaceLine(okOne, (line) => line.startsWith("meta "), (line) => line.replace('"patients":3', '"patients":4')),
    OPEN_A, fail("KEY_AUTH", "R19"), INSPECT_OK);
  add("tampered--mac", "one character of the MAC was changed",
    replaceLine(okOne, (line) => line.startsWith("--- "), (line) => flipBase64Character(line, 10)),
    OPEN_A, fail("KEY_AUTH", "R19"), INSPECT_OK);
  add("tampered--stanza", "one character of A's sealed file key was changed",
    replaceLine(okOne, (line) => line.startsWith("-> x25519"), (line) => flipBase64Character(line, 60)),
    OPEN_A, fail("KEY_AUTH", "R18"), INSPECT_OK);
  const lengthPlusOne = replaceLine(okOne, (line) => line.startsWith("payload "), (line) => {
    return `payload ${Number(line.slice(8)) + 1}`;
  });
  add("tampered--payload-length", "the payload length was raised by one", lengthPlusOne, OPEN_A,
    fail("KEY_AUTH", "R19"), fail("KEY_TRUNCATED", "R20"));

  const boundaryParts = splitHeader(okBoundary);
  const headerLength = boundaryParts.header.length;
  const chunkStart = (index) => headerLength + format.STREAM_HEADER_BYTES + index * (format.CHUNK_BYTES + format.CHUNK_OVERHEAD_BYTES);
  const flippedChunk = Uint8Array.from(okBoundary);
  flippedChunk[chunkStart(1) + 1000] ^= 0x01;
  add("tampered--payload-chunk", "one bit of the second chunk was flipped", flippedChunk, OPEN_A,
    fail("KEY_AUTH", "R22"), INSPECT_OK);
  const flippedStreamHeader = Uint8Array.from(okBoundary);
  flippedStreamHeader[headerLength + 5] ^= 0x80;
  add("tampered--stream-header", "one bit of the secretstream header was flipped", flippedStreamHeader, OPEN_A,
    fail("KEY_AUTH", "R22"), INSPECT_OK);
  const swapped = Uint8Array.from(okBoundary);
  const chunkLength = format.CHUNK_BYTES + format.CHUNK_OVERHEAD_BYTES;
  swapped.set(okBoundary.subarray(chunkStart(1), chunkStart(1) + chunkLength), chunkStart(0));
  swapped.set(okBoundary.subarray(chunkStart(0), chunkStart(0) + chunkLength), chunkStart(1));
  add("tampered--chunks-swapped", "the first two chunks were swapped", swapped, OPEN_A,
    fail("KEY_AUTH", "R22"), INSPECT_OK);

  // --- truncated
  add("truncated--empty", "an empty file", new Uint8Array(0), OPEN_A,
    fail("KEY_TRUNCATED", "R1"), fail("KEY_TRUNCATED", "R1"));
  const stanzaOffset = Buffer.from(okOne).indexOf("-> x25519");
  add("truncated--inside-header", "the file ends inside the stanza line", okOne.subarray(0, stanzaOffset + 40), OPEN_A,
    fail("KEY_TRUNCATED", "R1"), fail("KEY_TRUNCATED", "R1"));
  add("truncated--after-header", "the file ends right after the MAC line",
    okOne.subarray(0, splitHeader(okOne).header.length), OPEN_A, fail("KEY_TRUNCATED", "R20"), fail("KEY_TRUNCATED", "R20"));
  add("truncated--last-chunk-dropped", "the last of 3 chunks is missing", okBoundary.subarray(0, chunkStart(2)), OPEN_A,
    fail("KEY_TRUNCATED", "R20"), fail("KEY_TRUNCATED", "R20"));
  add("truncated--mid-chunk", "the last 100 bytes are missing", okBoundary.subarray(0, okBoundary.length - 100), OPEN_A,
    fail("KEY_TRUNCATED", "R20"), fail("KEY_TRUNCATED", "R20"));
  const exactPlaintext = utf8(JSON.stringify(exact));
  const noFinalTag = craft({ recipients: [a.recipient], plaintext: exactPlaintext, tagFor: () => seal.TAG_MESSAGE });
  add("truncated--final-tag-missing", "every chunk carries TAG_MESSAGE, so the end of the stream is not marked",
    noFinalTag, OPEN_A, fail("KEY_TRUNCATED", "R23"), INSPECT_OK);

  // --- version
  add("unknown-version--2", "an ok file with version 2 on the first line",
    replaceLine(okOne, (line) => line.startsWith("deidkit-keyfile/"), () => "deidkit-keyfile/2"), OPEN_A,
    fail("KEY_VERSION", "R3"), fail("KEY_VERSION", "R3"));
  add("unknown-version--future-layout", "version 17 with a header that version 1 could not parse",
    utf8("deidkit-keyfile/17\nsomething entirely different\n\u0000\u0001"), OPEN_A,
    fail("KEY_VERSION", "R3"), fail("KEY_VERSION", "R3"));

  // --- malformed header
  add("malformed--not-a-key-file", "a recipient file passed as a key file", utf8(`${a.recipient.text}\n`), OPEN_A,
    fail("KEY_FORMAT", "R2"), fail("KEY_FORMAT", "R2"));
  add("malformed--version-not-a-number", "the version line ends in letters", utf8("deidkit-keyfile/one\n"), OPEN_A,
    fail("KEY_FORMAT", "R2"), fail("KEY_FORMAT", "R2"));
  const crlf = splitHeader(okOne);
  add("malformed--crlf", "the header lines end in CRLF", joinHeader(crlf.lines.map((line) => `${line}\r`), crlf.rest),
    OPEN_A, fail("KEY_FORMAT", "R5"), fail("KEY_FORMAT", "R5"));
  const swappedLines = splitHeader(okOne);
  [swappedLines.lines[1], swappedLines.lines[2]] = [swappedLines.lines[2], swappedLines.lines[1]];
  add("malformed--line-order", "the payload line comes before the meta line",
    joinHeader(swappedLines.lines, swappedLines.rest), OPEN_A, fail("KEY_FORMAT", "R6"), fail("KEY_FORMAT", "R6"));
  const metaLine = (line) => line.startsWith("meta ");
  add("malformed--meta-extra-member", "the meta object has a member that version 1 does not define",
    replaceLine(okOne, metaLine, (line) => line.replace('{"created"', '{"note":"x","created"')), OPEN_A,
    fail("KEY_FORMAT", "R7"), fail("KEY_FORMAT", "R7"));
  add("malformed--meta-control-character", "a field value contains ESC, which could drive a terminal",
    replaceLine(okOne, metaLine, (line) => line.replace('"site":"', '"site":"\\u001b[2J')), OPEN_A,
    fail("KEY_FORMAT", "R7"), fail("KEY_FORMAT", "R7"));
  add("malformed--meta-created", "the created time is not in UTC",
    replaceLine(okOne, metaLine, (line) => line.replace(/"created":"[^"]*"/, '"created":"2025-03-01T10:30:00+01:00"')),
    OPEN_A, fail("KEY_FORMAT", "R7"), fail("KEY_FORMAT", "R7"));
  const payloadLine = (line) => line.startsWith("payload ");
  add("malformed--payload-length-leading-zero", "the payload length has a leading zero",
    replaceLine(okOne, payloadLine, (line) => line.replace("payload ", "payload 0")), OPEN_A,
    fail("KEY_FORMAT", "R9"), fail("KEY_FORMAT", "R9"));
  const noStanza = splitHeader(okOne);
  add("malformed--no-stanza", "the MAC line follows the payload line directly",
    joinHeader(noStanza.lines.filter((line) => !line.startsWith("->")), noStanza.rest), OPEN_A,
    fail("KEY_FORMAT", "R11"), fail("KEY_FORMAT", "R11"));
  add("malformed--stanza-double-space", "two spaces between stanza arguments",
    replaceLine(okOne, (line) => line.startsWith("-> x25519"), (line) => line.replace("x25519 ", "x25519  ")), OPEN_A,
    fail("KEY_FORMAT", "R11"), fail("KEY_FORMAT", "R11"));
  add("malformed--x25519-short", "the sealed file key is 79 bytes",
    replaceLine(okOne, (line) => line.startsWith("-> x25519"), (line) => line.slice(0, -2)), OPEN_A,
    fail("KEY_FORMAT", "R13"), fail("KEY_FORMAT", "R13"));
  const duplicate = splitHeader(okOne);
  const stanzaIndex = duplicate.lines.findIndex((line) => line.startsWith("-> x25519"));
  duplicate.lines.splice(stanzaIndex, 0, duplicate.lines[stanzaIndex]);
  add("malformed--x25519-duplicate", "the same x25519 stanza appears twice", joinHeader(duplicate.lines, duplicate.rest),
    OPEN_A, fail("KEY_FORMAT", "R13"), fail("KEY_FORMAT", "R13"));
  const twoArgon = splitHeader(okPassphrase);
  const argonIndex = twoArgon.lines.findIndex(argonLine);
  twoArgon.lines.splice(argonIndex, 0, twoArgon.lines[argonIndex]);
  add("malformed--argon2id-twice", "two argon2id stanzas", joinHeader(twoArgon.lines, twoArgon.rest), OPEN_PASSPHRASE,
    fail("KEY_FORMAT", "R14"), fail("KEY_FORMAT", "R14"));
  add("malformed--mac-padded", "the MAC carries base64 padding",
    replaceLine(okOne, (line) => line.startsWith("--- "), (line) => `${line}=`), OPEN_A,
    fail("KEY_FORMAT", "R16"), fail("KEY_FORMAT", "R16"));
  add("malformed--trailing-data", "bytes appended after the last chunk",
    new Uint8Array(Buffer.concat([okOne, Buffer.from("appended")])), OPEN_A,
    fail("KEY_FORMAT", "R21"), fail("KEY_FORMAT", "R21"));

  // --- malformed payload, authenticated
  add("malformed--early-final-tag", "the first of 3 chunks carries TAG_FINAL",
    craft({
      recipients: [a.recipient],
      plaintext: utf8(JSON.stringify(boundary)),
      tagFor: (i, count) => (i === 0 || i === count - 1 ? seal.TAG_FINAL : seal.TAG_MESSAGE),
    }),
    OPEN_A, fail("KEY_FORMAT", "R24"), INSPECT_OK);
  add("malformed--payload-not-json", "the payload is not JSON; the error must not quote it",
    craft({ recipients: [a.recipient], plaintext: utf8("{SECRET-PAYLOAD-MARKER: 1.2.840.99999}") }), OPEN_A,
    fail("KEY_FORMAT", "R25"), INSPECT_OK);
  add("malformed--payload-array", "the payload is a JSON array",
    craft({ recipients: [a.recipient], plaintext: utf8('["SECRET-PAYLOAD-MARKER"]') }), OPEN_A,
    fail("KEY_FORMAT", "R25"), INSPECT_OK);
  add("malformed--payload-invalid-utf8", "the payload contains the byte 0xFF",
    craft({ recipients: [a.recipient], plaintext: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) }), OPEN_A,
    fail("KEY_FORMAT", "R25"), INSPECT_OK);
  add("malformed--payload-bom", "the payload starts with a UTF-8 byte order mark",
    craft({ recipients: [a.recipient], plaintext: utf8('\ufeff{"a":1}') }), OPEN_A, fail("KEY_FORMAT", "R25"), INSPECT_OK);

  // --- limits
  const longArgs = Array.from({ length: 8 }, () => "x".repeat(1024));
  const bigStanzas = Array.from({ length: 10 }, () => ({ kind: "unsupported", type: "future-kind", args: longArgs }));
  add("limit--header-too-large", "ten 8 KiB stanzas push the MAC line past 64 KiB",
    craft({ recipients: [a.recipient], extraStanzas: bigStanzas, plaintext: utf8("{}") }), OPEN_A,
    fail("KEY_LIMIT", "R4"), fail("KEY_LIMIT", "R4"));
  const manyStanzas = Array.from({ length: 64 }, () => futureStanza);
  add("limit--too-many-stanzas", "65 stanzas",
    craft({ recipients: [a.recipient], extraStanzas: manyStanzas, plaintext: utf8("{}") }), OPEN_A,
    fail("KEY_LIMIT", "R12"), fail("KEY_LIMIT", "R12"));
  add("limit--payload-length", "the payload length is 512 MiB plus one byte",
    replaceLine(okOne, payloadLine, () => `payload ${format.MAX_PAYLOAD_BYTES + 1}`), OPEN_A,
    fail("KEY_LIMIT", "R10"), fail("KEY_LIMIT", "R10"));
  const manyFields = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, i]));
  add("limit--too-many-fields", "65 metadata fields",
    replaceLine(okOne, metaLine, () => `meta ${format.serializeMetadata({ created: CREATED.toISOString(), tool: TOOL, fields: manyFields })}`),
    OPEN_A, fail("KEY_LIMIT", "R8"), fail("KEY_LIMIT", "R8"));

  return vectors;
}

async function main() {
  await seal.loadSodium();
  const a = await testIdentity("A");
  const b = await testIdentity("B");
  const existing = await readdir(outputDir).catch(() => []);
  for (const name of existing) {
    if (name.endsWith(".dkey") || (name.endsWith(".json") && name.includes("--"))) {
      await rm(join(outputDir, name));
    }
  }
  await writeFile(join(outputDir, "test-identity-a.key"), testIdentityFileText(a, "A"), { mode: 0o600 });
  await writeFile(join(outputDir, "test-identity-b.key"), testIdentityFileText(b, "B"), { mode: 0o600 });

  const vectors = await buildVectors(a, b);
  for (const vector of vectors) {
    const outcome = vector.name.split("--")[0];
    const sidecar = {
      description: vector.description,
      outcome,
      credential: vector.credential,
      read: vector.read,
      inspect: vector.inspect,
    };
    await writeFile(join(outputDir, `${vector.name}.dkey`), vector.bytes);
    await writeFile(join(outputDir, `${vector.name}.json`), `${JSON.stringify(sidecar, null, 2)}\n`);
  }
  console.log(`wrote ${vectors.length} vectors to ${outputDir}`);
}

await main();
