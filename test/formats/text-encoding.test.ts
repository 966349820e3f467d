/**
 * Encodings of text and CSV files: what is recognised, what is cleaned in
 * its own encoding, and what is left out because identifiers in it could
 * not be found.
 */
import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { QuarantineReason } from "../../src/deid/apply.js";
import { csvFormat } from "../../src/formats/csv.js";
import { judgeEncoding } from "../../src/formats/text-encoding.js";
import { textFormat } from "../../src/formats/text.js";
import { makeTestTree, REPO_ROOT } from "../helpers/tree.js";
import { makeFormatRun, seedSamplePatient, type FormatRun } from "./format-context.js";

const MIB = 1024 * 1024;

function utf16le(text: string, byteOrderMark: boolean): Buffer {
  return Buffer.concat([byteOrderMark ? Buffer.from([0xff, 0xfe]) : Buffer.alloc(0), Buffer.from(text, "utf16le")]);
}

/** 2 MiB of ASCII lines, so that what follows lies beyond the bytes the encoding is judged from. */
const LONG_ASCII_START = Buffer.from("plain line of ASCII text, nothing to replace here\n".repeat(Math.ceil((2 * MIB) / 50)), "latin1");

/** `length` bytes of ASCII lines. */
function asciiBytes(length: number): Buffer {
  const bytes = Buffer.alloc(length, "a");
  for (let index = 99; index < length; index += 100) bytes[index] = 0x0a;
  return bytes;
}

function quarantineCode(error: unknown): string | undefined {
  return error instanceof QuarantineReason ? error.reasonCode : undefined;
}

describe("judging the encoding", () => {
  test.each([
    ["UTF-8", Buffer.from("Müller 12345678\n", "utf8"), "utf8"],
    ["Latin-1", Buffer.from("Müller 12345678\n", "latin1"), "latin1"],
    ["UTF-16LE with a byte-order mark", utf16le("Müller 12345678\n", true), "utf16le"],
    ["UTF-16LE without one", utf16le("Mueller 12345678\n", false), "utf16le"],
    ["UTF-8 cut inside a character", Buffer.from("Müller", "utf8").subarray(0, 2), "utf8"],
  ])("%s", (_name, head, expected) => {
    expect(judgeEncoding(head, true)).toBe(expected);
  });

  test.each([
    ["UTF-16BE with a byte-order mark", Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from("Mueller", "utf16le").swap16()])],
    ["UTF-16BE without one", Buffer.from("Mueller 12345678", "utf16le").swap16()],
    ["UTF-32LE", Buffer.from([0xff, 0xfe, 0, 0, 0x4d, 0, 0, 0])],
  ])("%s is left out", (_name, head) => {
    let caught: unknown;
    try {
      judgeEncoding(head, false);
    } catch (error) {
      caught = error;
    }
    expect(quarantineCode(caught)).toBe("TEXT_ENCODING");
  });
});

describe("text files left out or cleaned", () => {
  let run: FormatRun;
  beforeAll(async () => {
    run = await makeFormatRun(textFormat, (registry) => void seedSamplePatient(registry));
  });
  afterAll(async () => {
    await run?.cleanup();
  });

  test("UTF-16LE cleaned and kept UTF-16LE", async () => {
    const { output, replacements } = await run.run("notes.txt", utf16le("Patient DOE, JANE, MRN 12345678\r\nnext line\r\n", true));
    expect(output.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xfe]));
    const text = output.subarray(2).toString("utf16le");
    expect(text).not.toMatch(/DOE|JANE|12345678/);
    expect(text.endsWith("next line\r\n")).toBe(true);
    expect(replacements).toBeGreaterThanOrEqual(2);
  });

  test("Latin-1 byte in UTF-8 text", async () => {
    const content = Buffer.concat([Buffer.from("patient Jörg Müller 12345678\n", "utf8"), Buffer.from("caf\xe9\n", "latin1")]);
    const failure = await run.run("mixed.log", content).catch((error: unknown) => error);
    expect(quarantineCode(failure)).toBe("TEXT_ENCODING");
  });

  test("UTF-8 name late in Latin-1 text", async () => {
    const start = Buffer.concat([Buffer.from("Befund J\xf6rg\n", "latin1"), LONG_ASCII_START]);
    const failure = await run.run("late-utf8.log", Buffer.concat([start, Buffer.from("Müller\n", "utf8")])).catch((error: unknown) => error);
    expect(quarantineCode(failure)).toBe("TEXT_ENCODING");
  });

  test("UTF-8 character across two reads", async () => {
    // Reads after the first MiB are 64 KiB long: "ü" (C3 BC) straddles the end of the first one.
    const head = Buffer.from("Befund J\xf6rg\n", "latin1");
    const start = Buffer.concat([head, asciiBytes(MIB + 64 * 1024 - 1 - head.length)]);
    const content = Buffer.concat([start, Buffer.from("ü\n", "utf8")]);
    expect(content.indexOf(Buffer.from("ü", "utf8"))).toBe(MIB + 64 * 1024 - 1);
    const failure = await run.run("split.log", content).catch((error: unknown) => error);
    expect(quarantineCode(failure)).toBe("TEXT_ENCODING");
  });

  test("invalid UTF-8 after the first MiB", async () => {
    const content = Buffer.concat([LONG_ASCII_START, Buffer.from("Patient J\xf6rg M\xfcller 12345678\n", "latin1")]);
    const failure = await run.run("late.log", content).catch((error: unknown) => error);
    expect(quarantineCode(failure)).toBe("TEXT_ENCODING");
  });
});

