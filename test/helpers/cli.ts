// Runs the deidkit command in-process with captured output.

import { readFile } from "node:fs/promises";

import { expect } from "vitest";

import { runCli } from "../../src/cli/main.js";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deidkit <argv>` through runCli and returns its exit code and output. */
export async function runDeidkit(argv: readonly string[]): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: { write: (text: string) => (stdout += text), isTTY: false },
    stderr: { write: (text: string) => (stderr += text), isTTY: false },
  });
  return { code, stdout, stderr };
}

export interface AnonymizeRun extends CliRun {
  /** The OUTPUT folder, and the key and report next to it. */
  output: string;
  keyPath: string;
  reportPath: string;
}

/**
 * Runs `deidkit anonymize` on the tree's input with its fixed secret and
 * recipient, writing `<scratch>/<outputName>`, its `.deidkey` and `.report.json`.
 */
export async function anonymizeTree(
  tree: { input: string; secretPath: string; recipientPath: string; at(...parts: string[]): string },
  outputName: string,
  extraArgs: readonly string[] = [],
): Promise<AnonymizeRun> {
  const output = tree.at(outputName);
  const run = await runDeidkit([
    "anonymize",
    tree.input,
    output,
    "--recipient",
    tree.recipientPath,
    "--secret",
    tree.secretPath,
    ...extraArgs,
  ]);
  return { ...run, output, keyPath: `${output}.deidkey`, reportPath: `${output}.report.json` };
}

/**
 * Asserts the exit code a finished run must have: 1 when the report lists
 * files left out, 0 otherwise. Returns the number of files left out.
 */
export async function expectExitMatchesReport(run: AnonymizeRun): Promise<number> {
  const report = JSON.parse(await readFile(run.reportPath, "utf8")) as { filesQuarantined: number };
  expect(run.code, run.stderr).toBe(report.filesQuarantined > 0 ? 1 : 0);
  return report.filesQuarantined;
}
