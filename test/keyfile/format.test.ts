import { readFileSync } from "node:fs";

import { describe, expect, test } from "vitest";

import {
  chunkPlaintextLength,
  decodeBase32,
  decodeBase64,
  encodeBase32,
  encodeBase64,
  expectedFileSize,
  parseHeader,
  payloadChunkCount,
  serializeHeaderBody,
  serializeMacLine,
  serializeMetadata,
  type Stanza,
} from "../../src/keyfile/format.js";

describe("format module", () => {
  test("imports no cryptography", () => {
    const source = readFileSync(new URL("../../src/keyfile/format.ts", import.meta.url), "utf8");
    const imports = [...source.matchAll(/^import .* from "([^"]+)";$/gm)].map((match) => match[1]);
    expect(imports).toEqual(["../errors.js"]);
  });
});

describe("base64", () => {
  test("round trips without padding", () => {
    const bytes = new Uint8Array([1, 2, 3, 4, 5]);
    expect(encodeBase64(bytes)).toBe("AQIDBAU");
    expect(decodeBase64("AQIDBAU", 5)).toEqual(bytes);
  });

  test.each([
    ["padding", "AQIDBAU="],
    ["non-zero trailing bits", "AQIDBAV"],
    ["url-safe alphabet", "AQID-AU"],
    ["wrong length", "AQIDBA"],
    ["whitespace", "AQID BAU"],
  ])("rejects %s", (_label, text) => {
    expect(decodeBase64(text, 5)).toBeUndefined();
  });
});

describe("base32", () => {
  test("matches RFC 4648 test vectors", () => {
    const cases: Array<[string, string]> = [
      ["f", "MY"],
      ["fo", "MZXQ"],
      ["foo", "MZXW6"],
      ["foob", "MZXW6YQ"],
      ["fooba", "MZXW6YTB"],
      ["foobar", "MZXW6YTBOI"],
    ];
    for (const [plain, encoded] of cases) {
      const bytes = new Uint8Array(Buffer.from(plain));
      expect(encodeBase32(bytes)).toBe(encoded);
      expect(decodeBase32(encoded, bytes.length)).toEqual(bytes);
    }
  });

  test.each([
    ["non-zero trailing bits", "MZ", 1],
    ["lower case", "mzxw6", 3],
    ["digit outside alphabet", "MZXW1", 3],
    ["wrong length", "MZXW6", 4],
  ])("rejects %s", (_label, text, length) => {
    expect(decodeBase32(text, length)).toBeUndefined();
  });
});

describe("header", () => {
  const stanzas: Stanza[] = [
    { kind: "x25519", fingerprint: "0123456789abcdef", sealedFileKey: new Uint8Array(80).fill(9) },
    { kind: "argon2id", salt: new Uint8Array(16).fill(1), opslimit: 2, memlimit: 65536, wrappedFileKey: new Uint8Array(48) },
    { kind: "unsupported", type: "future-kind", args: ["a", "b"] },
  ];
  const metadata = { created: "2025-01-01T00:00:00.000Z", tool: "deidkit/1", fields: { n: 1, s: "\u00e9" } };

  test("parse inverts serialize", () => {
    const body = serializeHeaderBody(metadata, 1234, stanzas);
    const macLine = serializeMacLine(new Uint8Array(32).fill(5));
    const bytes = new Uint8Array(Buffer.concat([body, macLine, Buffer.from("payload bytes")]));
    const header = parseHeader(bytes, true, "test.dkey");
    expect(header.metadata).toEqual(metadata);
    expect(header.payloadLength).toBe(1234);
    expect(header.stanzas).toEqual(stanzas);
    expect(header.mac).toEqual(new Uint8Array(32).fill(5));
    expect(header.length).toBe(body.length + macLine.length);
    expect(Buffer.from(header.macInput).equals(Buffer.from(body))).toBe(true);
  });

  test("metadata escapes non-ASCII", () => {
    expect(serializeMetadata(metadata)).toBe(
      '{"created":"2025-01-01T00:00:00.000Z","tool":"deidkit/1","fields":{"n":1,"s":"\\u00e9"}}',
    );
  });
});

describe("payload layout", () => {
  test.each([
    [2, 1, 2],
    [65536, 1, 65536],
    [65537, 2, 1],
    [131072, 2, 65536],
  ])("length %i has %i chunks, last %i bytes", (length, chunks, last) => {
    expect(payloadChunkCount(length)).toBe(chunks);
    expect(chunkPlaintextLength(length, chunks - 1)).toBe(last);
    expect(expectedFileSize(100, length)).toBe(100 + 24 + length + 17 * chunks);
  });
});
