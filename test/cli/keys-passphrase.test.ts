// Passphrase-sealed keys through the CLI: from a file, from the environment
// and from a terminal prompt, for anonymize, key decrypt, verify --key and
// anonymize --continue.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

import { readHiddenLine, readPassphraseFile, promptPassphrase, type PromptTerminal } from "../../src/cli/passphrase.js";
import { inspectKeyFile, readIdentityFile, readKeyFile } from "../../src/keyfile/index.js";
import type { KeyPayload } from "../../src/run/key-payload.js";
import { runDeidkit } from "../helpers/cli.js";
import { makeTestTree, REPO_ROOT, type TestTree } from "../helpers/tree.js";

const PASSPHRASE = "correct horse battery staple ünïcode";
const ENV_NAME = "DEIDKIT_TEST_PASSPHRASE";
const BIN = join(REPO_ROOT, "bin", "deidkit.js");
const PYTHON = "/usr/bin/python3";

/** Anonymizes the tree into `out`, sealed to the passphrase in `passphrase.txt` only. */
async function anonymizeWithPassphraseFile(tree: TestTree, extra: string[] = []): Promise<void> {
  await writeFile(tree.at("passphrase.txt"), `${PASSPHRASE}\n`, { mode: 0o600 });
  const run = await runDeidkit(["anonymize", tree.input, tree.at("out"), "--passphrase-file", tree.at("passphrase.txt"), "--secret", tree.secretPath, ...extra]);
  expect(run.code, run.stderr).toBe(0);
}

