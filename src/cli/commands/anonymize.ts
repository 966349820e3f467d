import { Command, Option } from "commander";

import { DeidError, UsageError } from "../../errors.js";
import { writeKeyFile } from "../../keyfile/index.js";
import { buildManifest, writeManifest } from "../../manifest/manifest.js";
import { readSigningKeyFile, signingKeyPermissionsTooOpen, type SigningKey } from "../../manifest/signing-key.js";
import { OPTION_NAMES, PRESETS, selectOptions } from "../../profile/profile.js";
import { readSecret } from "../../pseudonym/secret.js";
import { anonymize, type OnInvalid, type RunEvent } from "../../run/anonymize.js";
import { defaultJobs } from "../../run/pool.js";
import { TOOL_NAME, TOOL_VERSION } from "../../version.js";
import { assertOutputAbsent } from "../../keyfile/exclusive-write.js";
import { readContinuation, type ContinuedRun } from "../continue-key.js";
import { readCrosswalk } from "../crosswalk.js";
import { EXIT } from "../exit-codes.js";
import { addKeyCredentialOptions, addSealOptions, openKeyCredentials, readKeySealing, type KeySealing } from "../key-credentials.js";
import { plural, type CliOutput } from "../output.js";
import { collect, oneOf, positiveInteger } from "../options.js";
import type { RecordCounts } from "./keys.js";

