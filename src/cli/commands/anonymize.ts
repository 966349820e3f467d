import { availableParallelism } from "node:os";

import { Command, Option } from "commander";

import { isDeidError, UsageError } from "../../errors.js";
import { readRecipientFile, writeKeyFile, type KeyRecipient } from "../../keyfile/index.js";
import { OPTION_NAMES, PRESETS, selectOptions } from "../../profile/profile.js";
import { readSecret } from "../../pseudonym/secret.js";
import { anonymize, type OnInvalid, type RunEvent } from "../../run/anonymize.js";
import { TOOL_NAME, TOOL_VERSION } from "../../version.js";
import { readContinuation } from "../continue-key.js";
import { readCrosswalk } from "../crosswalk.js";
import { EXIT } from "../exit-codes.js";
import type { CliOutput } from "../output.js";
import { collect, oneOf, positiveInteger } from "../options.js";

interface AnonymizeFlags {
  recipient?: string[];
  keyOut?: string;
  report?: string;
  secret?: string;
  continue?: string;
  identity?: string;
  map?: string;
  profile: string;
  option?: string[];
  jobs?: number;
  passThrough?: string[];
  dryRun?: boolean;
  json?: boolean;
  quiet?: boolean;
  maxDepth?: number;
  maxElements?: number;
  maxHeaderBytes?: number;
  maxInflatedBytes?: number;
  resume?: boolean;
  onInvalid: OnInvalid;
}

const EXAMPLES = `
Examples:
  $ deidkit keygen --out keys/
  $ deidkit anonymize Data/ shared_out/ --recipient keys/recipient.pub
      writes shared_out/, the sealed key shared_out.deidkey and shared_out.report.json
  $ deidkit anonymize Data/ out/ --recipient keys/recipient.pub --profile basic --option retain-uids
  $ deidkit anonymize Data/ out/ --recipient keys/recipient.pub --secret study.secret --map crosswalk.csv
  $ deidkit anonymize NewData/ out2/ --recipient keys/recipient.pub --continue out.deidkey --identity keys/identity.key
  $ deidkit anonymize Data/ out/ --recipient keys/recipient.pub --dry-run

Exit codes: 0 all files de-identified, 1 some files left out (see the report),
2 usage error or OUTPUT locked by another run (nothing written), 4 run failed
or --on-invalid fail met a file it cannot de-identify (nothing published).
See docs/cli.md.`;

async function loadRecipients(paths: readonly string[]): Promise<KeyRecipient[]> {
  if (paths.length === 0) {
    throw new UsageError("no --recipient given: the key file must be sealed to someone", {
      hint: "create one with `deidkit keygen --out keys/` and pass --recipient keys/recipient.pub",
    });
  }
  return Promise.all(paths.map((path) => readRecipient(path)));
}

/** Reads one --recipient file; a missing or invalid one is a usage error (exit 2), like a bad --secret or --map. */
async function readRecipient(path: string): Promise<KeyRecipient> {
  try {
    return await readRecipientFile(path);
  } catch (error) {
    // The key file library's message already names the path, so it is not repeated.
    if (isDeidError(error)) throw new UsageError(error.message, { hint: error.hint, cause: error });
    throw error;
  }
}

