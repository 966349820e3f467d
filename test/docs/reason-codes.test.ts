/**
 * Every reason code that can leave a file out is explained in docs/cli.md:
 * the codes are read from the sources, so a new one fails this test until
 * the table has a row for it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, test } from "vitest";

import { REPO_ROOT } from "../helpers/tree.js";

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Codes passed as string literals to QuarantineReason or to the helpers that build one. */
function reasonCodes(): Set<string> {
  const codes = new Set<string>();
  const call = /(?:new QuarantineReason|\breject|\bquarantine)\(\s*"([A-Z][A-Z0-9_]+)"/g;
  const constant = /const REASON = "([A-Z][A-Z0-9_]+)"/g;
  for (const path of sourceFiles(join(REPO_ROOT, "src"))) {
    const text = readFileSync(path, "utf8");
    for (const match of text.matchAll(call)) codes.add(match[1]!);
    for (const match of text.matchAll(constant)) codes.add(match[1]!);
  }
  // Not a file's fault: a defect, reported with exit 70 like any other.
  codes.delete("INTERNAL");
  return codes;
}

describe("reason codes", () => {
  const documented = readFileSync(join(REPO_ROOT, "docs", "cli.md"), "utf8");
  const codes = [...reasonCodes()].sort();

  test("are found in the sources", () => {
    expect(codes).toEqual(expect.arrayContaining(["BURNED_IN_ANNOTATION", "CSV_INVALID", "PARQUET_INVALID", "TEXT_ENCODING", "ZIP_ENCRYPTED"]));
  });

  test.each(codes)("%s is explained in docs/cli.md", (code) => {
    expect(documented).toContain(`\`${code}\``);
  });
});
