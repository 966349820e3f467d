// The compiled PS3.15 Table E.1-1: every row has a rule, combined codes
// resolve to one action, and each option changes exactly its own column.

import { describe, expect, test } from "vitest";

import { makeTag } from "../../src/dicom/tags.js";
import { UsageError } from "../../src/errors.js";
import { TABLE_E1_1 } from "../../src/profile/generated/table-e1-1.js";
import {
  compileProfile,
  OPTION_COLUMNS,
  OPTION_NAMES,
  PRESETS,
  resolveCode,
  ruleFor,
  selectOptions,
  type ActionCode,
  type CompiledProfile,
  type OptionName,
  type Rule,
} from "../../src/profile/profile.js";
import type { ProfileRow } from "../../src/profile/table-types.js";

/** Finds the compiled rule that a table row produced, by the row's kind and tag pattern. */
function ruleOfRow(profile: CompiledProfile, row: ProfileRow): Rule | undefined {
  if (row.tagKind === "privateOddGroup") return profile.privateRule;
  if (row.tagPattern === "50xxxxxx") return profile.curveRule;
  const tag = Number.parseInt(row.tagPattern!.replace(/x/g, "0"), 16) >>> 0;
  return row.tagKind === "repeatingGroup" ? profile.repeating.get(tag) : profile.exact.get(tag);
}

function captureError(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error, but none was thrown");
}

describe("compileProfile", () => {
  const basic = compileProfile([]);

  test("has one rule per row of all 656", () => {
    expect(TABLE_E1_1).toHaveLength(656);
    const ruleCount = basic.exact.size + basic.repeating.size + 1 + (basic.curveRule ? 1 : 0);
    expect(ruleCount).toBe(656);
  });

  test("keeps each row with its own rule", () => {
    for (const row of TABLE_E1_1) {
      const rule = ruleOfRow(basic, row);
      expect(rule, row.tag).toBeDefined();
      expect(rule!.row, row.tag).toBe(row);
      expect(rule!.code, row.tag).toBe(row.basicProfile);
      expect(rule!.source, row.tag).toBe("basic");
      expect(rule!.action, row.tag).toBe(resolveCode(row.basicProfile as ActionCode));
    }
  });

  test("uses only the codes of Table E.1-1a", () => {
    const codes = new Set(TABLE_E1_1.map((row) => row.basicProfile));
    expect([...codes].sort()).toEqual(["D", "U", "X", "X/D", "X/Z", "X/Z/D", "X/Z/U*", "Z", "Z/D"]);
  });
});

describe("resolveCode", () => {
  test.each([
    ["X", "X"],
    ["Z", "Z"],
    ["D", "D"],
    ["K", "K"],
    ["C", "C"],
    ["U", "U"],
    ["Z/D", "D"],
    ["X/D", "D"],
    ["X/Z/D", "D"],
    ["X/Z", "Z"],
    ["X/Z/U*", "U"],
  ] as const)("resolves %s to %s", (code, action) => {
    expect(resolveCode(code)).toBe(action);
  });
});

describe("ruleFor", () => {
  const basic = compileProfile([]);

  test("finds exact tags", () => {
    expect(ruleFor(basic, makeTag(0x0010, 0x0010))?.row.keyword).toBe("PatientName");
    expect(ruleFor(basic, makeTag(0x0020, 0x000d))?.action).toBe("U");
  });

  test("maps every even 60xx group to the overlay rows", () => {
    for (const group of [0x6000, 0x6002, 0x601e]) {
      expect(ruleFor(basic, makeTag(group, 0x3000))?.row.tag).toBe("(60xx,3000)");
      expect(ruleFor(basic, makeTag(group, 0x4000))?.row.tag).toBe("(60xx,4000)");
    }
    expect(ruleFor(basic, makeTag(0x6000, 0x0010))).toBeUndefined();
  });

  test("maps every element of even 50xx groups to the curve row", () => {
    expect(ruleFor(basic, makeTag(0x5000, 0x0005))?.row.tag).toBe("(50xx,xxxx)");
    expect(ruleFor(basic, makeTag(0x5006, 0x3000))?.row.tag).toBe("(50xx,xxxx)");
  });

  test("returns undefined for unlisted tags", () => {
    // Rows (0028,0010) and (0008,0016) are not in Table E.1-1.
    expect(ruleFor(basic, makeTag(0x0028, 0x0010))).toBeUndefined();
    expect(ruleFor(basic, makeTag(0x0008, 0x0016))).toBeUndefined();
  });
});

