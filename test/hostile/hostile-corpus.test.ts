/**
 * Runs the command over fixtures/hostile (made by
 * scripts/make-hostile-fixtures.js) and over inputs too large to commit.
 * Every file must be de-identified or left out with a reason code, and the
 * run must not crash or hang. No identifier planted in the corpus may reach
 * an output byte, an output path, the report or the terminal.
 */
import { readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { runDeidkit, type CliRun } from "../helpers/cli.js";
import { deflatedPart10, encodeDataset, EXPLICIT_LE, part10, text, type ElementSpec } from "../helpers/dicom-bytes.js";
import { decryptKey, FIXTURES_DIR, listEntries, makeTestTree, readTreeFiles, type TestTree } from "../helpers/tree.js";

interface Manifest {
  files: Array<{ name: string; expect: "write" | "quarantine" | "either"; note: string }>;
  planted: string[];
}

const MANIFEST = JSON.parse(readFileSync(join(FIXTURES_DIR, "hostile.manifest.json"), "utf8")) as Manifest;

let tree: TestTree;

beforeEach(async () => {
  tree = await makeTestTree({ fixture: "hostile" });
});

afterEach(async () => {
  await tree.cleanup();
});

function anonymize(input: string, output: string, ...extra: string[]): Promise<CliRun> {
  return runDeidkit(["anonymize", input, tree.at(output), "-r", tree.recipientPath, "--secret", tree.secretPath, ...extra]);
}

/** Collects every place a run shows data: output bytes (as latin1 and UTF-8), output paths, the report and the terminal. */
async function everythingShown(run: CliRun, output: string): Promise<Array<{ where: string; text: string }>> {
  const shown = [
    { where: "stdout", text: run.stdout },
    { where: "stderr", text: run.stderr },
    { where: "report", text: await readFile(tree.at(`${output}.report.json`), "utf8") },
    { where: "paths", text: (await listEntries(tree.at(output))).join("\n") },
  ];
  for (const file of await readTreeFiles(tree.at(output))) {
    shown.push({ where: file.relativePath, text: file.bytes.toString("latin1") }, { where: file.relativePath, text: file.bytes.toString("utf8") });
  }
  return shown;
}

async function expectNoPlantedIdentifier(run: CliRun, output: string, planted: readonly string[]): Promise<void> {
  for (const { where, text: shown } of await everythingShown(run, output)) {
    for (const identifier of planted) {
      expect(shown.includes(identifier), `${JSON.stringify(identifier)} in ${where}`).toBe(false);
    }
  }
}

describe("hostile corpus", () => {
  test("every file written or left out, nothing leaks", async () => {
    const run = await anonymize(tree.input, "out");
    expect(run.code, run.stderr).toBe(1);
    const report = JSON.parse(await readFile(tree.at("out.report.json"), "utf8")) as {
      filesSeen: number;
      filesWritten: number;
      quarantined: Array<{ reason: string; message: string }>;
    };
    expect(report.filesSeen).toBe(MANIFEST.files.length);
    expect(report.filesWritten + report.quarantined.length).toBe(MANIFEST.files.length);
    for (const entry of report.quarantined) {
      expect(entry.reason).toMatch(/^[A-Z_]+$/);
      expect(entry.message.length).toBeGreaterThan(0);
    }

    const key = await decryptKey(tree.at("out.deidkey"), tree.identityPath);
    for (const file of MANIFEST.files) {
      const record = key.files.find((candidate) => candidate.input === file.name);
      expect(record, file.name).toBeDefined();
      if (file.expect === "write") expect(record!.status, `${file.name}: ${file.note}`).toBe("written");
      if (file.expect === "quarantine") expect(record!.status, `${file.name}: ${file.note}`).toBe("quarantined");
    }
    await expectNoPlantedIdentifier(run, "out", MANIFEST.planted);
  }, 60_000);

  test("fail mode stops at a hostile file", async () => {
    const run = await anonymize(tree.input, "out", "--on-invalid", "fail");
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/a file cannot be de-identified: [A-Z_]+: /);
    for (const identifier of MANIFEST.planted) expect(run.stderr.includes(identifier), identifier).toBe(false);
  }, 60_000);

  test("with one worker thread per file", async () => {
    const run = await anonymize(tree.input, "out", "--jobs", "4");
    expect(run.code, run.stderr).toBe(1);
    await expectNoPlantedIdentifier(run, "out", MANIFEST.planted);
  }, 60_000);
});

/** Encodes a CT-like data set with a planted name and ID, plus `extra` elements in tag order. */
function dataset(id: string, extra: ElementSpec[] = []): Buffer {
  const elements: ElementSpec[] = [
    text(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2"),
    text(0x00080018, "UI", `1.2.826.0.1.3680043.10.4243.${id.length}`),
    ...extra,
    text(0x00100010, "PN", `BIG^${id}`),
    text(0x00100020, "LO", id),
  ];
  return encodeDataset(elements, EXPLICIT_LE);
}

/** Builds a sequence (0008,1115) of `count` empty items of defined length: 8 bytes each. */
function manyItems(count: number): ElementSpec {
  const items = Buffer.alloc(count * 8);
  for (let index = 0; index < count; index++) {
    items.writeUInt16LE(0xfffe, index * 8);
    items.writeUInt16LE(0xe000, index * 8 + 2);
  }
  return { tag: 0x00081115, vr: "SQ", value: items };
}

describe("limits on the command line", () => {
  async function singleFileTree(name: string, bytes: Buffer): Promise<string> {
    const input = tree.at("single");
    await mkdir(input);
    await writeFile(join(input, name), bytes);
    return input;
  }

  test("a million items stay within the default limits", async () => {
    const input = await singleFileTree("items.dcm", part10("1.2.840.10008.1.2.1", dataset("HXMILLION1", [manyItems(1_000_000)])));
    const run = await anonymize(input, "out");
    expect([0, 1]).toContain(run.code);
    await expectNoPlantedIdentifier(run, "out", ["HXMILLION1", "BIG^HXMILLION1"]);
  }, 60_000);

  test.each([
    ["--max-elements", "1000", () => part10("1.2.840.10008.1.2.1", dataset("HXITEMS22", [manyItems(5000)]))],
    ["--max-header-bytes", "16", () => part10("1.2.840.10008.1.2.1", dataset("HXHEADER33"))],
    ["--max-inflated-bytes", "64", () => deflatedPart10(dataset("HXINFLATE44", [text(0x00081030, "LO", "x".repeat(200))]))],
    ["--max-depth", "3", () => readFileSync(join(FIXTURES_DIR, "hostile", "limits", "nested-10000.dcm"))],
  ])("%s names itself when exceeded", async (option, value, build) => {
    const input = await singleFileTree("limit.dcm", build());
    const run = await anonymize(input, "out", option, value);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/LIMIT_EXCEEDED/);
    expect(run.stderr).toContain(`raise ${option}`);
    const report = await readFile(tree.at("out.report.json"), "utf8");
    expect(report).toContain(`raise ${option}`);
    expect(run.stderr).not.toMatch(/HX[A-Z]+\d\d/);
  }, 60_000);
});
