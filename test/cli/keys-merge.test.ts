// `deidkit key merge`: the union of several runs' keys, and a refusal with
// counts (and no identifier) when they disagree.

import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import type { MergedKeyPayload } from "../../src/keyfile/merge-payloads.js";
import type { KeyPayload } from "../../src/run/key-payload.js";
import { runDeidkit } from "../helpers/cli.js";
import { decryptKey, makeTestTree, OTHER_SECRET, readPlanted, writeSecretFile, type TestTree } from "../helpers/tree.js";

/** Returns every planted identifier of fixtures/sample, in every written form. */
async function plantedStrings(): Promise<string[]> {
  const planted = await readPlanted();
  return [...planted.patients.flatMap((patient) => [patient.patientId, patient.patientName]), ...Object.values(planted.identifiers).flat()];
}

async function anonymizePart(tree: TestTree, part: string, output: string, secretPath = tree.secretPath): Promise<void> {
  const run = await runDeidkit(["anonymize", tree.at("input", part), tree.at(output), "--recipient", tree.recipientPath, "--secret", secretPath, "-q"]);
  expect(run.code, run.stderr).toBe(0);
}

describe("key merge", () => {
  let tree: TestTree;
  let first: KeyPayload;
  let second: KeyPayload;

  beforeAll(async () => {
    tree = await makeTestTree();
    await anonymizePart(tree, "12345678", "run1");
    await anonymizePart(tree, "AB-0042", "run2");
    await writeSecretFile(tree.at("other.secret"), OTHER_SECRET);
    await anonymizePart(tree, "AB-0042", "run3", tree.at("other.secret"));
    first = await decryptKey(tree.at("run1.deidkey"), tree.identityPath);
    second = await decryptKey(tree.at("run2.deidkey"), tree.identityPath);
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  test("merge without conflicts equals the union", async () => {
    const run = await runDeidkit([
      "key", "merge", tree.at("run1.deidkey"), tree.at("run2.deidkey"),
      "--out", tree.at("merged.deidkey"), "--identity", tree.identityPath, "--recipient", tree.recipientPath,
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect((await stat(tree.at("merged.deidkey"))).mode & 0o777).toBe(0o600);
    const merged = (await decryptKey(tree.at("merged.deidkey"), tree.identityPath)) as unknown as MergedKeyPayload;

    expect(merged.secret).toBe(first.secret);
    expect(merged.runs).toEqual([first.run, second.run]);
    expect(merged.patients).toEqual([...first.patients, ...second.patients]);
    const originals = (list: Array<{ original: string }>): string[] => list.map((item) => item.original).sort();
    expect(originals(merged.identifiers)).toEqual([...new Set(originals([...first.identifiers, ...second.identifiers]))].sort());
    expect(originals(merged.uids)).toEqual(originals([...first.uids, ...second.uids]));
    expect(merged.files).toEqual([...first.files.map((file) => ({ ...file, run: 0 })), ...second.files.map((file) => ({ ...file, run: 1 }))]);
    for (const identifier of merged.identifiers) {
      const source = [...first.identifiers, ...second.identifiers].find((item) => item.original === identifier.original);
      expect(identifier).toEqual(source);
    }
  });

  test("merging a merged key keeps each file's run", async () => {
    const run = await runDeidkit([
      "key", "merge", tree.at("run1.deidkey"), tree.at("merged.deidkey"),
      "--out", tree.at("merged-again.deidkey"), "--identity", tree.identityPath, "--recipient", tree.recipientPath,
    ]);
    expect(run.code, run.stderr).toBe(0);
    const merged = (await decryptKey(tree.at("merged-again.deidkey"), tree.identityPath)) as unknown as MergedKeyPayload;
    expect(merged.runs).toHaveLength(3);
    expect(merged.patients).toHaveLength(first.patients.length + second.patients.length);
    expect(merged.files.filter((file) => file.run === 2)).toHaveLength(second.files.length);
  });

  test("conflicts exit 1 with counts and no identifier", async () => {
    const run = await runDeidkit([
      "key", "merge", tree.at("run2.deidkey"), tree.at("run3.deidkey"),
      "--out", tree.at("conflict.deidkey"), "--identity", tree.identityPath, "--recipient", tree.recipientPath,
    ]);
    expect(run.code).toBe(1);
    expect(existsSync(tree.at("conflict.deidkey"))).toBe(false);
    expect(run.stderr).toMatch(/deidkit: error: the 2 key files disagree in \d+ places, so no merged key was written/);
    expect(run.stderr).toMatch(/^deidkit: error: conflict: secret: 1$/m);
    expect(run.stderr).toMatch(/^deidkit: error: conflict: patient pseudonym ID: 1$/m);
    expect(run.stderr).toMatch(/^deidkit: error: conflict: UID replacement: \d+$/m);
    const output = run.stdout + run.stderr;
    for (const identifier of await plantedStrings()) expect(output, "an identifier was printed").not.toContain(identifier);
  });

  test("a single key file exits 2", async () => {
    const run = await runDeidkit(["key", "merge", tree.at("run1.deidkey"), "--out", tree.at("one.deidkey"), "--identity", tree.identityPath, "--recipient", tree.recipientPath]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/at least two key files/);
  });

  test("merge without a recipient or passphrase exits 2", async () => {
    const run = await runDeidkit(["key", "merge", tree.at("run1.deidkey"), tree.at("run2.deidkey"), "--out", tree.at("none.deidkey"), "--identity", tree.identityPath]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/no --recipient given, and no passphrase/);
    expect(existsSync(tree.at("none.deidkey"))).toBe(false);
  });

  test("merge onto an existing --out exits 2", async () => {
    const run = await runDeidkit([
      "key", "merge", tree.at("run1.deidkey"), tree.at("run2.deidkey"),
      "--out", tree.at("run1.deidkey"), "--identity", tree.identityPath, "--recipient", tree.recipientPath,
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/already exists/);
  });
});
