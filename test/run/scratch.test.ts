/**
 * Scratch folders, where archive members and NIfTI extensions are extracted
 * with their identifiers. anonymize's is next to OUTPUT; scan's, verify's
 * and a dry run's are in the system's temporary folder. No command leaves
 * one behind, and a killed command's is removed by the next one.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { removeStagingFolders, withScratchFolder } from "../../src/run/unpublished.js";
import { FIXTURES_DIR, makeTestTree, REPO_ROOT, type TestTree } from "../helpers/tree.js";

const CLI = join(REPO_ROOT, "bin", "deidkit.js");
const CHILD = join(REPO_ROOT, "test", "helpers", "anonymize-child.mjs");

let tree: TestTree;

beforeAll(async () => {
  tree = await makeTestTree({ include: [] });
});

afterAll(async () => {
  await tree?.cleanup();
});

async function scratchFolders(): Promise<string[]> {
  return (await readdir(tree.dir)).filter((name) => name.includes(".deidkit-scratch-"));
}

describe("scratch folder", () => {
  test("anonymize extracts next to OUTPUT", async () => {
    // With TMPDIR pointing nowhere, an extraction into the system's temporary
    // folder fails, and upload.zip would be left out with IO (ENOENT).
    const output = tree.at("out-tmpdir");
    const run = spawnSync(
      process.execPath,
      [CLI, "anonymize", join(FIXTURES_DIR, "pipeline"), output, "-r", tree.recipientPath, "--secret", tree.secretPath, "--json"],
      { encoding: "utf8", env: { ...process.env, TMPDIR: join(tree.dir, "no-such-folder") } },
    );
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { filesQuarantined: number };
    expect(report.filesQuarantined).toBe(0);
    expect(await scratchFolders()).toEqual([]);
  }, 60_000);

  test("next run removes a stale one", async () => {
    const output = tree.at("out-killed");
    const settings = { input: join(FIXTURES_DIR, "pipeline"), output, recipient: tree.recipientPath, secretFile: tree.secretPath, jobs: 1 };
    const killed = spawnSync(process.execPath, [CHILD, JSON.stringify({ ...settings, killAt: "write:1" })], { encoding: "utf8" });
    expect(killed.signal).toBe("SIGKILL");
    expect(await scratchFolders()).toHaveLength(1);

    // A run without --resume stops at the other leftovers, but removes the scratch folder first.
    const stopped = spawnSync(process.execPath, [CLI, "anonymize", settings.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath], { encoding: "utf8" });
    expect(stopped.status, stopped.stderr).toBe(2);
    expect(await scratchFolders()).toEqual([]);

    const resumed = spawnSync(process.execPath, [CHILD, JSON.stringify({ ...settings, resume: true })], { encoding: "utf8" });
    expect(resumed.stdout).toMatch(/"ok":true/);
    expect(await scratchFolders()).toEqual([]);
  }, 60_000);

  test("interrupt removes the folder in use", async () => {
    let seen = "";
    await withScratchFolder(tree.dir, "interrupted-", async (folder) => {
      seen = folder;
      await writeFile(join(folder, "member-1"), "DOE^JANE 12345678");
      // What the SIGINT handler of bin/deidkit.js calls.
      expect(removeStagingFolders()).toEqual([]);
      expect(existsSync(folder)).toBe(false);
    });
    expect(seen).not.toBe("");
    expect(existsSync(seen)).toBe(false);
  });

  test("scan leaves the temporary folder empty", async () => {
    const temp = join(tree.dir, "scan-tmp");
    await mkdir(temp);
    const run = spawnSync(process.execPath, [CLI, "scan", join(FIXTURES_DIR, "pipeline"), "--json", "--jobs", "2"], {
      encoding: "utf8",
      env: { ...process.env, TMPDIR: temp },
    });
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { files: Array<{ path: string; identifiers: string[]; contentSearched: boolean }> };
    const upload = report.files.find((file) => file.path === "upload.zip");
    expect(upload?.contentSearched).toBe(true);
    expect(upload?.identifiers).toContain("patient-id");
    expect(await readdir(temp)).toEqual([]);
  }, 60_000);

  test("scan removes dead scans' folders only", async () => {
    const temp = join(tree.dir, "orphans-tmp");
    await mkdir(temp);
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
    const orphan = join(temp, `deidkit-scan-${dead}@${hostname()}-AbC123`);
    const alive = join(temp, `deidkit-scan-${process.pid}@${hostname()}-XyZ789`);
    const otherHost = join(temp, `deidkit-scan-${dead}@${hostname()}-elsewhere-QwE456`);
    for (const folder of [orphan, alive, otherHost]) {
      await mkdir(folder);
      await writeFile(join(folder, "member-1"), "DOE^JANE 12345678");
    }
    const run = spawnSync(process.execPath, [CLI, "scan", join(FIXTURES_DIR, "sample"), "--json"], {
      encoding: "utf8",
      env: { ...process.env, TMPDIR: temp },
    });
    expect(run.status, run.stderr).toBe(0);
    expect((await readdir(temp)).sort()).toEqual([alive, otherHost].map((path) => path.slice(temp.length + 1)).sort());
  }, 60_000);
});
