import { mkdir, writeFile } from "node:fs/promises";

import { Command, Option } from "commander";

import { DeidError } from "../../errors.js";
import { inspectKeyFile, readKeyFile, writeIdentityFiles, writeKeyFile } from "../../keyfile/index.js";
import { mergeKeyPayloads, type MergeInput } from "../../keyfile/merge-payloads.js";
import { writeSigningKeyFiles } from "../../manifest/signing-key.js";
import { writeNewSecret } from "../../pseudonym/secret.js";
import { TOOL_NAME, TOOL_VERSION } from "../../version.js";
import { EXIT } from "../exit-codes.js";
import { keyPayloadToCsv } from "../key-csv.js";
import {
  addKeyCredentialOptions,
  addSealOptions,
  openKeyCredentials,
  readKeySealing,
  type KeyCredentialFlags,
  type SealFlags,
} from "../key-credentials.js";
import type { CliOutput } from "../output.js";
import { oneOf } from "../options.js";

/** Receives counts for the audit log; they must never contain identifiers. */
export type RecordCounts = (counts: Record<string, number>) => void;

const KEYGEN_HELP = `
Examples:
  $ deidkit keygen --out keys/
      keep keys/identity.key with the honest broker; give keys/recipient.pub to whoever runs anonymize
  $ deidkit keygen --signing --out signing/
      keep signing/signing.key with whoever runs anonymize --sign-key; give signing/signing.pub to those who verify`;

export function keygenCommand(output: () => CliOutput, recordCounts: RecordCounts): Command {
  return new Command("keygen")
    .description("create an X25519 identity (secret) and its recipient (shareable) for sealing keys, or an Ed25519 signing key pair")
    .requiredOption("-o, --out <DIR>", "folder for the new files; created if missing")
    .option("--signing", "write signing.key (Ed25519 secret, mode 0600) and signing.pub for signed manifests instead of an identity")
    .addHelpText("after", KEYGEN_HELP)
    .action(async (flags: { out: string; signing?: boolean }) => {
      await mkdir(flags.out, { recursive: true, mode: 0o700 });
      const out = output();
      if (flags.signing) {
        const created = await writeSigningKeyFiles(flags.out);
        out.info(`signing key (keep secret): ${created.keyPath}`);
        out.info(`signer (shareable): ${created.signerPath}`);
        out.result(created.signer.text);
      } else {
        const created = await writeIdentityFiles(flags.out);
        out.info(`identity (keep secret): ${created.identityPath}`);
        out.info(`recipient (shareable): ${created.recipientPath}`);
        out.result(created.recipient.text);
      }
      recordCounts({ filesWritten: 2 });
    });
}

export function secretCommand(output: () => CliOutput): Command {
  const secret = new Command("secret").description("manage the 32-byte secret that pseudonyms are derived from");
  secret
    .command("new")
    .description("write a new random secret to FILE (mode 0600, never overwritten)")
    .argument("<FILE>", "path of the new secret file")
    .action(async (path: string) => {
      await writeNewSecret(path);
      output().info(`secret written: ${path}; pass it to anonymize with --secret to keep pseudonyms stable across runs`);
    });
  return secret;
}

type DecryptFlags = KeyCredentialFlags & { format: string; out?: string };
type ResealFlags = KeyCredentialFlags & SealFlags & { out: string };

/** Counts of a decrypted payload for the audit log. */
function payloadCounts(payload: Record<string, unknown>): Record<string, number> {
  const length = (name: string): number => (Array.isArray(payload[name]) ? (payload[name] as unknown[]).length : 0);
  return { patients: length("patients"), identifiers: length("identifiers"), uids: length("uids"), files: length("files") };
}

function inspectAction(output: () => CliOutput) {
  return async (path: string, flags: { json?: boolean }): Promise<void> => {
    const metadata = await inspectKeyFile(path);
    const out = output();
    if (flags.json) {
      out.result(JSON.stringify(metadata, null, 2));
      return;
    }
    out.result(`format version: ${metadata.version}`);
    out.result(`created:        ${metadata.created}`);
    out.result(`tool:           ${metadata.tool}`);
    out.result(`recipients:     ${metadata.recipients.join(", ") || "(none)"}`);
    out.result(`passphrase:     ${metadata.passphrase ? "yes" : "no"}`);
    for (const [name, value] of Object.entries(metadata.fields)) out.result(`${`${name}:`.padEnd(16)}${value}`);
  };
}

