/**
 * Which option values an audit line records. The rule is an allow-list:
 * values of the options named below are recorded, paths are recorded
 * unless they lie inside INPUT (whose names can hold patient names and
 * IDs), and any other option is recorded only as given, never its value.
 * No option carries a secret, because passphrases and keys are only ever
 * read from files, the environment or the terminal.
 */
import { isAbsolute, relative, resolve } from "node:path";

/** Options whose values are settings, never identifiers or secrets (an environment variable name included). */
const VALUE_OPTIONS = new Set([
  "profile",
  "option",
  "jobs",
  "dryRun",
  "json",
  "quiet",
  "maxDepth",
  "maxElements",
  "maxHeaderBytes",
  "format",
  "passphraseCost",
  "passphrasePrompt",
  "passphraseEnv",
  "newPassphrasePrompt",
  "newPassphraseEnv",
  "continuePassphrasePrompt",
  "continuePassphraseEnv",
  "signing",
]);

/** Options whose values are paths of files outside the data: recorded unless inside INPUT. */
const PATH_OPTIONS = new Set([
  "recipient",
  "keyOut",
  "report",
  "secret",
  "continue",
  "identity",
  "map",
  "out",
  "key",
  "manifest",
  "signer",
  "signKey",
  "passphraseFile",
  "newPassphraseFile",
  "continuePassphraseFile",
  "auditLog",
]);

/** Argument names whose values are never recorded, because they are paths into the input data. */
const INPUT_ARGUMENTS = new Set(["INPUT"]);

export const NOT_RECORDED_INSIDE_INPUT = "(a path inside INPUT, not recorded)";
export const NOT_RECORDED = "(given, value not recorded)";

function isInside(path: string, folder: string): boolean {
  const rest = relative(resolve(folder), resolve(path));
  return rest === "" || (!rest.startsWith("..") && !isAbsolute(rest));
}

function recordPath(value: string, input: string | undefined): string {
  return input !== undefined && isInside(value, input) ? NOT_RECORDED_INSIDE_INPUT : value;
}

export interface CommandCall {
  /** Option values by commander attribute name, only those given on the command line. */
  options: Record<string, unknown>;
  /** Positional arguments by their declared name (INPUT, OUTPUT, FILE, FILES). */
  arguments: Record<string, unknown>;
}

/** Returns the options and arguments of one command call as they may appear in an audit line. */
export function auditOptions(call: CommandCall): Record<string, unknown> {
  const inputArgument = call.arguments.INPUT;
  const input = typeof inputArgument === "string" ? inputArgument : undefined;
  const recorded: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(call.arguments)) {
    if (value === undefined) continue;
    if (INPUT_ARGUMENTS.has(name)) {
      recorded[name] = NOT_RECORDED;
      continue;
    }
    recorded[name] = Array.isArray(value) ? value.map((item) => recordPath(String(item), input)) : recordPath(String(value), input);
  }
  for (const [name, value] of Object.entries(call.options)) {
    if (value === undefined) continue;
    if (VALUE_OPTIONS.has(name)) {
      recorded[name] = value;
    } else if (PATH_OPTIONS.has(name)) {
      recorded[name] = Array.isArray(value) ? value.map((item) => recordPath(String(item), input)) : recordPath(String(value), input);
    } else {
      // --pass-through globs and any option added later: a glob can spell a patient name, so only its presence is kept.
      recorded[name] = NOT_RECORDED;
    }
  }
  return recorded;
}
