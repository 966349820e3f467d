/**
 * `anonymize --resume` after a real SIGKILL at each observable point of a
 * run, the run lock, and `--on-invalid fail`. A resumed run must give the
 * same files, the same key content (apart from the run's timestamps) and
 * the same report (apart from its timestamps) as a run that was never
 * interrupted.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { runDeidkit } from "../helpers/cli.js";
import { decryptKey, FIXTURES_DIR, makeTestTree, readTreeFiles, REPO_ROOT, type TestTree } from "../helpers/tree.js";

const CHILD = join(REPO_ROOT, "test", "helpers", "anonymize-child.mjs");
/** Copies of the sample tree in INPUT: enough files for worker threads and for more than one journal batch of 64. */
const COPIES = 4;

let tree: TestTree;
let reference: { files: Array<{ relativePath: string; bytes: Buffer }>; key: unknown; report: unknown };

interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  outcome?: { ok: boolean; code?: string; message?: string };
}

function runChild(output: string, extra: Record<string, unknown> = {}): ChildResult {
  const settings = { input: tree.input, output, recipient: tree.recipientPath, secretFile: tree.secretPath, jobs: 2, ...extra };
  const child = spawnSync(process.execPath, [CHILD, JSON.stringify(settings)], { encoding: "utf8", timeout: 120_000 });
  const line = child.stdout.trim().split("\n").pop();
  return { status: child.status, signal: child.signal, outcome: line ? JSON.parse(line) : undefined };
}

/** The key payload without the run's timestamps, which differ between any two runs. */
async function keyContent(keyPath: string): Promise<unknown> {
  const payload = (await decryptKey(keyPath, tree.identityPath)) as unknown as { run: Record<string, unknown> };
  return { ...payload, run: { ...payload.run, startedAt: undefined, finishedAt: undefined } };
}

async function reportContent(reportPath: string): Promise<unknown> {
  const report = JSON.parse(await readFile(reportPath, "utf8")) as Record<string, unknown>;
  return { ...report, startedAt: undefined, finishedAt: undefined };
}

/** Names next to OUTPUT that only an unfinished run leaves. */
async function leftovers(output: string): Promise<string[]> {
  const base = output.slice(tree.dir.length + 1);
  return (await readdir(tree.dir)).filter((name) => name.startsWith(base) && /deidkit-(partial|state|journal|lock)|\.tmp$|deidkit-tmp/.test(name));
}

beforeAll(async () => {
  tree = await makeTestTree({ include: [] });
  for (let copy = 1; copy <= COPIES; copy++) await cp(join(FIXTURES_DIR, "sample"), join(tree.input, `copy-${copy}`), { recursive: true });
  const run = runChild(tree.at("reference"));
  expect(run.outcome?.ok, JSON.stringify(run.outcome)).toBe(true);
  reference = {
    files: await readTreeFiles(tree.at("reference")),
    key: await keyContent(tree.at("reference.deidkey")),
    report: await reportContent(tree.at("reference.report.json")),
  };
}, 120_000);

afterAll(async () => {
  await tree?.cleanup();
});

describe("resume after SIGKILL", () => {
  const killPoints = [
    "phase:learn",
    "phase:write",
    "write:1",
    "write:70",
    "phase:key",
    "key-written",
    "phase:report",
    "phase:publish",
  ];

  test.each(killPoints)("killed at %s", async (killAt) => {
    const name = `out-${killAt.replace(/\W/g, "-")}`;
    const output = tree.at(name);
    const killed = runChild(output, { killAt });
    expect(killed.signal).toBe("SIGKILL");
    expect(existsSync(output)).toBe(false);

    const resumed = runChild(output, { resume: true });
    expect(resumed.outcome, JSON.stringify(resumed.outcome)).toMatchObject({ ok: true });
    expect(await readTreeFiles(output)).toEqual(reference.files);
    expect(await keyContent(`${output}.deidkey`)).toEqual(reference.key);
    expect(await reportContent(`${output}.report.json`)).toEqual(reference.report);
    expect(await leftovers(output)).toEqual([]);
  }, 120_000);
});

