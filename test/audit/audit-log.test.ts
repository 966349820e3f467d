// The audit log: one JSON line per command run, appended, mode 0600, and
// free of identifiers and secrets.

import { readFile, stat, symlink, writeFile } from "node:fs/promises";
import { hostname, userInfo } from "node:os";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { AUDIT_LOG_ENV } from "../../src/audit/audit-log.js";
import { auditOptions, NOT_RECORDED, NOT_RECORDED_INSIDE_INPUT } from "../../src/audit/audit-options.js";
import { TOOL_VERSION } from "../../src/version.js";
import { runDeidkit } from "../helpers/cli.js";
import { makeTestTree, readPlanted, type TestTree } from "../helpers/tree.js";

const PASSPHRASE = "audit test passphrase, never logged";
const ENV_NAME = "DEIDKIT_TEST_AUDIT_PASSPHRASE";

interface AuditLine {
  time: string;
  user: string;
  host: string;
  command: string;
  options: Record<string, unknown>;
  counts: Record<string, number>;
  exitCode: number;
  tool: string;
  version: string;
}

async function readLines(path: string): Promise<{ text: string; lines: AuditLine[] }> {
  const text = await readFile(path, "utf8");
  expect(text.endsWith("\n")).toBe(true);
  return { text, lines: text.trimEnd().split("\n").map((line) => JSON.parse(line) as AuditLine) };
}

describe("audit log", () => {
  let tree: TestTree;
  let log: string;

  beforeAll(async () => {
    tree = await makeTestTree();
    log = tree.at("audit.jsonl");
    process.env[ENV_NAME] = PASSPHRASE;
    const runs = [
      [
        "anonymize", tree.input, tree.at("out"), "--recipient", tree.recipientPath, "--passphrase-env", ENV_NAME,
        "--secret", tree.secretPath, "--pass-through", "*DOE*", "--option", "retain-uids", "-q", "--audit-log", log,
      ],
      ["verify", tree.at("out"), "--key", tree.at("out.deidkey"), "--identity", tree.identityPath, "-q", "--audit-log", log],
      ["key", "decrypt", tree.at("out.deidkey"), "--passphrase-env", ENV_NAME, "--audit-log", log],
      ["key", "inspect", tree.at("out.deidkey"), "--audit-log", log],
      ["key", "decrypt", tree.at("out.deidkey"), "--identity", tree.at("missing.key"), "--audit-log", log],
    ];
    for (const args of runs) await runDeidkit(args);
  });

  afterAll(async () => {
    delete process.env[ENV_NAME];
    await tree.cleanup();
  });

  test("one parseable line per run", async () => {
    const { lines } = await readLines(log);
    expect(lines.map((line) => line.command)).toEqual(["anonymize", "verify", "key decrypt", "key inspect", "key decrypt"]);
    for (const line of lines) {
      expect(line.user).toBe(userInfo().username);
      expect(line.host).toBe(hostname());
      expect(line.tool).toBe("deidkit");
      expect(line.version).toBe(TOOL_VERSION);
      expect(Number.isNaN(Date.parse(line.time))).toBe(false);
    }
    expect(lines.map((line) => line.exitCode)).toEqual([0, 0, 0, 0, 2]);
  });

  test("the log is created with mode 0600", async () => {
    expect((await stat(log)).mode & 0o777).toBe(0o600);
  });

  test("anonymize line has counts and safe options", async () => {
    const [anonymize] = (await readLines(log)).lines;
    const report = JSON.parse(await readFile(tree.at("out.report.json"), "utf8")) as Record<string, number>;
    expect(anonymize!.counts).toMatchObject({
      filesSeen: report.filesSeen,
      filesWritten: report.filesWritten,
      filesQuarantined: report.filesQuarantined,
      patients: 2,
    });
    expect(anonymize!.options).toMatchObject({
      INPUT: NOT_RECORDED,
      OUTPUT: tree.at("out"),
      recipient: [tree.recipientPath],
      passphraseEnv: ENV_NAME,
      passThrough: NOT_RECORDED,
      option: ["retain-uids"],
      quiet: true,
    });
  });

  test("no planted identifier or passphrase appears", async () => {
    const { text } = await readLines(log);
    const planted = await readPlanted();
    const identifiers = [...planted.patients.flatMap((patient) => [patient.patientId, patient.patientName]), ...Object.values(planted.identifiers).flat()];
    for (const identifier of identifiers) expect(text, "an identifier reached the audit log").not.toContain(identifier);
    expect(text).not.toContain(PASSPHRASE);
    expect(text).not.toContain("*DOE*");
  });

  test("the environment variable names the log", async () => {
    const envLog = tree.at("env-audit.jsonl");
    process.env[AUDIT_LOG_ENV] = envLog;
    try {
      const run = await runDeidkit(["key", "inspect", tree.at("out.deidkey")]);
      expect(run.code, run.stderr).toBe(0);
    } finally {
      delete process.env[AUDIT_LOG_ENV];
    }
    const { lines } = await readLines(envLog);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.command).toBe("key inspect");
  });

  test("an existing log is appended to", async () => {
    const appended = tree.at("existing.jsonl");
    await writeFile(appended, '{"earlier":true}\n', { mode: 0o640 });
    const run = await runDeidkit(["key", "inspect", tree.at("out.deidkey"), "--audit-log", appended]);
    expect(run.code, run.stderr).toBe(0);
    const text = await readFile(appended, "utf8");
    expect(text.startsWith('{"earlier":true}\n{"time":')).toBe(true);
    expect(text.split("\n")).toHaveLength(3);
  });

  test("a symbolic link as log exits 2 before the command runs", async () => {
    await symlink(tree.at("elsewhere.jsonl"), tree.at("link.jsonl"));
    const run = await runDeidkit(["keygen", "--out", tree.at("keys2"), "--audit-log", tree.at("link.jsonl")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/cannot open the audit log for appending \(ELOOP\)/);
    await expect(stat(tree.at("keys2"))).rejects.toThrow();
  });
});

describe("audit options", () => {
  test("paths inside INPUT are not recorded", () => {
    const recorded = auditOptions({
      arguments: { INPUT: "/data/DOE_JANE", OUTPUT: "/shared/out" },
      options: { map: "/data/DOE_JANE/map.csv", recipient: ["/keys/recipient.pub"], jobs: 2, passThrough: ["*Jane*"] },
    });
    expect(recorded).toEqual({
      INPUT: NOT_RECORDED,
      OUTPUT: "/shared/out",
      map: NOT_RECORDED_INSIDE_INPUT,
      recipient: ["/keys/recipient.pub"],
      jobs: 2,
      passThrough: NOT_RECORDED,
    });
  });
});
