/**
 * The PS3.15 Annex E confidentiality profile compiled into a lookup by tag.
 *
 * The rows come from Table E.1-1 (PS3.15 2026c) and the safe private list
 * from Table E.3.10-1, generated into `generated/` by scripts/make-tables.js.
 */
import { UsageError } from "../errors.js";
import { makeTag, type Tag } from "../dicom/tags.js";
import { SAFE_PRIVATE } from "./generated/safe-private.js";
import { TABLE_E1_1 } from "./generated/table-e1-1.js";
import type { ProfileRow } from "./table-types.js";

/** Action codes of Table E.1-1a. */
export type ActionCode = "D" | "Z" | "X" | "K" | "C" | "U" | "Z/D" | "X/Z" | "X/D" | "X/Z/D" | "X/Z/U*";

/** The single action deidkit carries out after resolving a combined code. */
export type Action = "D" | "Z" | "X" | "K" | "C" | "U";

/** Option names as the CLI spells them, each mapped to its Table E.1-1 column. */
export const OPTION_COLUMNS = {
  "retain-safe-private": "retainSafePrivate",
  "retain-uids": "retainUIDs",
  "retain-device-identity": "retainDeviceIdentity",
  "retain-institution-identity": "retainInstitutionIdentity",
  "retain-patient-characteristics": "retainPatientCharacteristics",
  "retain-longitudinal-full-dates": "retainLongitudinalFullDates",
  "retain-longitudinal-modified-dates": "retainLongitudinalModifiedDates",
  "clean-descriptors": "cleanDescriptors",
  "clean-structured-content": "cleanStructuredContent",
  "clean-graphics": "cleanGraphics",
} as const satisfies Record<string, keyof ProfileRow>;

export type OptionName = keyof typeof OPTION_COLUMNS;

export const OPTION_NAMES = Object.keys(OPTION_COLUMNS) as OptionName[];

export const PRESETS: Readonly<Record<string, readonly OptionName[]>> = {
  basic: [],
  research: [
    "clean-descriptors",
    "clean-structured-content",
    "clean-graphics",
    "retain-longitudinal-modified-dates",
    "retain-patient-characteristics",
    "retain-safe-private",
  ],
};

export interface Rule {
  row: ProfileRow;
  /** The code in force: the Basic Profile code, or the code of a selected option. */
  code: ActionCode;
  /** Origin of the code: "basic" or an option name. */
  source: "basic" | OptionName;
  action: Action;
}

/**
 * Resolves a combined code to the alternative that is valid whatever the
 * attribute's type in the IOD at hand, because deidkit does not know the IOD
 * type of every attribute. D is valid for Types 1, 2 and 3, and Z for Types
 * 2 and 3. Replacing the UIDs inside a sequence keeps a Type 1 sequence
 * valid. All alternatives remove the identifying content equally.
 */
export function resolveCode(code: ActionCode): Action {
  switch (code) {
    case "Z/D":
    case "X/D":
    case "X/Z/D":
      return "D";
    case "X/Z":
      return "Z";
    case "X/Z/U*":
      return "U";
    default:
      return code;
  }
}

/**
 * Selected option codes replace the Basic Profile code. When two selected
 * options both name a code for a row, the more protective one wins: C
 * (clean) over K (keep).
 */
function codeFor(row: ProfileRow, options: ReadonlySet<OptionName>): { code: ActionCode; source: Rule["source"] } {
  let chosen: { code: ActionCode; source: Rule["source"] } | undefined;
  for (const option of options) {
    const code = row[OPTION_COLUMNS[option]] as ActionCode | null;
    if (!code) continue;
    if (!chosen || (chosen.code === "K" && code === "C")) chosen = { code, source: option };
  }
  return chosen ?? { code: row.basicProfile as ActionCode, source: "basic" };
}

export interface SafePrivateEntry {
  privateCreator: string;
  vr: string | null;
}

