import { Command } from "commander";

import { UsageError } from "../../errors.js";
import { readKeyFile } from "../../keyfile/index.js";
import { addKeyCredentialOptions, openKeyCredentials, type KeyCredentialFlags } from "../key-credentials.js";
import { checkKeyPayload, ReverseKey } from "../../reidentify/key-index.js";
import { reidentify, removeReidentifyStaging } from "../../reidentify/tree.js";
import { reidentifyValue } from "../../reidentify/value.js";
import { EXIT } from "../exit-codes.js";
import type { CliOutput } from "../output.js";

interface ReidentifyFlags extends KeyCredentialFlags {
  key: string;
  value?: string;
  quiet?: boolean;
}

const EXAMPLES = `
Examples:
  $ deidkit reidentify shared_out/ restored/ --key shared_out.deidkey --identity keys/identity.key
  $ deidkit reidentify shared_out/PAT-RJR45VP71B/notes.txt notes.txt --key shared_out.deidkey --identity keys/identity.key
  $ deidkit reidentify --value PAT-RJR45VP71B --key shared_out.deidkey --identity keys/identity.key
  $ deidkit reidentify --value "PAT-RJR45VP71B 2012-12-26" --key shared_out.deidkey --identity keys/identity.key

The result contains original identifiers by design. Exit codes: 0 every file
restored, 1 some files left out, 2 usage error, 3 the key cannot be opened.`;

const IDENTIFIABLE_WARNING = "the result contains original patient identifiers; keep it where the key itself may be kept";

async function openKey(flags: ReidentifyFlags, out: CliOutput): Promise<ReverseKey> {
  const credentials = await openKeyCredentials(flags, { output: out, what: flags.key });
  const { payload } = await readKeyFile(flags.key, credentials);
  return new ReverseKey(checkKeyPayload(payload, flags.key));
}

function checkOperands(input: string | undefined, output: string | undefined, flags: ReidentifyFlags): void {
  if (flags.value !== undefined && (input !== undefined || output !== undefined)) {
    throw new UsageError("--value takes no INPUT or OUTPUT", { hint: "pass either --value TEXT or INPUT OUTPUT" });
  }
  if (flags.value === undefined && (input === undefined || output === undefined)) {
    throw new UsageError("INPUT and OUTPUT are required unless --value is given", {
      hint: "deidkit reidentify INPUT OUTPUT --key FILE --identity FILE",
    });
  }
}

async function runTree(input: string, output: string, key: ReverseKey, out: CliOutput, setExit: (code: number) => void): Promise<void> {
  // Runs before bin/deidkit.js's own handler, which exits the process.
  const onSignal = (): void => {
    for (const path of removeReidentifyStaging()) out.warning(`could not remove the unpublished folder ${path}; delete it by hand`);
  };
  process.prependListener("SIGINT", onSignal);
  process.prependListener("SIGTERM", onSignal);
  try {
    const result = await reidentify({
      input,
      output,
      key,
      onEvent: (event) => {
        if (event.type === "progress") out.progress("restoring", event.done, event.total);
        else out.warning(`left out ${event.path}: ${event.reason} (${event.message})`);
      },
    });
    out.clearProgress();
    out.warning(`${output} ${IDENTIFIABLE_WARNING}`);
    if (result.unknownPatientIds > 0) {
      out.warning(`${result.unknownPatientIds} patient ID values in non-DICOM files are no pseudonym of this key and were kept`);
    }
    out.info(`restored ${result.filesWritten} files (${result.pathsFromKey} with their path from the key); ${result.leftOut.length} left out`);
    if (result.leftOut.length > 0) setExit(EXIT.INCOMPLETE);
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

export function reidentifyCommand(output: () => CliOutput, setExit: (code: number) => void): Command {
  const command = new Command("reidentify")
    .description("put back the originals a key records (IDs, names, UIDs, dates, paths) into a copy of de-identified data")
    .argument("[INPUT]", "de-identified folder or file (never modified)")
    .argument("[OUTPUT]", "new folder or file for the restored copy (must not exist)")
    .requiredOption("--key <FILE>", "key file that anonymize wrote for INPUT (OUTPUT.deidkey)");
  addKeyCredentialOptions(command);
  return command
    .option("--value <TEXT>", "restore one pseudonym, UID or short text and print it, instead of INPUT and OUTPUT")
    .option("-q, --quiet", "print only warnings and errors")
    .addHelpText("after", EXAMPLES)
    .action(async (input: string | undefined, outputPath: string | undefined, flags: ReidentifyFlags) => {
      const out = output();
      checkOperands(input, outputPath, flags);
      const key = await openKey(flags, out);
      if (flags.value === undefined) {
        await runTree(input!, outputPath!, key, out, setExit);
        return;
      }
      const result = reidentifyValue(flags.value, key);
      out.warning(IDENTIFIABLE_WARNING);
      for (const note of result.notes) out.info(`note: ${note}`);
      out.result(result.text);
    });
}