describe("options", () => {
  const basic = compileProfile([]);

  test("lists the ten options of PS3.15 Table E.1-1", () => {
    expect(OPTION_NAMES).toHaveLength(10);
    expect(new Set(Object.values(OPTION_COLUMNS)).size).toBe(10);
  });

  test.each(OPTION_NAMES)("%s changes exactly the rows of its column", (option) => {
    const column = OPTION_COLUMNS[option];
    const withOption = compileProfile([option]);
    let changed = 0;
    for (const row of TABLE_E1_1) {
      const rule = ruleOfRow(withOption, row)!;
      const code = row[column];
      if (code) {
        changed++;
        expect(rule.code, row.tag).toBe(code);
        expect(rule.source, row.tag).toBe(option);
        expect(rule.action, row.tag).toBe(resolveCode(code as ActionCode));
      } else {
        const before = ruleOfRow(basic, row)!;
        expect(rule.code, row.tag).toBe(before.code);
        expect(rule.source, row.tag).toBe("basic");
      }
    }
    expect(changed).toBeGreaterThan(0);
  });

  test("prefers C over K when two options name a row", () => {
    const pairs: Array<[OptionName, OptionName, ProfileRow]> = [];
    for (const row of TABLE_E1_1) {
      for (const keep of OPTION_NAMES) {
        for (const clean of OPTION_NAMES) {
          if (row[OPTION_COLUMNS[keep]] === "K" && row[OPTION_COLUMNS[clean]] === "C") pairs.push([keep, clean, row]);
        }
      }
    }
    const compatible = pairs.filter(([keep, clean]) => !(keep.startsWith("retain-longitudinal") && clean.startsWith("retain-longitudinal")));
    expect(compatible.length).toBeGreaterThan(0);
    for (const [keep, clean, row] of compatible) {
      for (const order of [[keep, clean], [clean, keep]]) {
        const rule = ruleOfRow(compileProfile(order), row)!;
        expect(rule.code, `${row.tag} ${order.join(",")}`).toBe("C");
        expect(rule.source, `${row.tag} ${order.join(",")}`).toBe(clean);
      }
    }
  });

  test("rejects full and modified dates together", () => {
    const error = captureError(() =>
      compileProfile(["retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"]),
    );
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).code).toBe("USAGE");
    expect((error as UsageError).message).toMatch(/retain-longitudinal-full-dates/);
    expect((error as UsageError).hint).toBeTruthy();
  });

  test("full dates replace the research preset's modified dates", () => {
    const options = selectOptions("research", ["retain-longitudinal-full-dates"]);
    expect(options).toContain("retain-longitudinal-full-dates");
    expect(options).not.toContain("retain-longitudinal-modified-dates");
    expect(() => compileProfile(options)).not.toThrow();
  });

  test("rejects both date options given explicitly", () => {
    const options = selectOptions("basic", ["retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"]);
    expect(() => compileProfile(options)).toThrow(UsageError);
  });
});

describe("presets and selectOptions", () => {
  test("basic selects no option", () => {
    expect(PRESETS.basic).toEqual([]);
    expect(selectOptions("basic", [])).toEqual([]);
  });

  test("research selects six options", () => {
    expect(new Set(PRESETS.research)).toEqual(
      new Set([
        "clean-descriptors",
        "clean-structured-content",
        "clean-graphics",
        "retain-longitudinal-modified-dates",
        "retain-patient-characteristics",
        "retain-safe-private",
      ]),
    );
    expect(selectOptions("research", [])).toHaveLength(6);
  });

  test("adds extra options once, in table order", () => {
    const selected = selectOptions("basic", ["retain-uids", "retain-safe-private", "retain-uids"]);
    expect(selected).toEqual(["retain-safe-private", "retain-uids"]);
  });

  test("research rules shift dates and keep ages", () => {
    const research = compileProfile(selectOptions("research", []));
    expect(ruleFor(research, makeTag(0x0008, 0x0020))?.action).toBe("C");
    expect(ruleFor(research, makeTag(0x0010, 0x1010))?.action).toBe("K");
    expect(research.privateRule.action).toBe("C");
    expect(compileProfile([]).privateRule.action).toBe("X");
  });

  test("rejects an unknown profile", () => {
    const error = captureError(() => selectOptions("strict", []));
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toContain('"strict"');
    expect((error as UsageError).hint).toContain("research");
  });

  test("rejects an unknown option", () => {
    const error = captureError(() => selectOptions("basic", ["retain-everything"]));
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toContain('"retain-everything"');
    expect((error as UsageError).hint).toContain("retain-uids");
  });
});