export interface CompiledProfile {
  readonly options: ReadonlySet<OptionName>;
  /** Rules for exact tags. */
  readonly exact: ReadonlyMap<Tag, Rule>;
  /** Rules for the repeating groups 50xx and 60xx, keyed by base group tag (5000eeee, 6000eeee). */
  readonly repeating: ReadonlyMap<Tag, Rule>;
  /** The single rule for all private attributes (gggg odd). */
  readonly privateRule: Rule;
  /** Curve Data (50xx,xxxx): every element of the curve groups. */
  readonly curveRule: Rule | undefined;
  /** Safe private attributes keyed by "GGGG:OO:creator" (creator trimmed). */
  readonly safePrivate: ReadonlyMap<string, SafePrivateEntry>;
}

export function safePrivateKey(group: number, elementOffset: number, creator: string): string {
  const groupHex = group.toString(16).toUpperCase().padStart(4, "0");
  const offsetHex = elementOffset.toString(16).toUpperCase().padStart(2, "0");
  return `${groupHex}:${offsetHex}:${creator.trim()}`;
}

/** Compiles Table E.1-1 with the selected options into lookups by tag. */
export function compileProfile(options: Iterable<OptionName>): CompiledProfile {
  const selected = new Set(options);
  if (selected.has("retain-longitudinal-full-dates") && selected.has("retain-longitudinal-modified-dates")) {
    throw new UsageError("retain-longitudinal-full-dates and retain-longitudinal-modified-dates exclude each other", {
      hint: "pass only one of the two as --option",
    });
  }
  const exact = new Map<Tag, Rule>();
  const repeating = new Map<Tag, Rule>();
  let privateRule: Rule | undefined;
  let curveRule: Rule | undefined;
  for (const row of TABLE_E1_1) {
    const { code, source } = codeFor(row, selected);
    const rule: Rule = { row, code, source, action: resolveCode(code) };
    if (row.tagKind === "privateOddGroup") {
      privateRule = rule;
    } else if (row.tagPattern === "50xxxxxx") {
      curveRule = rule;
    } else if (row.tagKind === "repeatingGroup" && row.tagPattern) {
      const base = row.tagPattern.replace(/x/g, "0");
      repeating.set(Number.parseInt(base, 16) >>> 0, rule);
    } else if (row.tagPattern) {
      exact.set(Number.parseInt(row.tagPattern, 16) >>> 0, rule);
    }
  }
  if (!privateRule) throw new Error("Table E.1-1 has no row for private attributes");

  const safePrivate = new Map<string, SafePrivateEntry>();
  for (const row of SAFE_PRIVATE) {
    const key = safePrivateKey(Number.parseInt(row.group, 16), Number.parseInt(row.elementOffset, 16), row.privateCreator);
    safePrivate.set(key, { privateCreator: row.privateCreator, vr: row.vr });
  }
  return { options: selected, exact, repeating, privateRule, curveRule, safePrivate };
}

/** Returns the rule for a standard (even group) tag, or undefined if Table E.1-1 does not list it. */
export function ruleFor(profile: CompiledProfile, tag: Tag): Rule | undefined {
  const direct = profile.exact.get(tag);
  if (direct) return direct;
  const group = tag >>> 16;
  if ((group & 0xff00) === 0x6000 && group % 2 === 0) {
    return profile.repeating.get(makeTag(0x6000, tag & 0xffff));
  }
  if ((group & 0xff00) === 0x5000 && group % 2 === 0) {
    return profile.curveRule;
  }
  return undefined;
}

/** Expands `--profile` and `--option` values into the selected option set. */
export function selectOptions(preset: string, extra: readonly string[]): OptionName[] {
  const base = PRESETS[preset];
  if (!base) {
    throw new UsageError(`unknown profile "${preset}"`, { hint: `use one of: ${Object.keys(PRESETS).join(", ")}` });
  }
  const selected = new Set<OptionName>(base);
  for (const name of extra) {
    if (!(name in OPTION_COLUMNS)) {
      throw new UsageError(`unknown option "${name}"`, { hint: `use one of: ${OPTION_NAMES.join(", ")}` });
    }
  }
  // A date option given explicitly replaces the preset's other date option; both given explicitly still conflict.
  if (extra.includes("retain-longitudinal-full-dates")) selected.delete("retain-longitudinal-modified-dates");
  if (extra.includes("retain-longitudinal-modified-dates")) selected.delete("retain-longitudinal-full-dates");
  for (const name of extra) selected.add(name as OptionName);
  return OPTION_NAMES.filter((name) => selected.has(name));
}
