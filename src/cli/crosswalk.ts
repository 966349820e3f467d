/**
 * Reads a --map crosswalk: a CSV of original Patient ID to study pseudonym,
 * one pair a line, with an optional header line.
 */
import { readFile } from "node:fs/promises";

import { UsageError } from "../errors.js";

const HEADER_PATTERN = /^(original|patient|source|mrn|id)/i;
/** Pseudonyms are written as Patient ID (LO): at most 64 characters, no backslash or control character. */
const VALID_PSEUDONYM = /^[^\\\u0000-\u001f]{1,64}$/;

export async function readCrosswalk(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read --map file: ${(error as NodeJS.ErrnoException).code ?? "error"}`, {
      path,
      hint: "pass a CSV file with two columns: original patient ID, pseudonym",
    });
  }
  const map = new Map<string, string>();
  const used = new Set<string>();
  const lines = text.split(/\r?\n/);
  lines.forEach((line, index) => {
    const lineNumber = index + 1;
    if (line.trim() === "") return;
    const cells = line.split(/[,;\t]/).map((cell) => cell.trim().replace(/^"(.*)"$/, "$1"));
    // A header names its columns with words; a first data row holds an ID, which has digits.
    if (index === 0 && HEADER_PATTERN.test(cells[0] ?? "") && !cells.some((cell) => /\d/.test(cell))) return;
    if (cells.length !== 2 || !cells[0] || !cells[1]) {
      throw new UsageError(`--map line ${lineNumber}: expected two non-empty columns`, {
        path,
        hint: "write one pair a line: original patient ID, pseudonym",
      });
    }
    const [original, pseudonym] = cells;
    if (!VALID_PSEUDONYM.test(pseudonym)) {
      throw new UsageError(`--map line ${lineNumber}: the pseudonym is not a valid Patient ID (1 to 64 characters, no backslash)`, { path });
    }
    if (map.has(original)) throw new UsageError(`--map line ${lineNumber}: the original ID appears twice`, { path });
    if (used.has(pseudonym)) throw new UsageError(`--map line ${lineNumber}: the pseudonym is used twice`, { path });
    map.set(original, pseudonym);
    used.add(pseudonym);
  });
  return map;
}
