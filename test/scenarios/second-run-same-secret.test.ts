// A second run with the same secret, from another copy of the tree, writes
// byte-identical DICOM output under the same paths. Another secret does not.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { anonymizeTree, expectExitMatchesReport, type AnonymizeRun } from "../helpers/cli.js";
import { isPart10, makeTestTree, OTHER_SECRET, readTreeFiles, REPO_ROOT, writeSecretFile, type TestTree, type TreeFile } from "../helpers/tree.js";

const BIN = join(REPO_ROOT, "bin", "deidkit.js");
const WORKER = join(REPO_ROOT, "dist", "run", "worker.js");

function digestOf(files: TreeFile[]): Array<[string, string]> {
  return files.map((file) => [file.relativePath, file.bytes.toString("base64")]);
}

describe("second run with the same secret", () => {
  let first: TestTree;
  let second: TestTree;
  let firstRun: AnonymizeRun;
  let secondRun: AnonymizeRun;

  beforeAll(async () => {
    first = await makeTestTree();
    second = await makeTestTree();
    firstRun = await anonymizeTree(first, "output");
    secondRun = await anonymizeTree(second, "output");
  });

  afterAll(async () => {
    await first.cleanup();
    await second.cleanup();
  });

  test("both runs finish with the same exit code", async () => {
    const leftOut = await expectExitMatchesReport(firstRun);
    expect(await expectExitMatchesReport(secondRun)).toBe(leftOut);
    expect(secondRun.code).toBe(firstRun.code);
  });

  test("writes the same paths and the same bytes", async () => {
    const one = await readTreeFiles(firstRun.output);
    const two = await readTreeFiles(secondRun.output);
    expect(one.filter((file) => isPart10(file.bytes))).toHaveLength(21);
    expect(two.map((file) => file.relativePath)).toEqual(one.map((file) => file.relativePath));
    for (let index = 0; index < one.length; index++) {
      expect(two[index].bytes.equals(one[index].bytes), one[index].relativePath).toBe(true);
    }
  });

  test("writes the same report apart from the run times", async () => {
    const load = async (path: string): Promise<Record<string, unknown>> => {
      const report = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
      delete report.startedAt;
      delete report.finishedAt;
      return report;
    };
    expect(await load(secondRun.reportPath)).toEqual(await load(firstRun.reportPath));
  });

  test("writes different output with another secret", async () => {
    const otherSecret = second.at("other.secret");
    await writeSecretFile(otherSecret, OTHER_SECRET);
    const other = await anonymizeTree({ ...second, secretPath: otherSecret }, "other");
    expect(other.code).toBe(firstRun.code);
    const one = await readTreeFiles(firstRun.output);
    const three = await readTreeFiles(other.output);
    expect(three).toHaveLength(one.length);
    // Every DICOM file name carries a UID or a pseudonym, so none may repeat.
    const firstPaths = new Set(one.filter((file) => isPart10(file.bytes)).map((file) => file.relativePath));
    expect(three.filter((file) => firstPaths.has(file.relativePath)).map((file) => file.relativePath)).toEqual([]);
  });

  test("writes the same bytes with worker threads", async () => {
    // Worker threads run only from the compiled dist/, which `npm test` builds first.
    expect(existsSync(WORKER), "dist/ is missing: run npm run build").toBe(true);
    const outputs: Array<Array<[string, string]>> = [];
    for (const jobs of ["1", "3"]) {
      const output = first.at(`jobs-${jobs}`);
      const result = spawnSync(
        process.execPath,
        [BIN, "anonymize", first.input, output, "--recipient", first.recipientPath, "--secret", first.secretPath, "--jobs", jobs, "-q"],
        { encoding: "utf8" },
      );
      expect(result.status, result.stderr).toBe(firstRun.code);
      outputs.push(digestOf(await readTreeFiles(output)));
    }
    expect(outputs[1]).toEqual(outputs[0]);
    expect(outputs[0]).toEqual(digestOf(await readTreeFiles(firstRun.output)));
  });
});
