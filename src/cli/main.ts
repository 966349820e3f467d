/**
 * The deidkit command. `runCli` builds a fresh commander program for each
 * call and never exits the process, so tests can run it in-process.
 */
import { Command, CommanderError } from "commander";

import { AUDIT_LOG_ENV, AuditSession } from "../audit/audit-log.js";
import { auditOptions } from "../audit/audit-options.js";
import { isDeidError } from "../errors.js";
import { TOOL_VERSION } from "../version.js";
import type { RecordCounts } from "./commands/keys.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { CliOutput, type CliStreams } from "./output.js";

const EXAMPLES = `
Examples:
  $ deidkit keygen --out keys/
  $ deidkit secret new study.secret
  $ deidkit anonymize Data/ out/ --recipient keys/recipient.pub --secret study.secret
  $ deidkit key inspect out.deidkey
  $ deidkit key decrypt out.deidkey --identity keys/identity.key
  $ deidkit verify out/ --manifest out.manifest.json --signer signing/signing.pub

Run deidkit help COMMAND for the options of one command.`;

/** Commands that write an audit line when --audit-log or DEIDKIT_AUDIT_LOG names a file. */
const AUDITED_COMMANDS = new Set([
  "anonymize",
  "verify",
  "reidentify",
  "keygen",
  "key inspect",
  "key decrypt",
  "key merge",
  "key rotate",
  "secret new",
]);

/** Returns a command's name with its parents', without the program's: "key merge". */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(" ");
}

/** Opens the audit log before an audited command's action runs, so an unwritable log stops it first. */
async function beginAudit(audit: AuditSession, command: Command): Promise<void> {
  const name = commandPath(command);
  if (!AUDITED_COMMANDS.has(name)) return;
  const flags = command.opts();
  const path = (flags.auditLog as string | undefined) ?? (process.env[AUDIT_LOG_ENV] || undefined);
  if (path === undefined) return;
  const given: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flags)) {
    if (command.getOptionValueSource(key) === "cli") given[key] = value;
  }
  const args: Record<string, unknown> = {};
  command.registeredArguments.forEach((argument, index) => {
    args[argument.name()] = command.processedArgs[index];
  });
  await audit.begin(path, name, auditOptions({ options: given, arguments: args }));
}

type CommandFactory = (output: () => CliOutput, setExit: (code: number) => void, recordCounts: RecordCounts) => Command[];

/**
 * The module of each command. Only the module of the command named on the
 * command line is imported: between them they load every part of deidkit,
 * which took 0.1 s before `--version` printed anything.
 */
const COMMAND_MODULES: Record<string, () => Promise<CommandFactory>> = {
  anonymize: async () => {
    const { anonymizeCommand } = await import("./commands/anonymize.js");
    return (output, setExit, recordCounts) => [anonymizeCommand(output, setExit, recordCounts)];
  },
  keys: async () => {
    const { keyCommand, keygenCommand, secretCommand } = await import("./commands/keys.js");
    return (output, setExit, recordCounts) => [keygenCommand(output, recordCounts), keyCommand(output, setExit, recordCounts), secretCommand(output)];
  },
  profile: async () => {
    const { profileCommand } = await import("./commands/profile.js");
    return (output) => [profileCommand(output)];
  },
  verify: async () => {
    const { verifyCommand } = await import("./commands/verify.js");
    return (output, setExit, recordCounts) => [verifyCommand(output, setExit, recordCounts)];
  },
  reidentify: async () => {
    const { reidentifyCommand } = await import("./commands/reidentify.js");
    return (output, setExit) => [reidentifyCommand(output, setExit)];
  },
  scan: async () => {
    const { scanCommand } = await import("./commands/scan.js");
    return (output) => [scanCommand(output)];
  },
};

/** The module that defines each top-level command. */
const MODULE_OF_COMMAND: Record<string, string> = {
  anonymize: "anonymize",
  keygen: "keys",
  key: "keys",
  secret: "keys",
  profile: "profile",
  verify: "verify",
  reidentify: "reidentify",
  scan: "scan",
};

