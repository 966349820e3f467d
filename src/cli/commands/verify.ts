import { Command } from "commander";

import { UsageError } from "../../errors.js";
import { readKeyFile } from "../../keyfile/index.js";
import { readManifest, verifyManifest, type ManifestCheck } from "../../manifest/manifest.js";
import { readSignerFile } from "../../manifest/signing-key.js";
import { identifiersFromKey, verifyTree } from "../../verify/verify.js";
import { EXIT } from "../exit-codes.js";
import { addKeyCredentialOptions, openKeyCredentials, type KeyCredentialFlags } from "../key-credentials.js";
import { plural, type CliOutput } from "../output.js";
import type { RecordCounts } from "./keys.js";

const EXAMPLES = `
Examples:
  $ deidkit verify shared_out/
      checks the DICOM rules that need no key
  $ deidkit verify shared_out/ --key shared_out.deidkey --identity keys/identity.key
      also searches every byte, archive member and file name for each original identifier in the key
  $ deidkit verify shared_out/ --manifest shared_out.manifest.json --signer signing/signing.pub
      also checks the signed manifest: every file unchanged, none added, none missing

Findings name the file, the place and the category, never the identifier; in key mode
"#N" is the identifier's index in the key (deidkit key decrypt shows the list).
Exit codes: 0 no error found, 1 errors found, 2 usage error, 3 key could not be opened.`;

interface VerifyFlags extends KeyCredentialFlags {
  key?: string;
  manifest?: string;
  signer?: string;
  json?: boolean;
  quiet?: boolean;
}

function checkFlags(flags: VerifyFlags): void {
  const credentialGiven = (flags.identity?.length ?? 0) > 0 || Boolean(flags.passphraseFile || flags.passphraseEnv || flags.passphrasePrompt);
  if (credentialGiven && !flags.key) {
    throw new UsageError("--identity and the passphrase options open the --key file, and no --key was given", {
      hint: "pass --key FILE as well, or leave the credentials out",
    });
  }
  if (Boolean(flags.manifest) !== Boolean(flags.signer)) {
    throw new UsageError("--manifest and --signer go together", {
      hint: "a manifest is trusted only with the signer's public key: pass both, or neither",
    });
  }
}

function printManifestCheck(check: ManifestCheck, out: CliOutput, quiet: boolean | undefined): void {
  if (!check.signatureValid) out.result(`error   (manifest)  signature  manifest-signature: ${check.signatureProblem}`);
  if (!quiet) for (const finding of check.findings) out.result(`error   ${finding.file}  manifest  manifest-${finding.problem}: ${finding.message}`);
  const signature = check.signatureValid ? "valid signature" : "INVALID signature";
  out.info(`manifest: ${signature}; ${check.filesListed} files listed, ${check.findings.length} changed, added or missing`);
}

export function verifyCommand(output: () => CliOutput, setExit: (code: number) => void, recordCounts: RecordCounts): Command {
  const command = new Command("verify")
    .description("scan a de-identified folder for identifiers left behind, and check it against a signed manifest")
    .argument("<OUTPUT>", "folder written by anonymize")
    .option("--key <FILE>", "key file of the run, to search for every original identifier");
  addKeyCredentialOptions(command, "--passphrase", "the --key file");
  return command
    .option("--manifest <FILE>", "signed manifest of OUTPUT (from anonymize --sign-key) to check every file against")
    .option("--signer <FILE>", "signing.pub of whoever signed the manifest")
    .option("--json", "print the findings as JSON on stdout")
    .option("-q, --quiet", "print only the summary")
    .addHelpText("after", EXAMPLES)
    .action(async (folder: string, flags: VerifyFlags) => {
      const out = output();
      checkFlags(flags);
      // The manifest and signer are read first, so a wrong path fails before the scan.
      const manifest = flags.manifest ? await readManifest(flags.manifest) : undefined;
      const signer = flags.signer ? await readSignerFile(flags.signer) : undefined;
      let identifiers;
      if (flags.key) {
        const credentials = await openKeyCredentials(flags, { output: out, what: flags.key });
        const { payload } = await readKeyFile(flags.key, credentials);
        identifiers = identifiersFromKey(payload);
      }
      const manifestCheck = manifest && signer ? await verifyManifest(folder, manifest, signer) : undefined;
      const result = await verifyTree(folder, {
        identifiers,
        onProgress: (done, total) => out.progress("verifying", done, total),
      });
      out.clearProgress();
      let manifestErrors = 0;
      if (manifestCheck) {
        manifestErrors = manifestCheck.findings.length;
        if (!manifestCheck.signatureValid) manifestErrors += 1;
      }
      recordCounts({ filesChecked: result.filesChecked, errors: result.errors + manifestErrors, warnings: result.warnings });
      if (flags.json) {
        out.result(JSON.stringify({ mode: identifiers ? "key" : "rules", ...result, ...(manifestCheck ? { manifest: manifestCheck } : {}) }, null, 2));
      } else {
        if (!flags.quiet) {
          for (const finding of result.findings) {
            const index = finding.identifier === undefined ? "" : ` #${finding.identifier}`;
            const line = `${finding.severity.padEnd(7)} ${finding.file}  ${finding.place}  ${finding.category}${index}`;
            out.result(finding.message ? `${line}: ${finding.message}` : line);
          }
        }
        if (manifestCheck) printManifestCheck(manifestCheck, out, flags.quiet);
        const mode = identifiers ? `${identifiers.length} key identifiers and the DICOM rules` : "the DICOM rules (no key given)";
        out.info(`checked ${plural(result.filesChecked, "file")} against ${mode}: ${plural(result.errors, "error")}, ${plural(result.warnings, "warning")}`);
      }
      if (result.errors > 0 || manifestErrors > 0) setExit(EXIT.INCOMPLETE);
    });
}
