import { describe, expect, test } from "vitest";

import { TextCleaner } from "../../src/deid/cleaner.js";
import { PathMapper, rewriteComponent } from "../../src/tree/paths.js";

const cleaner = new TextCleaner([{ text: "Zorblatt", category: "patient-name", replacement: "PAT-0123456789" }], (uid) => uid);

describe("output path components", () => {
  test("a component grown past 255 bytes is shortened", () => {
    const name = `${"Zorblatt_".repeat(30)}scan.dcm`;
    const out = rewriteComponent(name, cleaner);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(255);
    expect(out.endsWith(".dcm")).toBe(true);
    expect(out).not.toContain("Zorblatt");
  });

  test.each(["..", ".", "a/b", "a\\b", "x\u0000y", "line\nbreak"])("%j cannot escape or break a path", (name) => {
    const out = rewriteComponent(name, cleaner);
    expect(out).not.toMatch(/[/\\\u0000\n]/);
    expect(out === "." || out === "..").toBe(false);
  });

  test("two names that become one are told apart", () => {
    const mapper = new PathMapper(cleaner);
    expect(mapper.map("Zorblatt/a.dcm")).toBe("PAT-0123456789/a.dcm");
    expect(mapper.map("PAT-0123456789/a.dcm")).toBe("PAT-0123456789/a~2.dcm");
  });
});
