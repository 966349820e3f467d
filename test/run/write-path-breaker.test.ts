/**
 * The streamed write pass run by the built CLI with worker threads: cases
 * where results arrive out of INPUT's path order.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { EXPLICIT_LE, encodeDataset, item, part10, sequence, text, type ElementSpec } from "../helpers/dicom-bytes.js";
import { makeTestTree, REPO_ROOT, type TestTree } from "../helpers/tree.js";

const CLI = join(REPO_ROOT, "bin", "deidkit.js");
const EXPLICIT_LE_UID = "1.2.840.10008.1.2.1";

let tree: TestTree;

/** Builds a Part 10 CT file with a Burned In Annotation flag and, optionally, a long code sequence that is slow to parse. */
function ctFile(instance: number, options: { burnedIn: boolean; codeItems?: number }): Buffer {
  const elements: ElementSpec[] = [
    text(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2"),
    text(0x00080018, "UI", `1.2.826.0.1.3680043.10.1234.77.${instance}`),
  ];
  elements.push(text(0x00100010, "PN", "BREAKER^ANNA"), text(0x00100020, "LO", "BRK-0001"));
  if (options.burnedIn) elements.push(text(0x00280301, "CS", "YES"));
  if (options.codeItems) {
    const items = Array.from({ length: options.codeItems }, (_, index) => item([text(0x00080100, "SH", `C${index}`), text(0x00080104, "LO", `code ${index}`)]));
    elements.push(sequence(0x0040a043, items));
  }
  return part10(EXPLICIT_LE_UID, encodeDataset(elements, EXPLICIT_LE));
}

function runCli(args: readonly string[]): { status: number | null; stderr: string; stdout: string } {
  const child = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { status: child.status, stderr: child.stderr, stdout: child.stdout };
}

beforeAll(async () => {
  tree = await makeTestTree({ include: [] });
}, 60_000);

afterAll(async () => {
  await tree?.cleanup();
});

describe("--on-invalid fail with worker threads", () => {
  test("names the first invalid file in path order", async () => {
    // 20 files, so that the run uses workers. With two workers, file 1 (slow
    // to parse) and file 3 (fast) go to different workers, and file 3's
    // result arrives first. Both are left out in the write pass.
    await writeFile(join(tree.input, "a00.dcm"), ctFile(0, { burnedIn: true, codeItems: 40_000 }));
    for (let instance = 1; instance < 20; instance++) {
      await writeFile(join(tree.input, `a${String(instance).padStart(2, "0")}.dcm`), ctFile(instance, { burnedIn: instance === 2 }));
    }
    const output = tree.at("out-fail");
    const run = runCli(["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath, "-j", "2", "--on-invalid", "fail"]);

    expect(run.status, run.stderr).toBe(4);
    expect(run.stderr).toMatch(/BURNED_IN_ANNOTATION/);
    expect(run.stderr).toMatch(/\(file-1\.dcm\)/);
    expect(run.stderr).not.toMatch(/BREAKER|BRK-0001/);
    expect(existsSync(output)).toBe(false);
  }, 60_000);
});