interface AnonymizeFlags {
  recipient?: string[];
  passphraseFile?: string;
  passphraseEnv?: string;
  passphrasePrompt?: boolean;
  passphraseCost?: string;
  continuePassphraseFile?: string;
  continuePassphraseEnv?: string;
  continuePassphrasePrompt?: boolean;
  signKey?: string;
  keyOut?: string;
  report?: string;
  secret?: string;
  continue?: string;
  identity?: string[];
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
  $ deidkit anonymize Data/ out/ --passphrase-prompt --sign-key signing/signing.key
      seals the key to a passphrase typed twice and writes the signed manifest out.manifest.json

Exit codes: 0 all files de-identified, 1 some files left out (see the report),
2 usage error or OUTPUT locked by another run (nothing written), 4 run failed
or --on-invalid fail met a file it cannot de-identify (nothing published).
See docs/cli.md.`;

async function readContinuedRun(flags: AnonymizeFlags, out: CliOutput): Promise<ContinuedRun | undefined> {
  if (!flags.continue) return undefined;
  const passphraseGiven = Boolean(flags.continuePassphraseFile || flags.continuePassphraseEnv || flags.continuePassphrasePrompt);
  if ((flags.identity?.length ?? 0) === 0 && !passphraseGiven) {
    throw new UsageError("--continue needs --identity or a --continue-passphrase option to open the earlier key", {
      hint: "pass the identity the earlier key was sealed to (--identity keys/identity.key), or its passphrase with --continue-passphrase-file, --continue-passphrase-env or --continue-passphrase-prompt",
    });
  }
  const credentials = await openKeyCredentials(
    {
      identity: flags.identity,
      passphraseFile: flags.continuePassphraseFile,
      passphraseEnv: flags.continuePassphraseEnv,
      passphrasePrompt: flags.continuePassphrasePrompt,
    },
    { output: out, what: flags.continue, prefix: "--continue-passphrase" },
  );
  return readContinuation(flags.continue, credentials);
}

/** Reads the signing key and checks that the manifest path is free, before the run writes anything. */
async function prepareSigning(flags: AnonymizeFlags, outputPath: string, out: CliOutput): Promise<{ key: SigningKey; path: string } | undefined> {
  if (!flags.signKey || flags.dryRun) return undefined;
  const path = manifestPathFor(outputPath);
  await assertOutputAbsent(path);
  if (await signingKeyPermissionsTooOpen(flags.signKey).catch(() => false)) {
    out.warning(`${flags.signKey} can be read by other users; run chmod 600 on it`);
  }
  return { key: await readSigningKeyFile(flags.signKey), path };
}

/** Returns where the manifest of OUTPUT goes: OUTPUT.manifest.json next to it. */
export function manifestPathFor(outputPath: string): string {
  return `${outputPath.replace(/[/\\]+$/, "")}.manifest.json`;
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

export function anonymizeCommand(output: () => CliOutput, setExit: (code: number) => void, recordCounts: RecordCounts): Command {
  const command = new Command("anonymize")
    .description("de-identify every file of INPUT (DICOM, text, CSV, JSON, XLSX, Parquet, NIfTI, zip) into the new folder OUTPUT, with a sealed re-identification key")
    .argument("<INPUT>", "folder to de-identify (never modified)")
    .argument("<OUTPUT>", "new folder for the de-identified copy (must not exist)")
    .option("--key-out <FILE>", "where to write the sealed key (default: OUTPUT.deidkey; never inside OUTPUT)")
    .option("--report <FILE>", "where to write the run report (default: OUTPUT.report.json)")
    .option("--secret <FILE>", "32-byte secret (from `deidkit secret new`) for pseudonyms that match earlier runs")
    .option("--continue <KEYFILE>", "continue the series of an earlier run: its secret and --map pseudonyms (needs --identity or --continue-passphrase-*)")
    .option("-i, --identity <FILE>", "identity that opens the --continue key; repeatable", collect)
    .option("--map <FILE>", "CSV of original patient ID, pseudonym; these win over derived pseudonyms")
    .addOption(new Option("--profile <NAME>", "preset: basic (bare Basic Profile) or research").default("research").argParser(oneOf(Object.keys(PRESETS))))
    .option("--option <NAME>", `add a PS3.15 option to the profile; repeatable (${OPTION_NAMES.join(", ")})`, collect)
    .option("--pass-through <GLOB>", "copy files matching GLOB unchanged (e.g. '*.png'); repeatable; the report lists them", collect)
    .option("-j, --jobs <N>", "files processed at once (default: number of cores minus one)", positiveInteger("--jobs"))
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
    .option("--sign-key <FILE>", "signing.key (from keygen --signing) to sign OUTPUT.manifest.json, a list of every output file with its SHA-256")
    .addHelpText("after", EXAMPLES);
  addSealOptions(command, "--passphrase", "the key");
  addKeyCredentialOptions(command, "--continue-passphrase", "the --continue key");
  return command.action(async (input: string, outputPath: string, flags: AnonymizeFlags) => {
    const out = output();
    const options = selectOptions(flags.profile, flags.option ?? []);
    if (flags.secret && flags.continue) {
      throw new UsageError("--secret and --continue both set the secret", { hint: "pass only one of them" });
    }
    const signing = await prepareSigning(flags, outputPath, out);
    const sealing: KeySealing | undefined = flags.dryRun ? undefined : await readKeySealing(flags, "--passphrase", "the key", out);
    const continued = await readContinuedRun(flags, out);
    const secret = flags.secret ? await readSecret(flags.secret) : continued?.secret;
    const mapped = flags.map ? await readCrosswalk(flags.map) : undefined;
    // Pseudonyms from the new --map win over those carried over from the earlier run.
    const crosswalk = continued || mapped ? new Map([...(continued?.crosswalk ?? []), ...(mapped ?? [])]) : undefined;
    const plan: Array<{ path: string; action: string; reason?: string }> = [];
    const jobs = flags.jobs ?? defaultJobs();
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
        if (!sealing) throw new DeidError("INTERNAL", "the key file was about to be written without sealing options");
        await writeKeyFile(path, payload, {
          recipients: sealing.recipients,
          passphrase: sealing.passphrase,
          passphraseCost: sealing.passphraseCost,
          fields,
          tool: `${TOOL_NAME} ${TOOL_VERSION}`,
        });
      },
    });
    out.clearProgress();
    const report = result.report;
    recordCounts({
      filesSeen: report.filesSeen,
      filesWritten: report.filesWritten,
      filesQuarantined: report.filesQuarantined,
      filesPassedThrough: report.passedThrough.length,
      patients: report.patients,
      uidsReplaced: report.uidsReplaced,
    });
    let manifestPath: string | undefined;
    if (signing) {
      await writeManifest(signing.path, await buildManifest(result.outputPath, report, signing.key));
      manifestPath = signing.path;
    }
    if (flags.json) {
      const files = {
        key: flags.dryRun ? null : result.keyPath,
        reportFile: flags.dryRun ? null : result.reportPath,
        ...(manifestPath ? { manifest: manifestPath } : {}),
      };
      out.result(JSON.stringify({ ...report, ...files, ...(flags.dryRun ? { plan } : {}) }, null, 2));
    } else if (!flags.quiet) {
      const verb = flags.dryRun ? "would write" : "wrote";
      out.info(`${verb} ${report.filesWritten} of ${plural(report.filesSeen, "file")} for ${plural(report.patients, "patient")}; ${report.filesQuarantined} left out`);
      if (!flags.dryRun) out.info(`key: ${result.keyPath}  report: ${result.reportPath}`);
      if (manifestPath) out.info(`signed manifest: ${manifestPath}`);
    }
    if (report.passedThrough.length > 0 && !flags.json) {
      out.warning(`${report.passedThrough.length} files copied unchanged by --pass-through; their content was not checked`);
    }
    if (report.filesQuarantined > 0) {
      if (!flags.json && !flags.dryRun) out.hint("the report lists each file left out with its reason; the key maps it to its input path");
      setExit(EXIT.INCOMPLETE);
    }
  });
}