function describeEvent(event: RunEvent, output: CliOutput, flags: AnonymizeFlags): void {
  if (event.type === "progress") {
    output.progress(event.phase === "learn" ? "reading headers" : "writing", event.done, event.total);
  } else if (event.type === "quarantined" && !flags.json) {
    output.warning(`left out ${event.outputPath}: ${event.reason} (${event.message})`);
  } else if (event.type === "planned") {
    const line = event.action === "write" ? `write      ${event.outputPath}` : `quarantine ${event.outputPath} (${event.reason})`;
    if (!flags.json) output.result(line);
  } else if (event.type === "warning") {
    output.warning(event.message);
  } else if (event.type === "resumed") {
    output.info(`resuming the interrupted run: ${plural(event.filesKept, "file")} already written are kept`);
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

export function anonymizeCommand(output: () => CliOutput, setExit: (code: number) => void): Command {
  return new Command("anonymize")
    .description("de-identify every DICOM file of INPUT into the new folder OUTPUT, with a sealed re-identification key")
    .argument("<INPUT>", "folder to de-identify (never modified)")
    .argument("<OUTPUT>", "new folder for the de-identified copy (must not exist)")
    .option("-r, --recipient <FILE>", "recipient file (from keygen) to seal the key to; repeatable", collect)
    .option("--key-out <FILE>", "where to write the sealed key (default: OUTPUT.deidkey; never inside OUTPUT)")
    .option("--report <FILE>", "where to write the run report (default: OUTPUT.report.json)")
    .option("--secret <FILE>", "32-byte secret (from `deidkit secret new`) for pseudonyms that match earlier runs")
    .option("--continue <KEYFILE>", "continue the series of an earlier run: its secret and --map pseudonyms (needs --identity)")
    .option("-i, --identity <FILE>", "identity that opens the --continue key")
    .option("--map <FILE>", "CSV of original patient ID, pseudonym; these win over derived pseudonyms")
    .addOption(new Option("--profile <NAME>", "preset: basic (bare Basic Profile) or research").default("research").argParser(oneOf(Object.keys(PRESETS))))
    .option("--option <NAME>", `add a PS3.15 option to the profile; repeatable (${OPTION_NAMES.join(", ")})`, collect)
    .option("--pass-through <GLOB>", "copy files matching GLOB unchanged (e.g. '*.png'); repeatable; the report lists them", collect)
    .option("-j, --jobs <N>", "files processed at once (default: number of cores)", positiveInteger("--jobs"))
    .option("--dry-run", "print the action for every file; write nothing")
    .option("--json", "print the run summary as JSON on stdout")
    .option("-q, --quiet", "print only warnings and errors")
    .option("--max-depth <N>", "maximum sequence nesting depth per file (default 64)", positiveInteger("--max-depth"))
    .option("--max-elements <N>", "maximum elements and items per file (default 5000000)", positiveInteger("--max-elements"))
    .option("--max-header-bytes <N>", "maximum bytes of header values held per file (default 1 GiB)", positiveInteger("--max-header-bytes"))
    .option("--max-inflated-bytes <N>", "maximum size of a deflated data set once inflated, per file (default 4 GiB)", positiveInteger("--max-inflated-bytes"))
    .addOption(
      new Option("--on-invalid <ACTION>", "a file that cannot be de-identified is left out and listed (quarantine) or fails the run (fail)")
        .default("quarantine")
        .argParser(oneOf(["quarantine", "fail"])),
    )
    .option("--resume", "finish a run that was killed, with the same arguments and the same --secret or --continue")
    .addHelpText("after", EXAMPLES)
    .action(async (input: string, outputPath: string, flags: AnonymizeFlags) => {
      const out = output();
      const options = selectOptions(flags.profile, flags.option ?? []);
      const recipients = flags.dryRun ? [] : await loadRecipients(flags.recipient ?? []);
      if (flags.secret && flags.continue) {
        throw new UsageError("--secret and --continue both set the secret", { hint: "pass only one of them" });
      }
      const continued = flags.continue ? await readContinuation(flags.continue, flags.identity) : undefined;
      const secret = flags.secret ? await readSecret(flags.secret) : continued?.secret;
      const mapped = flags.map ? await readCrosswalk(flags.map) : undefined;
      // Pseudonyms from the new --map win over those carried over from the earlier run.
      const crosswalk = continued || mapped ? new Map([...(continued?.crosswalk ?? []), ...(mapped ?? [])]) : undefined;
      const plan: Array<{ path: string; action: string; reason?: string }> = [];
      const jobs = flags.jobs ?? availableParallelism();
      const result = await anonymize({
        input,
        output: outputPath,
        options,
        keyOut: flags.keyOut,
        reportOut: flags.report,
        secret,
        crosswalk,
        dryRun: flags.dryRun,
        limits: { maxDepth: flags.maxDepth, maxNodes: flags.maxElements, maxHeaderBytes: flags.maxHeaderBytes },
        maxInflatedBytes: flags.maxInflatedBytes,
        resume: flags.resume,
        onInvalid: flags.onInvalid,
        jobs,
        passThrough: flags.passThrough,
        onEvent: (event) => {
          if (event.type === "planned") plan.push({ path: event.outputPath, action: event.action, reason: event.reason });
          describeEvent(event, out, flags);
        },
        writeKey: async (path, payload, fields) => {
          await writeKeyFile(path, payload, { recipients, fields, tool: `${TOOL_NAME} ${TOOL_VERSION}` });
        },
      });
      out.clearProgress();
      const report = result.report;
      if (flags.json) {
        const files = { key: flags.dryRun ? null : result.keyPath, reportFile: flags.dryRun ? null : result.reportPath };
        out.result(JSON.stringify({ ...report, ...files, ...(flags.dryRun ? { plan } : {}) }, null, 2));
      } else if (!flags.quiet) {
        const verb = flags.dryRun ? "would write" : "wrote";
        out.info(`${verb} ${report.filesWritten} of ${plural(report.filesSeen, "file")} for ${plural(report.patients, "patient")}; ${report.filesQuarantined} left out`);
        if (!flags.dryRun) out.info(`key: ${result.keyPath}  report: ${result.reportPath}`);
      }
      if (report.passedThrough.length > 0 && !flags.json) {
        out.warning(`${report.passedThrough.length} files copied unchanged by --pass-through; their content was not checked`);
      }
      if (report.filesQuarantined > 0) {
        if (!flags.json) out.hint("the report lists each file left out with its reason; the key maps it to its input path");
        setExit(EXIT.INCOMPLETE);
      }
    });
}