describe("the end of the bytes the encoding is judged from", () => {
  let run: FormatRun;
  beforeAll(async () => {
    run = await makeFormatRun(textFormat, (registry) => registry.addPatientName("MÜLLER^JÖRG", registry.patient("AB-0042")));
  });
  afterAll(async () => {
    await run?.cleanup();
  });

  /** `length` bytes of ASCII lines of 100 characters, so that what follows starts at byte `length`. */
  function asciiLines(length: number): Buffer {
    const bytes = Buffer.alloc(length, "a");
    for (let index = 100; index < length; index += 101) bytes[index] = 0x0a;
    return bytes;
  }

  test("a UTF-8 character cut there keeps the file UTF-8", async () => {
    // "ü" is C3 BC: its first byte is the last byte judged.
    const tail = Buffer.from("ü\nPatient Jörg Müller, also Müller, Jörg\n", "utf8");
    const { output } = await run.run("cut.txt", Buffer.concat([asciiLines(MIB - 1), tail]));
    const text = output.toString("utf8");
    expect(text).not.toMatch(/Müller|Jörg|\uFFFD/);
    expect(text.slice(MIB - 1, MIB + 1)).toBe("ü\n");
  });

  test("a Latin-1 byte there makes the file Latin-1", async () => {
    // A Latin-1 "ü" (FC) as the last byte judged is not UTF-8 on its own.
    const tail = Buffer.from("\u00fc\nPatient J\u00f6rg M\u00fcller\n", "latin1");
    const { output } = await run.run("latin1.txt", Buffer.concat([asciiLines(MIB - 1), tail]));
    const text = output.toString("latin1");
    expect(text).not.toMatch(/Müller|Jörg/);
    expect(text.slice(MIB - 1, MIB + 1)).toBe("\u00fc\n");
  });
});

describe("CSV files left out or read", () => {
  let run: FormatRun;
  beforeAll(async () => {
    run = await makeFormatRun(csvFormat, (registry) => void seedSamplePatient(registry));
  });
  afterAll(async () => {
    await run?.cleanup();
  });

  test("invalid UTF-8 after the first MiB", async () => {
    const header = Buffer.from("note,value\n", "latin1");
    const rows = Buffer.from("plain row of ASCII text,1\n".repeat(Math.ceil((2 * MIB) / 26)), "latin1");
    const content = Buffer.concat([header, rows, Buffer.from("M\xfcller,2\n", "latin1")]);
    const failure = await run.run("late.csv", content).catch((error: unknown) => error);
    expect(quarantineCode(failure)).toBe("TEXT_ENCODING");
  });

  test("Latin-1 byte in UTF-8 values", async () => {
    const content = Buffer.concat([Buffer.from("patient_id,note\n12345678,Jörg Müller\n", "utf8"), Buffer.from("12345678,caf\xe9\n", "latin1")]);
    const failure = await run.run("mixed.csv", content).catch((error: unknown) => error);
    expect(quarantineCode(failure)).toBe("TEXT_ENCODING");
  });

  test("a UTF-8 table is still read as UTF-8", async () => {
    const { output } = await run.run("names.csv", Buffer.from("patient_id,note\n12345678,Müller ok\n", "utf8"));
    expect(output.toString("utf8")).toContain("Müller ok");
    expect(output.toString("utf8")).not.toContain("12345678");
  });
});

describe("a dry run", () => {
  test("lists a text file in a mixed encoding as left out", async () => {
    const tree = await makeTestTree({ include: [] });
    try {
      await mkdir(join(tree.input, "notes"), { recursive: true });
      await writeFile(join(tree.input, "notes", "mixed.log"), Buffer.concat([Buffer.from("Jörg Müller\n", "utf8"), Buffer.from("caf\xe9\n", "latin1")]));
      await writeFile(join(tree.input, "notes", "plain.log"), "nothing to see\n");
      const run = spawnSync(
        process.execPath,
        [join(REPO_ROOT, "bin", "deidkit.js"), "anonymize", tree.input, tree.at("out"), "-r", tree.recipientPath, "--dry-run", "--json"],
        { encoding: "utf8" },
      );
      expect(run.status, run.stderr).toBe(1);
      const plan = (JSON.parse(run.stdout) as { plan: Array<{ action: string; reason?: string }> }).plan;
      expect(plan.map((step) => [step.action, step.reason ?? null]).sort()).toEqual([
        ["quarantine", "TEXT_ENCODING"],
        ["write", null],
      ]);
      expect(run.stdout + run.stderr).not.toMatch(/Jörg|Müller/);
    } finally {
      await tree.cleanup();
    }
  }, 30_000);
});