function decryptAction(output: () => CliOutput, recordCounts: RecordCounts) {
  return async (path: string, flags: DecryptFlags): Promise<void> => {
    const out = output();
    const credentials = await openKeyCredentials(flags, { output: out, what: path });
    const { metadata, payload } = await readKeyFile(path, credentials);
    recordCounts(payloadCounts(payload));
    const text = flags.format === "csv" ? keyPayloadToCsv(payload) : `${JSON.stringify({ metadata, payload }, null, 2)}\n`;
    if (!flags.out) {
      out.result(text);
      return;
    }
    try {
      await writeFile(flags.out, text, { flag: "wx", mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") {
        throw new DeidError("OUTPUT_EXISTS", `${flags.out} already exists`, { path: flags.out, hint: "choose a new --out path" });
      }
      throw error;
    }
    out.info(`decrypted key written to ${flags.out}`);
  };
}

function mergeAction(output: () => CliOutput, setExit: (code: number) => void, recordCounts: RecordCounts) {
  return async (paths: string[], flags: ResealFlags): Promise<void> => {
    const out = output();
    // Everything that can fail for usage reasons is read before any key is opened, so a mistake costs no Argon2id run.
    const sealing = await readKeySealing(flags, "--new-passphrase", flags.out, out);
    const credentials = await openKeyCredentials(flags, { output: out, what: "the key files" });
    const inputs: MergeInput[] = [];
    for (const path of paths) inputs.push({ path, payload: (await readKeyFile(path, credentials)).payload });
    const { payload, conflicts } = mergeKeyPayloads(inputs);
    const conflictTotal = [...conflicts.values()].reduce((sum, count) => sum + count, 0);
    recordCounts({ inputs: paths.length, runs: payload.runs.length, ...payloadCounts(payload as unknown as Record<string, unknown>), conflicts: conflictTotal });
    if (conflictTotal > 0) {
      out.error(`the ${paths.length} key files disagree in ${conflictTotal} places, so no merged key was written`);
      for (const [category, count] of conflicts) out.error(`conflict: ${category}: ${count}`);
      out.hint("decrypt the keys with deidkit key decrypt to compare them; runs with different secrets cannot be merged");
      setExit(EXIT.INCOMPLETE);
      return;
    }
    await writeKeyFile(flags.out, payload, {
      recipients: sealing.recipients,
      passphrase: sealing.passphrase,
      passphraseCost: sealing.passphraseCost,
      tool: `${TOOL_NAME} ${TOOL_VERSION}`,
      fields: { patients: payload.patients.length, files: payload.files.length, uids: payload.uids.length, runs: payload.runs.length },
    });
    out.info(`merged ${paths.length} key files (${payload.runs.length} runs, ${payload.patients.length} patients, ${payload.files.length} files) into ${flags.out}`);
  };
}

function rotateAction(output: () => CliOutput, recordCounts: RecordCounts) {
  return async (path: string, flags: ResealFlags): Promise<void> => {
    const out = output();
    const sealing = await readKeySealing(flags, "--new-passphrase", flags.out, out);
    const credentials = await openKeyCredentials(flags, { output: out, what: path });
    const { metadata, payload } = await readKeyFile(path, credentials);
    // The fields were authenticated by the header MAC when the file was opened, so carrying them over is safe.
    await writeKeyFile(flags.out, payload, {
      recipients: sealing.recipients,
      passphrase: sealing.passphrase,
      passphraseCost: sealing.passphraseCost,
      tool: `${TOOL_NAME} ${TOOL_VERSION}`,
      fields: metadata.fields,
    });
    recordCounts({ recipients: sealing.recipients.length, passphrase: sealing.passphrase === undefined ? 0 : 1 });
    out.info(`${flags.out} is sealed to ${sealing.recipients.length} recipients${sealing.passphrase === undefined ? "" : " and a passphrase"}`);
    out.hint(`${path} still opens with its old credentials; delete it once ${flags.out} is checked`);
  };
}

const KEY_HELP = `
Examples:
  $ deidkit key decrypt out.deidkey --identity keys/identity.key
  $ deidkit key decrypt out.deidkey --passphrase-prompt --format csv --out key.csv
  $ deidkit key merge run1.deidkey run2.deidkey --out series.deidkey --identity keys/identity.key --recipient keys/recipient.pub
  $ deidkit key rotate out.deidkey --out out-new.deidkey --identity old/identity.key --recipient new/recipient.pub

A passphrase is read from a file, an environment variable or the terminal, never from an argument.
Exit codes: 0 done, 1 merge conflicts (nothing written), 2 usage error, 3 key could not be opened.`;

export function keyCommand(output: () => CliOutput, setExit: (code: number) => void, recordCounts: RecordCounts): Command {
  const key = new Command("key").description("read, merge and re-seal re-identification key files").addHelpText("after", KEY_HELP);
  key
    .command("inspect")
    .description("show a key file's cleartext header (no identity needed; nothing secret is shown)")
    .argument("<FILE>", "key file")
    .option("--json", "print JSON")
    .action(inspectAction(output));

  addKeyCredentialOptions(
    key
      .command("decrypt")
      .description("decrypt a key file with an identity or its passphrase and print its content (original identifiers!)")
      .argument("<FILE>", "key file"),
  )
    .addOption(new Option("--format <FORMAT>", "json or csv").default("json").argParser(oneOf(["json", "csv"])))
    .option("-o, --out <FILE>", "write to FILE (created with mode 0600, never overwritten) instead of stdout")
    .action(decryptAction(output, recordCounts));

  const merge = key
    .command("merge")
    .description("merge the keys of several runs or shards into one new key; fails on any conflict")
    .argument("<FILES...>", "key files to merge, in order")
    .requiredOption("-o, --out <FILE>", "the merged key file (mode 0600, never overwritten)");
  addSealOptions(addKeyCredentialOptions(merge, "--passphrase", "the input keys"), "--new-passphrase", "the merged key");
  merge.action(mergeAction(output, setExit, recordCounts));

  const rotate = key
    .command("rotate")
    .description("re-seal a key file to new recipients or a new passphrase, into a new file")
    .argument("<FILE>", "key file to re-seal")
    .requiredOption("-o, --out <FILE>", "the new key file (mode 0600, never overwritten)");
  addSealOptions(addKeyCredentialOptions(rotate, "--passphrase", "the old key"), "--new-passphrase", "the new key");
  rotate.action(rotateAction(output, recordCounts));
  return key;
}
