import { Command, Option } from "commander";

import { describeProfile, formatProfileLine } from "../../profile/describe.js";
import { compileProfile, OPTION_NAMES, PRESETS, selectOptions } from "../../profile/profile.js";
import type { CliOutput } from "../output.js";
import { collect, oneOf } from "../options.js";

export function profileCommand(output: () => CliOutput): Command {
  return new Command("profile")
    .description("list the action taken on every attribute of PS3.15 Table E.1-1 for a profile")
    .addOption(new Option("--profile <NAME>", "preset: basic or research").default("research").argParser(oneOf(Object.keys(PRESETS))))
    .option("--option <NAME>", `add a PS3.15 option; repeatable (${OPTION_NAMES.join(", ")})`, collect)
    .option("--json", "print JSON")
    .action((flags: { profile: string; option?: string[]; json?: boolean }) => {
      const profile = compileProfile(selectOptions(flags.profile, flags.option ?? []));
      const lines = describeProfile(profile);
      const out = output();
      if (flags.json) out.result(JSON.stringify({ options: [...profile.options], rules: lines }, null, 2));
      else out.result(lines.map(formatProfileLine).join("\n"));
    });
}
