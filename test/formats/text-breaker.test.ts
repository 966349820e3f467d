/**
 * Text files whose bytes fall awkwardly on the encoding probe's boundary.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { TextCleaner } from "../../src/deid/cleaner.js";
import { IdentifierRegistry } from "../../src/deid/identifiers.js";
import { textFormat } from "../../src/formats/text.js";
import type { WriteContext } from "../../src/formats/types.js";
import { initSodium } from "../../src/pseudonym/keyed-hash.js";

await initSodium();

/** Bytes the text handler reads to choose between UTF-8 and Latin-1. */
const PROBE_BYTES = 1 << 20;

let work: string;
let context: WriteContext;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "deidkit-text-breaker-"));
  const registry = new IdentifierRegistry(new Uint8Array(32).fill(5), { shiftDates: true });
  const patient = registry.patient("AB-0042");
  registry.addPatientName("MÜLLER^JÖRG", patient);
  context = {
    cleaner: new TextCleaner(registry.allTerms(), (uid) => uid),
    patientFor: (id) => registry.patient(id),
    patient,
    shiftDates: true,
    relativePath: "notes.txt",
    writeNested: async () => {},
  };
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

/** Returns `length` bytes of ASCII lines of 100 characters. */
function asciiLines(length: number): Buffer {
  const bytes = Buffer.alloc(length, "a");
  for (let index = 100; index < length; index += 101) bytes[index] = 0x0a;
  return bytes;
}

describe("text encoding probe", () => {
  test("UTF-8 character cut by the probe end", async () => {
    // "ü" is C3 BC: its first byte is the probe's last byte.
    const tail = Buffer.from("ü\nPatient Jörg Müller, also Müller, Jörg\n", "utf8");
    const input = Buffer.concat([asciiLines(PROBE_BYTES - 1), tail]);
    writeFileSync(join(work, "in.txt"), input);

    await textFormat.write(join(work, "in.txt"), join(work, "out.txt"), context);
    const output = readFileSync(join(work, "out.txt"));
    const text = output.toString("utf8");

    expect(text).not.toMatch(/Müller|Jörg/);
    expect(output.includes(Buffer.from("Müller", "latin1"))).toBe(false);
    expect(text.slice(PROBE_BYTES - 1, PROBE_BYTES + 1)).toBe("ü\n");
    expect(text).not.toContain("\uFFFD");
  });

  test("Latin-1 byte at the probe end", async () => {
    // A Latin-1 "ü" (FC) as the probe's last byte is invalid UTF-8 on its own.
    const tail = Buffer.from("\u00fc\nPatient J\u00f6rg M\u00fcller\n", "latin1");
    const input = Buffer.concat([asciiLines(PROBE_BYTES - 1), tail]);
    writeFileSync(join(work, "in.txt"), input);

    await textFormat.write(join(work, "in.txt"), join(work, "out.txt"), context);
    const text = readFileSync(join(work, "out.txt")).toString("latin1");

    expect(text).not.toMatch(/Müller|Jörg/);
    expect(text.slice(PROBE_BYTES - 1, PROBE_BYTES + 1)).toBe("\u00fc\n");
  });
});
