// A later run with --continue takes the secret and the --map pseudonyms of an
// earlier run from its key, without --secret: returning patients keep their
// pseudonyms, UIDs and date shifts.

import { writeFile } from "node:fs/promises";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { runDeidkit } from "../helpers/cli.js";
import { makeTestTree, readTreeFiles, type TestTree } from "../helpers/tree.js";

describe("continuing a series from its key", () => {
  let tree: TestTree;

  beforeAll(async () => {
    tree = await makeTestTree({ dicomOnly: true });
    await writeFile(tree.at("map.csv"), "original_id,pseudonym\n12345678,STUDY-001\n");
  });

  afterAll(async () => {
    await tree.cleanup();
  });

  test("second run matches the first byte for byte", async () => {
    const first = await runDeidkit(["anonymize", tree.input, tree.at("first"), "-r", tree.recipientPath, "--map", tree.at("map.csv"), "-q"]);
    expect(first.code, first.stderr).toBe(0);
    const second = await runDeidkit([
      "anonymize", tree.input, tree.at("second"), "-r", tree.recipientPath,
      "--continue", tree.at("first.deidkey"), "--identity", tree.identityPath, "-q",
    ]);
    expect(second.code, second.stderr).toBe(0);
    const firstFiles = await readTreeFiles(tree.at("first"));
    const secondFiles = await readTreeFiles(tree.at("second"));
    expect(secondFiles.map((file) => file.relativePath)).toEqual(firstFiles.map((file) => file.relativePath));
    expect(secondFiles.map((file) => file.relativePath).some((path) => path.startsWith("STUDY-001/"))).toBe(true);
    secondFiles.forEach((file, index) => expect(file.bytes.equals(firstFiles[index].bytes), file.relativePath).toBe(true));
  });

  test("--continue without --identity is a usage error", async () => {
    const run = await runDeidkit(["anonymize", tree.input, tree.at("third"), "-r", tree.recipientPath, "--continue", tree.at("first.deidkey")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--continue needs --identity/);
  });
});
