import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, expect, test } from "vitest";

import { anonymize } from "../../src/run/anonymize.js";

const CT = join(import.meta.dirname, "..", "..", "fixtures", "sample", "12345678", "C1_2019", "CT", "Doe_Jane_CT_4.dcm");

let work: string;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "deidkit-changed-"));
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

test("a file changed between the passes is left out", async () => {
  const input = join(work, "in");
  mkdirSync(input);
  copyFileSync(CT, join(input, "a.dcm"));
  copyFileSync(CT, join(input, "b.dcm"));
  const result = await anonymize({
    input,
    output: join(work, "out"),
    options: [],
    writeKey: async () => {},
    onEvent: (event) => {
      // Another program appends to a file after pass 1 has learnt it.
      if (event.type === "phase" && event.phase === "write") appendFileSync(join(input, "b.dcm"), "Zorblatt^Quentin");
    },
  });
  expect(result.report.filesWritten).toBe(1);
  expect(result.report.quarantined.map((entry) => entry.reason)).toEqual(["CHANGED_DURING_RUN"]);
});
