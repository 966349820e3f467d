import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { walkTree } from "../../src/tree/walk.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "deidkit.js");
const CT = join(ROOT, "fixtures", "sample", "12345678", "C1_2019", "CT", "Doe_Jane_CT_4.dcm");

let work: string;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "deidkit-walk-"));
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

/** Creates a folder whose name is the Latin-1 byte 0xFC, which is not valid UTF-8. */
function makeLatin1Folder(parent: string): void {
  execFileSync("/bin/sh", ["-c", `mkdir "$1/M$(printf '\\374')ller" && echo text > "$1/M$(printf '\\374')ller/notes.txt"`, "sh", parent]);
}

describe("entries that cannot be examined", () => {
  test("a name that is not valid UTF-8 becomes an unreadable entry", async () => {
    const input = join(work, "in");
    mkdirSync(input);
    makeLatin1Folder(input);
    const entries = await walkTree(input);
    expect(entries.some((entry) => entry.kind === "unreadable")).toBe(true);
  });

  test("the run goes on and leaves the entry out", () => {
    const input = join(work, "in");
    mkdirSync(join(input, "P1"), { recursive: true });
    copyFileSync(CT, join(input, "P1", "ct.dcm"));
    makeLatin1Folder(input);
    execFileSync(process.execPath, [CLI, "keygen", "--out", join(work, "keys")]);
    const run = spawnSync(process.execPath, [CLI, "anonymize", input, join(work, "out"), "-r", join(work, "keys", "recipient.pub")], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/UNREADABLE/);
    const report = JSON.parse(readFileSync(join(work, "out.report.json"), "utf8")) as { filesWritten: number };
    expect(report.filesWritten).toBe(1);
  });
});
