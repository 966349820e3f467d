/**
 * One test per row of the exit-code table in docs/cli.md, each causing the
 * condition for real.
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, constants, existsSync, openSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { EXIT } from "../../src/cli/exit-codes.js";
import { runDeidkit } from "../helpers/cli.js";
import { makeTestTree, REPO_ROOT, type TestTree } from "../helpers/tree.js";

const CLI = join(REPO_ROOT, "bin", "deidkit.js");

let tree: TestTree;

beforeEach(async () => {
  tree = await makeTestTree({ include: ["12345678/C1_2019"] });
});

afterEach(async () => {
  await tree.cleanup();
});

function anonymizeArgs(output: string, ...extra: string[]): string[] {
  return ["anonymize", tree.input, tree.at(output), "-r", tree.recipientPath, "--secret", tree.secretPath, ...extra];
}

describe("exit codes", () => {
  test("0 when every file is de-identified", async () => {
    const run = await runDeidkit(anonymizeArgs("out"));
    expect(run.code, run.stderr).toBe(EXIT.OK);
    expect(EXIT.OK).toBe(0);
  });

  test("1 when a file is left out", async () => {
    await writeFile(join(tree.input, "broken.dcm"), Buffer.concat([Buffer.alloc(128), Buffer.from("DICM"), Buffer.from([2, 0, 0x10, 0])]));
    const run = await runDeidkit(anonymizeArgs("out"));
    expect(run.code, run.stderr).toBe(1);
    expect(existsSync(tree.at("out"))).toBe(true);
  });

  test("2 for a usage error", async () => {
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/no --recipient given/);
    expect(existsSync(tree.at("out"))).toBe(false);
  });

  test("2 when another run holds the lock", async () => {
    await writeFile(tree.at("out.deidkit-lock"), JSON.stringify({ pid: process.pid, host: hostname(), startedAt: "" }));
    const run = await runDeidkit(anonymizeArgs("out"));
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/another deidkit run .* is writing OUTPUT/);
  });

  test("3 when a key file cannot be opened", async () => {
    expect((await runDeidkit(anonymizeArgs("out"))).code).toBe(0);
    expect((await runDeidkit(["keygen", "--out", tree.at("other-keys")])).code).toBe(0);
    const run = await runDeidkit(["key", "decrypt", tree.at("out.deidkey"), "--identity", tree.at("other-keys", "identity.key")]);
    expect(run.code, run.stderr).toBe(3);
  });

  test("4 when --on-invalid fail meets a damaged file", async () => {
    const ct = await readFile(join(tree.input, "12345678", "C1_2019", "CT", "Doe_Jane_CT_4.dcm"));
    await writeFile(join(tree.input, "cut.dcm"), ct.subarray(0, ct.length - 100));
    const run = await runDeidkit(anonymizeArgs("out", "--on-invalid", "fail"));
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toMatch(/DICOM_INVALID/);
    expect(existsSync(tree.at("out"))).toBe(false);
    expect(existsSync(tree.at("out.deidkey"))).toBe(false);
  });

  // 70 marks a defect in deidkit, which no input is known to cause and the
  // product has no switch to fake, so exit-code-mapping.test.ts checks that
  // an unexpected error maps to 70 instead of running the command.

  test("130 on SIGINT, with nothing published", async () => {
    // The secret is a FIFO: the run blocks reading it until this test
    // writes, which gives a known moment to interrupt it.
    const fifo = tree.at("secret.fifo");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const child = spawn(process.execPath, [CLI, ...anonymizeArgs("out").slice(0, -1), fifo], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));

    // Opening the FIFO for writing without blocking fails (ENXIO) until the child has opened it for reading.
    let writer: number | undefined;
    for (let attempt = 0; attempt < 2000 && writer === undefined; attempt++) {
      try {
        writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        await sleep(10);
      }
    }
    expect(writer).toBeDefined();
    child.kill("SIGINT");
    // Node's process.exit waits for the thread blocked reading the FIFO, so
    // the FIFO is closed once the handler has reported the interrupt.
    while (!stderr.includes("interrupted")) await sleep(10);
    closeSync(writer!);
    const code = await exited;
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted; nothing was published/);
    for (const name of ["out", "out.deidkit-partial", "out.deidkey", "out.report.json", "out.deidkit-lock"]) {
      expect(existsSync(tree.at(name)), name).toBe(false);
    }
  }, 30_000);
});