describe("passphrase-sealed keys", () => {
  let tree: TestTree;

  beforeEach(async () => {
    tree = await makeTestTree({ include: ["AB-0042"] });
  });

  afterEach(async () => {
    delete process.env[ENV_NAME];
    await tree.cleanup();
  });

  test("anonymize seals to a passphrase file", async () => {
    await anonymizeWithPassphraseFile(tree);
    const metadata = await inspectKeyFile(tree.at("out.deidkey"));
    expect(metadata.passphrase).toBe(true);
    expect(metadata.recipients).toEqual([]);
    expect((await stat(tree.at("out.deidkey"))).mode & 0o777).toBe(0o600);
    const { payload } = await readKeyFile(tree.at("out.deidkey"), { passphrase: PASSPHRASE });
    expect((payload as unknown as KeyPayload).patients.map((patient) => patient.originalId)).toEqual(["AB-0042"]);
  });

  test("key decrypt opens with the passphrase from the environment", async () => {
    await anonymizeWithPassphraseFile(tree);
    process.env[ENV_NAME] = PASSPHRASE;
    const run = await runDeidkit(["key", "decrypt", tree.at("out.deidkey"), "--passphrase-env", ENV_NAME]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('"originalId": "AB-0042"');
    expect(run.stderr).not.toContain(PASSPHRASE);
  });

  test("key decrypt with a wrong passphrase exits 3", async () => {
    await anonymizeWithPassphraseFile(tree);
    process.env[ENV_NAME] = "not the passphrase";
    const run = await runDeidkit(["key", "decrypt", tree.at("out.deidkey"), "--passphrase-env", ENV_NAME]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/deidkit: error: .*wrong passphrase/);
    // The key file's errors start with its path, which is not repeated at the end.
    expect(run.stderr.split(tree.at("out.deidkey")).length - 1).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).not.toContain("AB-0042");
  });

  test("key decrypt without any credential exits 2", async () => {
    await anonymizeWithPassphraseFile(tree);
    const run = await runDeidkit(["key", "decrypt", tree.at("out.deidkey")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/no credential given/);
  });

  test("two passphrase sources exit 2", async () => {
    await anonymizeWithPassphraseFile(tree);
    process.env[ENV_NAME] = PASSPHRASE;
    const run = await runDeidkit(["key", "decrypt", tree.at("out.deidkey"), "--passphrase-env", ENV_NAME, "--passphrase-file", tree.at("passphrase.txt")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/exclude each other/);
  });

  test("an unset --passphrase-env variable exits 2", async () => {
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out"), "--passphrase-env", ENV_NAME]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`${ENV_NAME} named by --passphrase-env is not set`));
    expect(existsSync(tree.at("out"))).toBe(false);
  });

  test("anonymize seals to a recipient and a passphrase", async () => {
    process.env[ENV_NAME] = PASSPHRASE;
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out"), "--recipient", tree.recipientPath, "--passphrase-env", ENV_NAME]);
    expect(run.code, run.stderr).toBe(0);
    const byIdentity = await runDeidkit(["key", "decrypt", tree.at("out.deidkey"), "--identity", tree.identityPath]);
    expect(byIdentity.code, byIdentity.stderr).toBe(0);
    const byPassphrase = await runDeidkit(["key", "decrypt", tree.at("out.deidkey"), "--passphrase-env", ENV_NAME]);
    expect(byPassphrase.code, byPassphrase.stderr).toBe(0);
    expect(byPassphrase.stdout).toBe(byIdentity.stdout);
  });

  test("verify --key opens with a passphrase", async () => {
    await anonymizeWithPassphraseFile(tree);
    const run = await runDeidkit(["verify", tree.at("out"), "--key", tree.at("out.deidkey"), "--passphrase-file", tree.at("passphrase.txt")]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/key identifiers/);
  });

  test("anonymize --continue opens with --continue-passphrase-file", async () => {
    await anonymizeWithPassphraseFile(tree);
    const run = await runDeidkit([
      "anonymize",
      tree.input,
      tree.at("out2"),
      "--recipient",
      tree.recipientPath,
      "--continue",
      tree.at("out.deidkey"),
      "--continue-passphrase-file",
      tree.at("passphrase.txt"),
    ]);
    expect(run.code, run.stderr).toBe(0);
    const first = (await readKeyFile(tree.at("out.deidkey"), { passphrase: PASSPHRASE })).payload as unknown as KeyPayload;
    const second = (await readKeyFile(tree.at("out2.deidkey"), await readIdentityFile(tree.identityPath))).payload as unknown as KeyPayload;
    expect(second.secret).toBe(first.secret);
    expect(second.patients[0]!.pseudonymId).toBe(first.patients[0]!.pseudonymId);
  });

  test("anonymize --continue without a credential exits 2", async () => {
    await anonymizeWithPassphraseFile(tree);
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out2"), "--recipient", tree.recipientPath, "--continue", tree.at("out.deidkey")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--continue-passphrase-file/);
    expect(existsSync(tree.at("out2"))).toBe(false);
  });

  test("a passphrase file with two lines exits 2", async () => {
    await writeFile(tree.at("two-lines.txt"), "first\nsecond\n");
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out"), "--passphrase-file", tree.at("two-lines.txt")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/line break inside it/);
    expect(run.stderr).not.toContain("second");
  });

  test("--passphrase-cost sensitive writes libsodium's SENSITIVE cost", async () => {
    process.env[ENV_NAME] = PASSPHRASE;
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out"), "--passphrase-env", ENV_NAME, "--passphrase-cost", "sensitive", "-q"]);
    expect(run.code, run.stderr).toBe(0);
    const header = (await readFile(tree.at("out.deidkey"))).subarray(0, 4096).toString("latin1");
    expect(header).toMatch(/^-> argon2id \S+ 4 1073741824 \S+$/m);
  });

  test("a short passphrase gets a warning", async () => {
    process.env[ENV_NAME] = "short";
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out"), "--passphrase-env", ENV_NAME, "--dry-run"]);
    expect(run.code, run.stderr).toBe(0);
    // A dry run seals nothing, so it asks for no passphrase and warns about none.
    expect(run.stderr).not.toMatch(/fewer than 12 characters/);
    const real = await runDeidkit(["anonymize", tree.input, tree.at("out"), "--passphrase-env", ENV_NAME]);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stderr).toMatch(/deidkit: warning: the passphrase has fewer than 12 characters/);
  });
});

describe("passphrase readers", () => {
  let tree: TestTree;

  beforeEach(async () => {
    tree = await makeTestTree({ include: ["README.txt"] });
  });

  afterEach(async () => {
    await tree.cleanup();
  });

  test("file reader strips one CRLF only", async () => {
    await writeFile(tree.at("p.txt"), "  spaced passphrase  \r\n");
    expect(await readPassphraseFile(tree.at("p.txt"))).toBe("  spaced passphrase  ");
  });

  test("file reader rejects an empty file", async () => {
    await writeFile(tree.at("empty.txt"), "\n");
    await expect(readPassphraseFile(tree.at("empty.txt"))).rejects.toThrow(/is empty/);
  });

  test("file reader rejects invalid UTF-8", async () => {
    await writeFile(tree.at("latin1.txt"), Buffer.from([0x70, 0xe4, 0x73, 0x73]));
    await expect(readPassphraseFile(tree.at("latin1.txt"))).rejects.toThrow(/not valid UTF-8/);
  });
});

/** A terminal double: `type` queues what a person types, and `shown` is everything written to the screen. */
function fakeTerminal(): PromptTerminal & { type(text: string): void; shown: string; rawModes: boolean[] } {
  const input = new PassThrough() as PassThrough & { setRawMode(mode: boolean): unknown };
  const terminal = {
    shown: "",
    rawModes: [] as boolean[],
    input,
    write(text: string) {
      terminal.shown += text;
    },
    close: async () => undefined,
    type(text: string) {
      input.write(text);
    },
  };
  input.setRawMode = (mode: boolean) => terminal.rawModes.push(mode);
  return terminal;
}

describe("hidden prompt", () => {
  test("reads a line without echo", async () => {
    const terminal = fakeTerminal();
    const line = readHiddenLine(terminal, "passphrase: ");
    terminal.type("secret words\r");
    expect(await line).toBe("secret words");
    expect(terminal.shown).toBe("passphrase: \n");
    expect(terminal.rawModes).toEqual([true, false]);
  });

  test("backspace removes one code point", async () => {
    const terminal = fakeTerminal();
    const line = readHiddenLine(terminal, "? ");
    terminal.type("abü\u007fc\bd\n");
    expect(await line).toBe("abd");
  });

  test("Ctrl-C cancels and leaves raw mode", async () => {
    const terminal = fakeTerminal();
    const line = readHiddenLine(terminal, "? ");
    terminal.type("abc\u0003");
    await expect(line).rejects.toThrow(/Ctrl-C/);
    expect(terminal.rawModes).toEqual([true, false]);
  });

  test("confirmation mismatch is a usage error", async () => {
    const terminal = fakeTerminal();
    const result = promptPassphrase("the key", true, async () => terminal);
    terminal.type("first one\r");
    // The second line is typed only after the first prompt took its line, as a person would.
    await new Promise<void>((resolve) => setImmediate(resolve));
    terminal.type("second one\r");
    await expect(result).rejects.toMatchObject({ code: "USAGE", message: "the two passphrases typed do not match" });
  });
});

// The prompt tests run the built command (npm test builds dist/ first) in a real pseudo-terminal made by Python's pty module.
const PTY_SCRIPT = `
import json, os, pty, sys
argv = json.loads(sys.argv[1]); answers = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
seen = b""; answered = 0
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    seen += data
    prompts = seen.count(b"deidkit: passphrase for") + seen.count(b"type the passphrase again")
    while answered < prompts and answered < len(answers):
        os.write(fd, answers[answered].encode() + b"\\r")
        answered += 1
_, status = os.waitpid(pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "screen": seen.decode("utf-8", "replace")}))
`;

function runInPty(args: string[], answers: string[]): { code: number; screen: string } {
  const result = spawnSync(PYTHON, ["-c", PTY_SCRIPT, JSON.stringify([process.execPath, BIN, ...args]), JSON.stringify(answers)], { encoding: "utf8" });
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { code: number; screen: string };
}

const ptyAvailable = existsSync(PYTHON) && spawnSync(PYTHON, ["-c", "import pty"]).status === 0;

describe.skipIf(!ptyAvailable)("passphrase prompt on a terminal", () => {
  let tree: TestTree;

  beforeEach(async () => {
    expect(existsSync(join(REPO_ROOT, "dist", "cli", "passphrase.js")), "dist/ is missing: run npm run build").toBe(true);
    tree = await makeTestTree({ include: ["AB-0042"] });
  });

  afterEach(async () => {
    await tree.cleanup();
  });

  test("anonymize asks twice and decrypt once", async () => {
    const created = runInPty(["anonymize", tree.input, tree.at("out"), "--passphrase-prompt", "-q"], [PASSPHRASE, PASSPHRASE]);
    expect(created.code, created.screen).toBe(0);
    expect(created.screen).toContain("type the passphrase again");
    expect(created.screen).not.toContain(PASSPHRASE);
    const { payload } = await readKeyFile(tree.at("out.deidkey"), { passphrase: PASSPHRASE });
    expect((payload as unknown as KeyPayload).patients).toHaveLength(1);

    const opened = runInPty(["key", "decrypt", tree.at("out.deidkey"), "--passphrase-prompt", "--out", tree.at("key.json")], [PASSPHRASE]);
    expect(opened.code, opened.screen).toBe(0);
    expect(opened.screen.match(/passphrase for/g)).toHaveLength(1);
    expect(await readFile(tree.at("key.json"), "utf8")).toContain("AB-0042");
  });

  test("mismatched entries exit 2 and write nothing", () => {
    const run = runInPty(["anonymize", tree.input, tree.at("out"), "--passphrase-prompt"], [PASSPHRASE, `${PASSPHRASE}x`]);
    expect(run.code).toBe(2);
    expect(run.screen).toMatch(/do not match/);
    expect(existsSync(tree.at("out"))).toBe(false);
    expect(existsSync(tree.at("out.deidkey"))).toBe(false);
  });

  test("no terminal exits 2", () => {
    // detached: true starts a new session, which has no controlling terminal, as under cron.
    const result = spawnSync(process.execPath, [BIN, "anonymize", tree.input, tree.at("out"), "--passphrase-prompt"], {
      encoding: "utf8",
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/deidkit: error: the passphrase prompt needs a terminal/);
    expect(existsSync(tree.at("out"))).toBe(false);
  });
});
