import { realpath, stat } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";

import { Command, Option } from "commander";

import { DeidError, UsageError } from "../../errors.js";
import { OPTION_NAMES, PRESETS, selectOptions } from "../../profile/profile.js";
import { readSecret } from "../../pseudonym/secret.js";
import { renderHtml, writeHtmlExclusive } from "../../scan/html.js";
import { defaultJobs } from "../../run/pool.js";
import { scanTree } from "../../scan/scan.js";
import { renderSummary } from "../../scan/summary.js";
import { plural, type CliOutput } from "../output.js";
import { collect, oneOf, positiveInteger } from "../options.js";

const EXAMPLES = `
Examples:
  $ deidkit scan Data/
      prints counts of identifiers, file types, DICOM properties and files that would be left out
  $ deidkit scan Data/ --json > scan.json
  $ deidkit scan Data/ --html scan.html --profile basic

Nothing printed or written contains an identifier: only counts, reason codes, fixed
labels and file names as anonymize would write them (left-out files as file-N.ext).
Exit codes: 0 scanned (also when it found identifiers), 2 usage error.`;

interface ScanFlags {
  json?: boolean;
  html?: string;
  jobs?: number;
  profile: string;
  option?: string[];
  passThrough?: string[];
  secret?: string;
  maxDepth?: number;
  maxElements?: number;
  maxHeaderBytes?: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Rejects an --html path that exists, lies in a missing folder, or lies inside INPUT. */
async function checkHtmlPath(path: string, input: string): Promise<void> {
  if (await exists(path)) {
    throw new DeidError("OUTPUT_EXISTS", "the --html file already exists", {
      path,
      hint: "remove it or pass another path; deidkit never overwrites a report",
    });
  }
  let folder: string;
  try {
    folder = await realpath(dirname(resolve(path)));
  } catch {
    throw new UsageError("the folder for the --html file does not exist", { path: dirname(resolve(path)), hint: "create the folder first" });
  }
  let realInput: string;
  try {
    realInput = await realpath(input);
  } catch {
    return; // scanTree reports the missing INPUT.
  }
  const fromInput = relative(realInput, folder);
  if (fromInput === "" || !(fromInput === ".." || fromInput.startsWith(`..${sep}`) || isAbsolute(fromInput))) {
    throw new DeidError("PATH_OVERLAP", "the --html file would be inside INPUT", {
      hint: "pass a path outside INPUT; deidkit never writes into its input",
    });
  }
}

export function scanCommand(output: () => CliOutput): Command {
  return new Command("scan")
    .description("list the identifiers in INPUT by category, file type and DICOM property, without printing any")
    .argument("<INPUT>", "folder to scan (never modified)")
    .option("--json", "print the scan report as JSON on stdout")
    .option("--html <FILE>", "write the scan report as one HTML page to FILE (must not exist)")
    .option("-j, --jobs <N>", "files read at once in the first pass (default: number of cores minus one)", positiveInteger("--jobs"))
    .addOption(new Option("--profile <NAME>", "preset as for anonymize: basic or research").default("research").argParser(oneOf(Object.keys(PRESETS))))
    .option("--option <NAME>", `add a PS3.15 option to the profile; repeatable (${OPTION_NAMES.join(", ")})`, collect)
    .option("--pass-through <GLOB>", "files anonymize would copy unchanged; repeatable", collect)
    .option("--secret <FILE>", "secret of the later anonymize run, so that file names match its output")
    .option("--max-depth <N>", "maximum sequence nesting depth per file (default 64)", positiveInteger("--max-depth"))
    .option("--max-elements <N>", "maximum elements and items per file (default 5000000)", positiveInteger("--max-elements"))
    .option("--max-header-bytes <N>", "maximum bytes of header values held per file (default 1 GiB)", positiveInteger("--max-header-bytes"))
    .addHelpText("after", EXAMPLES)
    .action(async (input: string, flags: ScanFlags) => {
      const out = output();
      const options = selectOptions(flags.profile, flags.option ?? []);
      if (flags.html) await checkHtmlPath(flags.html, input);
      const secret = flags.secret ? await readSecret(flags.secret) : undefined;
      const report = await scanTree({
        input,
        options,
        secret,
        jobs: flags.jobs ?? defaultJobs(),
        passThrough: flags.passThrough,
        limits: { maxDepth: flags.maxDepth, maxNodes: flags.maxElements, maxHeaderBytes: flags.maxHeaderBytes },
        onProgress: (phase, done, total) => out.progress(phase === "learn" ? "reading headers" : "searching", done, total),
      });
      out.clearProgress();
      if (flags.html) {
        await writeHtmlExclusive(flags.html, renderHtml(report));
        out.info(`wrote ${flags.html}`);
      }
      if (flags.json) out.result(JSON.stringify(report, null, 2));
      else if (!flags.html) out.result(renderSummary(report).join("\n"));
      const { summary } = report;
      out.info(`scanned ${summary.entries} entries: ${plural(summary.patients, "patient")}, ${plural(summary.wouldLeaveOut, "file")} would be left out`);
    });
}
