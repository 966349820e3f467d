// `deidkit key rotate`: the same payload, sealed to new credentials only.

import { readFile, stat } from "node:fs/promises";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { inspectKeyFile } from "../../src/keyfile/index.js";
import { runDeidkit } from "../helpers/cli.js";
import { makeTestTree, type TestTree } from "../helpers/tree.js";

const ENV_NAME = "DEIDKIT_TEST_NEW_PASSPHRASE";

describe("key rotate", () => {
  let tree: TestTree;
  let original: string;

  beforeAll(async () => {
    tree = await makeTestTree({ include: ["AB-0042"] });
    const run = await runDeidkit(["anonymize", tree.input, tree.at("out"), "--recipient", tree.recipientPath, "--secret", tree.secretPath, "-q"]);
    expect(run.code, run.stderr).toBe(0);
    expect((await runDeidkit(["keygen", "--out", tree.at("new")])).code).toBe(0);
    const decrypted = await runDeidkit(["key", "decrypt", tree.at("out.deidkey"), "--identity", tree.identityPath]);
    original = JSON.parse(decrypted.stdout).payload;
  });

  afterAll(async () => {
    delete process.env[ENV_NAME];
    await tree.cleanup();
  });

  test("old identity fails and new one works", async () => {
    const run = await runDeidkit([
      "key", "rotate", tree.at("out.deidkey"), "--out", tree.at("rotated.deidkey"),
      "--identity", tree.identityPath, "--recipient", tree.at("new", "recipient.pub"),
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect((await stat(tree.at("rotated.deidkey"))).mode & 0o777).toBe(0o600);

    const old = await runDeidkit(["key", "decrypt", tree.at("rotated.deidkey"), "--identity", tree.identityPath]);
    expect(old.code).toBe(3);
    expect(old.stdout).toBe("");

    const renewed = await runDeidkit(["key", "decrypt", tree.at("rotated.deidkey"), "--identity", tree.at("new", "identity.key")]);
    expect(renewed.code, renewed.stderr).toBe(0);
    expect(JSON.parse(renewed.stdout).payload).toEqual(original);
    const before = await inspectKeyFile(tree.at("out.deidkey"));
    const after = await inspectKeyFile(tree.at("rotated.deidkey"));
    expect(after.fields).toEqual(before.fields);
  });

  test("rotate to a passphrase", async () => {
    process.env[ENV_NAME] = "a new passphrase for the series";
    const run = await runDeidkit([
      "key", "rotate", tree.at("out.deidkey"), "--out", tree.at("by-passphrase.deidkey"),
      "--identity", tree.identityPath, "--new-passphrase-env", ENV_NAME,
    ]);
    expect(run.code, run.stderr).toBe(0);
    const metadata = await inspectKeyFile(tree.at("by-passphrase.deidkey"));
    expect(metadata.recipients).toEqual([]);
    expect(metadata.passphrase).toBe(true);
    const opened = await runDeidkit(["key", "decrypt", tree.at("by-passphrase.deidkey"), "--passphrase-env", ENV_NAME]);
    expect(opened.code, opened.stderr).toBe(0);
    expect(JSON.parse(opened.stdout).payload).toEqual(original);
  });

  test("rotate onto an existing file exits 2", async () => {
    const before = await readFile(tree.at("out.deidkey"));
    const run = await runDeidkit([
      "key", "rotate", tree.at("out.deidkey"), "--out", tree.at("out.deidkey"),
      "--identity", tree.identityPath, "--recipient", tree.at("new", "recipient.pub"),
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/already exists/);
    expect(await readFile(tree.at("out.deidkey"))).toEqual(before);
  });

  test("rotate with a wrong identity exits 3", async () => {
    const run = await runDeidkit([
      "key", "rotate", tree.at("out.deidkey"), "--out", tree.at("wrong.deidkey"),
      "--identity", tree.at("new", "identity.key"), "--recipient", tree.at("new", "recipient.pub"),
    ]);
    expect(run.code).toBe(3);
  });
});
