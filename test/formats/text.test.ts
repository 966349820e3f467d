import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { TextCleaner } from "../../src/deid/cleaner.js";
import { IdentifierRegistry } from "../../src/deid/identifiers.js";
import { textFormat } from "../../src/formats/text.js";
import type { WriteContext } from "../../src/formats/types.js";
import { initSodium } from "../../src/pseudonym/keyed-hash.js";

await initSodium();

let work: string;
let context: WriteContext;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "deidkit-text-"));
  const registry = new IdentifierRegistry(new Uint8Array(32).fill(3), { shiftDates: true });
  const patient = registry.patient("12345678");
  registry.addPatientName("MÜLLER^JÖRG", patient);
  const cleaner = new TextCleaner(registry.allTerms(), (uid) => uid);
  context = {
    cleaner,
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

describe("text files", () => {
  test("identifiers go, line endings stay", async () => {
    writeFileSync(join(work, "in.txt"), "Patient Müller, Jörg\r\nMRN 12345678 and 512345678\r\nno newline at end");
    const result = await textFormat.write(join(work, "in.txt"), join(work, "out.txt"), context);
    const out = readFileSync(join(work, "out.txt"), "utf8");
    expect(out).not.toMatch(/Müller|Jörg|(?<!\d)12345678/);
    expect(out).toContain("512345678");
    expect(out.split("\r\n")).toHaveLength(3);
    expect(out.endsWith("no newline at end")).toBe(true);
    expect(result.replacements).toBeGreaterThanOrEqual(2);
  });

  test("a Latin-1 file is read and written as Latin-1", async () => {
    writeFileSync(join(work, "in.txt"), Buffer.from("Befund MÜLLER Jörg\n", "latin1"));
    await textFormat.write(join(work, "in.txt"), join(work, "out.txt"), context);
    const out = readFileSync(join(work, "out.txt"));
    expect(out.toString("latin1")).not.toMatch(/MÜLLER|Jörg/);
    expect(out.toString("latin1").startsWith("Befund ")).toBe(true);
  });

  test("a file larger than the first read is cleaned across every read boundary", async () => {
    // Lines of 1,000 bytes put identifiers and two-byte characters across the
    // 64 KiB chunk boundaries and the 1 MiB boundary after the encoding probe.
    const line = (index: number) => `${String(index).padStart(6, "0")} ${"x".repeat(960)} MRN 12345678 Müller\n`;
    const lines = Array.from({ length: 3000 }, (_, index) => line(index));
    const input = Buffer.from(lines.join(""), "utf8");
    expect(input.length).toBeGreaterThan(2 * 1024 * 1024);
    writeFileSync(join(work, "in.log"), input);
    const result = await textFormat.write(join(work, "in.log"), join(work, "out.log"), context);
    const out = readFileSync(join(work, "out.log"), "utf8");
    expect(out).not.toMatch(/12345678|Müller|\uFFFD/);
    const outLines = out.split("\n");
    expect(outLines).toHaveLength(3001);
    expect(outLines[2999].startsWith(`002999 ${"x".repeat(960)} MRN `)).toBe(true);
    expect(result.replacements).toBe(6000);
  });

  test("a symbolic link in place of the input is not followed", async () => {
    writeFileSync(join(work, "target.txt"), "12345678\n");
    symlinkSync(join(work, "target.txt"), join(work, "in.txt"));
    await expect(textFormat.write(join(work, "in.txt"), join(work, "out.txt"), context)).rejects.toThrow(/ELOOP/);
  });

  test("an existing target is never overwritten", async () => {
    writeFileSync(join(work, "in.txt"), "12345678\n");
    writeFileSync(join(work, "out.txt"), "keep");
    await expect(textFormat.write(join(work, "in.txt"), join(work, "out.txt"), context)).rejects.toThrow(/EEXIST/);
    expect(readFileSync(join(work, "out.txt"), "utf8")).toBe("keep");
  });
});
