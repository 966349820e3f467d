/**
 * The options that open a key file (`--identity`, `--passphrase-file`,
 * `--passphrase-env`, `--passphrase-prompt`) and those that seal a new one
 * (`--recipient` and a passphrase), shared by every command that reads or
 * writes key files.
 */
import { Command, Option } from "commander";

import { isDeidError, UsageError } from "../errors.js";
import {
  DEFAULT_PASSPHRASE_COST,
  identityFilePermissionsTooOpen,
  readIdentityFile,
  readRecipientFile,
  type KeyCredential,
  type KeyRecipient,
  type PassphraseCost,
} from "../keyfile/index.js";
import type { CliOutput } from "./output.js";
import { collect, oneOf } from "./options.js";
import { readPassphrase, SHORT_PASSPHRASE_CODE_POINTS } from "./passphrase.js";

/** The parsed options that open a key file, as commander returns them. */
export interface KeyCredentialFlags {
  identity?: string | string[];
  passphraseFile?: string;
  passphraseEnv?: string;
  passphrasePrompt?: boolean;
}

export interface OpenKeyCredentialsOptions {
  /** Receives a warning when an identity file can be read by other users. */
  output?: CliOutput;
  /** Names the key in the prompt and in the error for no credential; default "the key file". */
  what?: string;
  /** Option names of the passphrase, default "--passphrase"; `anonymize --continue` uses "--continue-passphrase". */
  prefix?: string;
}

/** Adds `-i, --identity` (repeatable) and the three `--passphrase-*` options that open a key file. */
export function addKeyCredentialOptions(command: Command, prefix = "--passphrase", what = "the key file"): Command {
  if (prefix === "--passphrase") {
    command.option("-i, --identity <FILE>", `identity file (from keygen) that opens ${what}; repeatable`, collect);
  }
  return command
    .option(`${prefix}-file <FILE>`, `read the passphrase that opens ${what} from FILE (one final line break is ignored)`)
    .option(`${prefix}-env <VAR>`, `read the passphrase that opens ${what} from the environment variable VAR`)
    .option(`${prefix}-prompt`, `ask for the passphrase that opens ${what} on the terminal`);
}

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * Reads every credential the flags name: each identity file and at most one
 * passphrase. Fails with a usage error (exit 2) when none is given, when two
 * passphrase sources are given, or when a file cannot be read.
 */
export async function openKeyCredentials(
  flags: KeyCredentialFlags,
  options: OpenKeyCredentialsOptions = {},
): Promise<KeyCredential[]> {
  const prefix = options.prefix ?? "--passphrase";
  const what = options.what ?? "the key file";
  const identities = asList(flags.identity);
  const passphrase = await readPassphrase(
    { file: flags.passphraseFile, env: flags.passphraseEnv, prompt: flags.passphrasePrompt },
    { prefix },
    what,
    false,
  );
  if (identities.length === 0 && passphrase === undefined) {
    throw new UsageError(`no credential given to open ${what}`, {
      hint: `pass --identity FILE, or the passphrase with ${prefix}-file, ${prefix}-env or ${prefix}-prompt`,
    });
  }
  const credentials: KeyCredential[] = [];
  for (const path of identities) {
    if (options.output && (await identityFilePermissionsTooOpen(path).catch(() => false))) {
      options.output.warning(`${path} can be read by other users; run chmod 600 on it`);
    }
    credentials.push(await readIdentity(path));
  }
  if (passphrase !== undefined) credentials.push({ passphrase });
  return credentials;
}

