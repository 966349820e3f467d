// Shared steps of the verify tests: copying an anonymized output, editing
// its DICOM files with pydicom, and checking output for an identifier.

import { execFileSync } from "node:child_process";
import { cp } from "node:fs/promises";

import { listFiles } from "../helpers/tree.js";

/**
 * Runs `statements` on the data set `ds` of the DICOM file at `path` with
 * pydicom, a library independent of deidkit, and saves it in place.
 */
export function editDicom(path: string, statements: string): void {
  const script = `import sys, pydicom\nfrom pydicom.dataset import Dataset\nfrom pydicom.sequence import Sequence\nds = pydicom.dcmread(sys.argv[1])\n${statements}\nds.save_as(sys.argv[1])\n`;
  execFileSync("/usr/bin/python3", ["-c", script, path]);
}

/** Runs a Python script with /usr/bin/python3 and the given arguments. */
export function runPython(script: string, args: readonly string[]): void {
  execFileSync("/usr/bin/python3", ["-c", script, ...args]);
}

/** Copies the anonymized output `source` to `target`, so each case edits its own copy. */
export async function copyOutput(source: string, target: string): Promise<void> {
  await cp(source, target, { recursive: true });
}

/** Returns the first file below `root` whose relative path matches `pattern`. */
export async function findFile(root: string, pattern: RegExp): Promise<string> {
  const match = (await listFiles(root)).find((path) => pattern.test(path));
  if (!match) throw new Error(`no file matching ${pattern} below ${root}`);
  return match;
}

/** Matches an identifier as a whole word, ignoring case, as test/leaks/sample-tree.test.ts does. */
export function wholeWord(identifier: string): RegExp {
  const escaped = identifier.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "iu");
}