describe("resume checks", () => {
  test("partial folder without --resume is rejected", async () => {
    const output = tree.at("out-no-resume");
    expect(runChild(output, { killAt: "write:70" }).signal).toBe("SIGKILL");
    const run = await runDeidkit(["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/an interrupted run of OUTPUT left its unfinished files/);
    expect(run.stderr).toMatch(/--resume/);

    const resumed = await runDeidkit(["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath, "--resume"]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming the interrupted run: \d+ files already written are kept/);
    expect(await readTreeFiles(output)).toEqual(reference.files);
  }, 120_000);

  test("resume without a secret is a usage error", async () => {
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out-no-secret"), "-r", tree.recipientPath, "--resume"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--resume needs the secret of the interrupted run/);
  });

  test("resume with another secret is rejected", async () => {
    const output = tree.at("out-other-secret");
    expect(runChild(output, { killAt: "write:1" }).signal).toBe("SIGKILL");
    const otherSecret = tree.at("other.secret");
    expect(spawnSync(process.execPath, [join(REPO_ROOT, "bin", "deidkit.js"), "secret", "new", otherSecret]).status).toBe(0);
    const run = await runDeidkit(["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", otherSecret, "--resume"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/the secret differs from the one of the interrupted run/);
    expect(existsSync(`${output}.deidkit-partial`)).toBe(true);
  }, 120_000);

  test("resume with other options is rejected", async () => {
    const output = tree.at("out-other-options");
    expect(runChild(output, { killAt: "write:1" }).signal).toBe("SIGKILL");
    const args = ["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath, "--resume", "--profile", "basic"];
    const run = await runDeidkit(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/the options differ from those of the interrupted run/);
    await rm(`${output}.deidkit-partial`, { recursive: true });
    await rm(`${output}.deidkit-state.json`);
    await rm(`${output}.deidkit-journal`, { force: true });
  }, 120_000);

  test("journal entries hold no input value in clear text", async () => {
    const output = tree.at("out-journal");
    expect(runChild(output, { killAt: "write:70" }).signal).toBe("SIGKILL");
    const journal = await readFile(`${output}.deidkit-journal`, "latin1");
    const state = await readFile(`${output}.deidkit-state.json`, "latin1");
    expect(journal.split("\n").filter(Boolean).length).toBeGreaterThanOrEqual(64);
    for (const text of [journal, state]) {
      for (const identifier of ["12345678", "AB-0042", "1.2.826.0.1.3680043", "copy-1", "Doe_Jane"]) {
        expect(text).not.toContain(identifier);
      }
    }
    expect(runChild(output, { resume: true }).outcome).toMatchObject({ ok: true });
  }, 120_000);

  test("damaged outputs in the staging folder are written again", async () => {
    const output = tree.at("out-damaged");
    expect(runChild(output, { killAt: "write:70" }).signal).toBe("SIGKILL");
    const staged = await readTreeFiles(`${output}.deidkit-partial`);
    const written = staged.filter((file) => file.relativePath.endsWith(".dcm"));
    expect(written.length).toBeGreaterThanOrEqual(2);
    const [cut, overwritten] = written;
    // One output cut short, another overwritten with bytes of the same length.
    await writeFile(join(`${output}.deidkit-partial`, cut.relativePath), cut.bytes.subarray(0, 200));
    await writeFile(join(`${output}.deidkit-partial`, overwritten.relativePath), Buffer.alloc(overwritten.bytes.length));

    expect(runChild(output, { resume: true }).outcome).toMatchObject({ ok: true });
    expect(await readTreeFiles(output)).toEqual(reference.files);
  }, 120_000);

  test("changed input file is written again", async () => {
    const output = tree.at("out-changed");
    expect(runChild(output, { killAt: "write:70" }).signal).toBe("SIGKILL");
    const notes = join(tree.input, "copy-1", "12345678", "C1_2019", "notes.txt");
    const original = await readFile(notes);
    await writeFile(notes, Buffer.concat([original, Buffer.from("one more line\n")]));
    try {
      expect(runChild(output, { resume: true }).outcome).toMatchObject({ ok: true });
      const written = (await readTreeFiles(output)).find((file) => file.relativePath.endsWith("C1_2019/notes.txt") && file.relativePath.startsWith("copy-1/"));
      expect(written?.bytes.toString("utf8")).toMatch(/one more line\n$/);
    } finally {
      await writeFile(notes, original);
    }
  }, 120_000);
});

describe("run lock", () => {
  test("live lock is rejected with exit 2", async () => {
    const output = tree.at("out-locked");
    // This test process is alive, so its id makes a lock that is held.
    await writeFile(`${output}.deidkit-lock`, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: "" }));
    const run = await runDeidkit(["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`another deidkit run \\(process ${process.pid}\\) is writing OUTPUT`));
    expect(existsSync(output)).toBe(false);
    expect(existsSync(`${output}.deidkit-lock`)).toBe(true);
    await rm(`${output}.deidkit-lock`);
  });

  test("lock from another host is rejected", async () => {
    const output = tree.at("out-locked-elsewhere");
    await writeFile(`${output}.deidkit-lock`, JSON.stringify({ pid: 1, host: `${hostname()}-other`, startedAt: "" }));
    const run = await runDeidkit(["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/on host .*-other\) holds the lock of OUTPUT/);
    await rm(`${output}.deidkit-lock`);
  });

  test("stale lock is replaced with a warning", async () => {
    const output = tree.at("out-stale-lock");
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    await writeFile(`${output}.deidkit-lock`, JSON.stringify({ pid: Number(dead.stdout), host: hostname(), startedAt: "" }));
    const run = await runDeidkit(["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(new RegExp(`warning: removed a stale lock of OUTPUT left by process ${dead.stdout}`));
    expect(existsSync(`${output}.deidkit-lock`)).toBe(false);
  }, 120_000);

  test("killed run leaves a lock the resume replaces", async () => {
    const output = tree.at("out-kill-lock");
    expect(runChild(output, { killAt: "write:1" }).signal).toBe("SIGKILL");
    expect(existsSync(`${output}.deidkit-lock`)).toBe(true);
    const run = await runDeidkit(["anonymize", tree.input, output, "-r", tree.recipientPath, "--secret", tree.secretPath, "--resume"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/removed a stale lock/);
    expect(existsSync(`${output}.deidkit-lock`)).toBe(false);
  }, 120_000);
});

describe("--on-invalid", () => {
  test("fail aborts on the first invalid file", async () => {
    const input = tree.at("invalid-input");
    await mkdir(join(input, "12345678"), { recursive: true });
    const ct = await readFile(join(FIXTURES_DIR, "sample", "12345678", "C1_2019", "CT", "Doe_Jane_CT_4.dcm"));
    await writeFile(join(input, "12345678", "a.dcm"), ct);
    await writeFile(join(input, "12345678", "b_Doe_Jane.dcm"), ct.subarray(0, 700));
    await writeFile(join(input, "12345678", "c.dcm"), ct.subarray(0, 500));
    const output = tree.at("out-invalid-fail");
    const run = await runDeidkit(["anonymize", input, output, "-r", tree.recipientPath, "--secret", tree.secretPath, "--on-invalid", "fail"]);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/error: a file cannot be de-identified: DICOM_INVALID: .* \(.*file-2\.dcm\)/);
    expect(run.stderr).toMatch(/--on-invalid quarantine/);
    expect(run.stderr).not.toMatch(/Doe|Jane|12345678/);
    expect(await leftovers(output)).toEqual([]);
    for (const path of [output, `${output}.deidkey`, `${output}.report.json`]) expect(existsSync(path)).toBe(false);

    const quarantined = await runDeidkit(["anonymize", input, tree.at("out-invalid-q"), "-r", tree.recipientPath, "--secret", tree.secretPath]);
    expect(quarantined.code).toBe(1);
  }, 60_000);

  test("unknown value is a usage error", async () => {
    const run = await runDeidkit(["anonymize", tree.input, tree.at("x"), "-r", tree.recipientPath, "--on-invalid", "skip"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/allowed values are quarantine, fail; got "skip"/);
  });
});
