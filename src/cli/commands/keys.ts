import { mkdir, writeFile } from "node:fs/promises";

import { Command, Option } from "commander";

import { DeidError } from "../../errors.js";
import {
  identityFilePermissionsTooOpen,
  inspectKeyFile,
  readIdentityFile,
  readKeyFile,
  writeIdentityFiles,
} from "../../keyfile/index.js";
import { writeNewSecret } from "../../pseudonym/secret.js";
import type { CliOutput } from "../output.js";
import { oneOf } from "../options.js";
import { keyPayloadToCsv } from "../key-csv.js";

export function keygenCommand(output: () => CliOutput): Command {
  return new Command("keygen")
    .description("create an X25519 identity (secret) and its recipient (shareable) for sealing keys")
    .requiredOption("-o, --out <DIR>", "folder for identity.key (mode 0600) and recipient.pub; created if missing")
    .addHelpText("after", "\nExample:\n  $ deidkit keygen --out keys/\n  keep keys/identity.key with the honest broker; give keys/recipient.pub to whoever runs anonymize")
    .action(async (flags: { out: string }) => {
      await mkdir(flags.out, { recursive: true, mode: 0o700 });
      const created = await writeIdentityFiles(flags.out);
      const out = output();
      out.info(`identity (keep secret): ${created.identityPath}`);
      out.info(`recipient (shareable): ${created.recipientPath}`);
      out.result(created.recipient.text);
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

export function keyCommand(output: () => CliOutput): Command {
  const key = new Command("key").description("read re-identification key files");
  key
    .command("inspect")
    .description("show a key file's cleartext header (no identity needed; nothing secret is shown)")
    .argument("<FILE>", "key file")
    .option("--json", "print JSON")
    .action(async (path: string, flags: { json?: boolean }) => {
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
      for (const [name, value] of Object.entries(metadata.fields)) out.result(`${`${name}:`.padEnd(16)}${value}`);
    });
  key
    .command("decrypt")
    .description("decrypt a key file with an identity and print its content (original identifiers!)")
    .argument("<FILE>", "key file")
    .requiredOption("-i, --identity <FILE>", "identity file from keygen")
    .addOption(new Option("--format <FORMAT>", "json or csv").default("json").argParser(oneOf(["json", "csv"])))
    .option("-o, --out <FILE>", "write to FILE (created with mode 0600, never overwritten) instead of stdout")
    .action(async (path: string, flags: { identity: string; format: string; out?: string }) => {
      const out = output();
      if (await identityFilePermissionsTooOpen(flags.identity)) {
        out.warning("the identity file can be read by other users; run chmod 600 on it");
      }
      const identity = await readIdentityFile(flags.identity);
      const { metadata, payload } = await readKeyFile(path, identity);
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
    });
  return key;
}