/**
 * Returns the command modules that `argv` needs: the one of the command it
 * names, none for a bare --version, and all of them otherwise (the overall
 * help, `help COMMAND`, a misspelt command that gets a suggestion).
 */
function modulesFor(argv: readonly string[]): string[] {
  const first = argv[0];
  if (first === "--version" || first === "-V") return [];
  const module = first === undefined ? undefined : MODULE_OF_COMMAND[first];
  return module ? [module] : Object.keys(COMMAND_MODULES);
}

export async function buildProgram(argv: readonly string[], output: CliOutput, setExit: (code: number) => void, audit = new AuditSession()): Promise<Command> {
  const program = new Command("deidkit")
    .description("De-identify radiotherapy research trees (DICOM and pipeline files) with keyed pseudonyms and a sealed re-identification key")
    .version(TOOL_VERSION)
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", EXAMPLES)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => output.streams.stdout.write(text),
      writeErr: (text) => output.streams.stderr.write(text),
      outputError: (text, write) => write(text.replace(/^error: /, "deidkit: error: ")),
    });
  const current = (): CliOutput => output;
  const recordCounts = (counts: Record<string, number>): void => audit.addCounts(counts);
  const factories = await Promise.all(modulesFor(argv).map((name) => COMMAND_MODULES[name]!()));
  for (const factory of factories) {
    for (const command of factory(current, setExit, recordCounts)) program.addCommand(command);
  }
  // Subcommands inherit exitOverride and output settings only when set on each one.
  const configure = (command: Command): void => {
    command.exitOverride().configureOutput({
      writeOut: (text) => output.streams.stdout.write(text),
      writeErr: (text) => output.streams.stderr.write(text),
      outputError: (text, write) => write(text.replace(/^error: /, "deidkit: error: ")),
    });
    if (AUDITED_COMMANDS.has(commandPath(command))) {
      command.option("--audit-log <FILE>", `append one JSON line about this run to FILE (mode 0600 when created); default: $${AUDIT_LOG_ENV}`);
    }
    command.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  program.hook("preAction", async (_program, actionCommand) => beginAudit(audit, actionCommand));
  return program;
}

/** Runs the command line `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[], streams: CliStreams): Promise<number> {
  const quiet = argv.includes("-q") || argv.includes("--quiet");
  const output = new CliOutput(streams, quiet);
  let exitCode: number = EXIT.OK;
  const audit = new AuditSession();
  const program = await buildProgram(
    argv,
    output,
    (code) => {
      exitCode = Math.max(exitCode, code);
    },
    audit,
  );
  const code = await runProgram(program, argv, output, () => exitCode);
  try {
    await audit.finish(code);
  } catch (error) {
    output.error(isDeidError(error) ? error.message : `cannot append to the audit log (${(error as NodeJS.ErrnoException)?.code ?? "error"})`);
    output.hint("the command itself finished; its audit line is missing, so record this run by hand");
    return Math.max(code, EXIT.FAILED);
  }
  return code;
}

async function runProgram(program: Command, argv: readonly string[], output: CliOutput, exitCode: () => number): Promise<number> {
  try {
    await program.parseAsync([...argv], { from: "user" });
    return exitCode();
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.code === "commander.help") return EXIT.OK;
      return EXIT.USAGE;
    }
    output.clearProgress();
    if (isDeidError(error)) {
      // Key file errors start with their path already.
      const named = error.path !== undefined && !error.message.startsWith(`${error.path}: `);
      output.error(named ? `${error.message} (${error.path})` : error.message);
      if (error.hint) output.hint(error.hint);
    } else if ((error as NodeJS.ErrnoException)?.code) {
      const failure = error as NodeJS.ErrnoException;
      output.error(`${failure.syscall ?? "file operation"} failed: ${failure.code}`);
      output.hint("check free disk space and permissions on the paths given, then run again");
    } else {
      output.error("internal error: deidkit hit a defect it cannot recover from");
      // The stack names code locations only, but the message of a foreign error might quote input, so it is opt-in.
      if (process.env.DEIDKIT_DEBUG === "1" && error instanceof Error) output.error(error.stack ?? error.message);
      output.hint("nothing was published; please report this with the command line you ran (not the data)");
    }
    return exitCodeFor(error);
  }
}
