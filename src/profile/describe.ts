/**
 * A readable list of what the compiled profile does to each attribute,
 * sorted by tag. `deidkit profile` prints it, and docs/profile.md contains
 * it for the default preset.
 */
import type { CompiledProfile, Rule } from "./profile.js";

const ACTION_WORDS: Readonly<Record<Rule["action"], string>> = {
  X: "remove",
  Z: "empty",
  D: "dummy value",
  K: "keep",
  C: "clean",
  U: "new UID",
};

export interface ProfileLine {
  tag: string;
  keyword: string;
  code: string;
  action: Rule["action"];
  source: string;
}

export function describeProfile(profile: CompiledProfile): ProfileLine[] {
  const rules = [...profile.exact.values(), ...profile.repeating.values(), profile.privateRule];
  if (profile.curveRule) rules.push(profile.curveRule);
  return rules
    .map((rule) => ({
      tag: rule.row.tag,
      keyword: rule.row.keyword ?? rule.row.name,
      code: rule.code,
      action: rule.action,
      source: rule.source,
    }))
    .sort((a, b) => a.tag.localeCompare(b.tag));
}

/** Formats one line as "(0008,0050) AccessionNumber  Z -> empty  [basic]". */
export function formatProfileLine(line: ProfileLine): string {
  return `${line.tag} ${line.keyword.padEnd(48)} ${line.code.padEnd(6)} -> ${ACTION_WORDS[line.action].padEnd(11)} [${line.source}]`;
}