/** Reads one --identity file; a missing or unreadable one is a usage error (exit 2), like a missing --recipient file. */
async function readIdentity(path: string): Promise<KeyCredential> {
  try {
    return await readIdentityFile(path);
  } catch (error) {
    if (isDeidError(error) && error.code === "IO") throw new UsageError(error.message, { path, hint: error.hint, cause: error });
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Sealing a new key file

/** The parsed options that seal a new key file. */
export interface SealFlags {
  recipient?: string[];
  passphraseCost?: string;
}

export interface KeySealing {
  recipients: KeyRecipient[];
  passphrase?: string;
  passphraseCost: PassphraseCost;
}

/** Argon2id costs that `--passphrase-cost` accepts; both are libsodium presets, within the reader's caps. */
export const PASSPHRASE_COSTS: Record<string, PassphraseCost> = {
  moderate: DEFAULT_PASSPHRASE_COST,
  sensitive: { opslimit: 4, memlimit: 1073741824 },
};

/**
 * Adds `-r, --recipient` (repeatable), the three passphrase options under
 * `prefix` (`--passphrase` or `--new-passphrase`) and `--passphrase-cost`.
 */
export function addSealOptions(command: Command, prefix: string, what: string): Command {
  return command
    .option("-r, --recipient <FILE>", `recipient file (from keygen) to seal ${what} to; repeatable`, collect)
    .option(`${prefix}-file <FILE>`, `seal ${what} to the passphrase in FILE, besides any --recipient (one final line break is ignored)`)
    .option(`${prefix}-env <VAR>`, `seal ${what} to the passphrase in the environment variable VAR, besides any --recipient`)
    .option(`${prefix}-prompt`, `seal ${what} to a passphrase typed twice on the terminal, besides any --recipient`)
    .addOption(
      new Option("--passphrase-cost <LEVEL>", "Argon2id cost of the new passphrase: moderate (256 MiB, 3 passes) or sensitive (1 GiB, 4 passes)")
        .default("moderate")
        .argParser(oneOf(Object.keys(PASSPHRASE_COSTS))),
    );
}

function camelOption(prefix: string, suffix: string): string {
  const words = `${prefix}-${suffix}`.replace(/^--/, "").split("-");
  return words.map((word, index) => (index === 0 ? word : word[0]!.toUpperCase() + word.slice(1))).join("");
}

/** Reads one --recipient file; a missing or invalid one is a usage error (exit 2). */
async function readRecipient(path: string): Promise<KeyRecipient> {
  try {
    return await readRecipientFile(path);
  } catch (error) {
    // The key file library's message already names the path, so it is not repeated.
    if (isDeidError(error)) throw new UsageError(error.message, { hint: error.hint, cause: error });
    throw error;
  }
}

/**
 * Reads the recipients and the passphrase that a new key file is sealed to.
 * Fails with a usage error when neither is given: a key must open for someone.
 */
export async function readKeySealing(flags: SealFlags, prefix: string, what: string, output?: CliOutput): Promise<KeySealing> {
  const recipientPaths = flags.recipient ?? [];
  // The passphrase options are named after `prefix`, and commander stores them camel-cased.
  const named = flags as Record<string, unknown>;
  const passphrase = await readPassphrase(
    {
      file: named[camelOption(prefix, "file")] as string | undefined,
      env: named[camelOption(prefix, "env")] as string | undefined,
      prompt: named[camelOption(prefix, "prompt")] as boolean | undefined,
    },
    { prefix },
    what,
    true,
  );
  if (recipientPaths.length === 0 && passphrase === undefined) {
    throw new UsageError(`no --recipient given, and no passphrase: ${what} must be sealed to someone`, {
      hint: `create an identity with \`deidkit keygen --out keys/\` and pass --recipient keys/recipient.pub, or pass ${prefix}-file, ${prefix}-env or ${prefix}-prompt`,
    });
  }
  if (passphrase !== undefined && [...passphrase].length < SHORT_PASSPHRASE_CODE_POINTS) {
    output?.warning(`the passphrase has fewer than ${SHORT_PASSPHRASE_CODE_POINTS} characters; anyone who gets a copy of ${what} can try to guess it offline`);
  }
  const recipients: KeyRecipient[] = [];
  for (const path of recipientPaths) recipients.push(await readRecipient(path));
  const passphraseCost = PASSPHRASE_COSTS[flags.passphraseCost ?? "moderate"] ?? DEFAULT_PASSPHRASE_COST;
  return { recipients, passphrase, passphraseCost };
}
