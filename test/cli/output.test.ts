import { describe, expect, test } from "vitest";

import { CliOutput, plural } from "../../src/cli/output.js";

function terminal(): { text: () => string; output: CliOutput } {
  let written = "";
  const stream = { write: (text: string) => (written += text), isTTY: true, columns: 80 };
  return { text: () => written, output: new CliOutput({ stdout: stream, stderr: stream }, false) };
}

describe("progress bar", () => {
  test("redrawn every 100 ms and at the end", () => {
    const { text, output } = terminal();
    for (let done = 1; done <= 5000; done++) output.progress("writing", done, 5000);
    const draws = text().split("\r\x1b[2K").filter(Boolean);
    // Counting 5,000 files takes far less than a second here, so a handful of draws at most.
    expect(draws.length).toBeLessThan(20);
    expect(draws[0]).toContain(" 1/5000");
    expect(draws.at(-1)).toContain(" 5000/5000");
  });

  test("not drawn without a terminal", () => {
    let written = "";
    const stream = { write: (text: string) => (written += text), isTTY: false };
    new CliOutput({ stdout: stream, stderr: stream }, false).progress("writing", 1, 2);
    expect(written).toBe("");
  });
});

describe("plural", () => {
  test.each([
    [0, "0 errors"],
    [1, "1 error"],
    [2, "2 errors"],
  ])("%i error", (count, expected) => {
    expect(plural(count, "error")).toBe(expected);
  });
});
