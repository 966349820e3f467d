import { describe, expect, test } from "vitest";

import { EXIT, exitCodeFor } from "../../src/cli/exit-codes.js";
import { DeidError, KeyFileError, UsageError } from "../../src/errors.js";

// The CLI maps every error to its exit code here; the table in docs/cli.md lists the same codes.
describe("exit code of an error", () => {
  test.each([
    ["a usage error", new UsageError("bad option"), EXIT.USAGE],
    ["an existing output", new DeidError("OUTPUT_EXISTS", "exists"), EXIT.USAGE],
    ["a key that does not open", new KeyFileError("KEY_NO_MATCH", "no match"), EXIT.KEY],
    ["a tampered key", new KeyFileError("KEY_AUTH", "tampered"), EXIT.KEY],
    ["an I/O failure", Object.assign(new Error("disk"), { code: "ENOSPC" }), EXIT.FAILED],
    ["a defect", new TypeError("undefined is not a function"), EXIT.INTERNAL],
  ])("%s", (_name, error, code) => {
    expect(exitCodeFor(error)).toBe(code);
  });

  test("a defect maps to 70", () => {
    expect(EXIT.INTERNAL).toBe(70);
  });
});
