import { Command } from "commander";

import { UsageError } from "../../errors.js";
import { readIdentityFile, readKeyFile } from "../../keyfile/index.js";
import { identifiersFromKey, verifyTree } from "../../verify/verify.js";
import { EXIT } from "../exit-codes.js";
import type { CliOutput } from "../output.js";

const EXAMPLES = `
Examples:
  $ deidkit verify shared_out/
      checks the DICOM rules that need no key
  $ deidkit verify shared_out/ --key shared_out.deidkey --identity keys/identity.key
      also searches every byte, archive member and file name for each original identifier in the key

Findings name the file, the place and the category, never the identifier; in key mode
"#N" is the identifier's index in the key (deidkit key decrypt shows the list).
Exit codes: 0 no error found, 1 errors found, 2 usage error, 3 key could not be opened.`;

interface VerifyFlags {
  key?: string;
  identity?: string;
  json?: boolean;
  quiet?: boolean;
}

export function verifyCommand(output: () => CliOutput, setExit: (code: number) => void): Command {
  return new Command("verify")
    .description("scan a de-identified folder for identifiers left behind")
    .argument("<OUTPUT>", "folder written by anonymize")
    .option("--key <FILE>", "key file of the run, to search for every original identifier")
    .option("-i, --identity <FILE>", "identity that opens the key")
    .option("--json", "print the findings as JSON on stdout")
    .option("-q, --quiet", "print only the summary")
    .addHelpText("after", EXAMPLES)
    .action(async (folder: string, flags: VerifyFlags) => {
      const out = output();
      if (Boolean(flags.key) !== Boolean(flags.identity)) {
        throw new UsageError("--key and --identity go together", { hint: "pass both to search for the key's identifiers, or neither" });
      }
      let identifiers;
      if (flags.key && flags.identity) {
        const { payload } = await readKeyFile(flags.key, await readIdentityFile(flags.identity));
        identifiers = identifiersFromKey(payload);
      }
      const result = await verifyTree(folder, {
        identifiers,
        onProgress: (done, total) => out.progress("verifying", done, total),
      });
      out.clearProgress();
      if (flags.json) {
        out.result(JSON.stringify({ mode: identifiers ? "key" : "rules", ...result }, null, 2));
      } else {
        if (!flags.quiet) {
          for (const finding of result.findings) {
            const index = finding.identifier === undefined ? "" : ` #${finding.identifier}`;
            const line = `${finding.severity.padEnd(7)} ${finding.file}  ${finding.place}  ${finding.category}${index}`;
            out.result(finding.message ? `${line}: ${finding.message}` : line);
          }
        }
        const mode = identifiers ? `${identifiers.length} key identifiers and the DICOM rules` : "the DICOM rules (no key given)";
        out.info(`checked ${result.filesChecked} files against ${mode}: ${result.errors} errors, ${result.warnings} warnings`);
      }
      if (result.errors > 0) setExit(EXIT.INCOMPLETE);
    });
}
