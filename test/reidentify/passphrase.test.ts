import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, expect, test } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "deidkit.js");
const work = mkdtempSync(join(tmpdir(), "deidkit-reid-pass-"));
const env = { ...process.env, DK_PASSPHRASE: "correct horse battery staple" };

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

test("a key sealed to a passphrase opens for reidentify", () => {
  const output = join(work, "out");
  const anonymize = spawnSync(process.execPath, [CLI, "anonymize", join(ROOT, "fixtures", "sample"), output, "-q", "--passphrase-env", "DK_PASSPHRASE"], { env, encoding: "utf8" });
  expect(anonymize.status, anonymize.stderr).toBe(0);
  const pseudonyms = readdirSync(output).filter((name) => name.startsWith("PAT-"));
  const originals = pseudonyms.map((pseudonym) => {
    const run = spawnSync(process.execPath, [CLI, "reidentify", "--value", pseudonym, "--key", `${output}.deidkey`, "--passphrase-env", "DK_PASSPHRASE"], { env, encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    return run.stdout.trim();
  });
  expect(originals.sort()).toEqual(["12345678", "AB-0042"]);
  const wrong = spawnSync(process.execPath, [CLI, "reidentify", "--value", pseudonyms[0], "--key", `${output}.deidkey`, "--passphrase-env", "DK_PASSPHRASE"], {
    env: { ...process.env, DK_PASSPHRASE: "wrong passphrase entirely" },
    encoding: "utf8",
  });
  expect(wrong.status).toBe(3);
}, 60_000);
