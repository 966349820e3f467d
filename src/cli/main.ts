/**
 * The deidkit command. `runCli` builds a fresh commander program for each
 * call and never exits the process, so tests can run it in-process.
 */
import { Command, CommanderError } from "commander";

import { isDeidError } from "../errors.js";
import { TOOL_VERSION } from "../version.js";
import { anonymizeCommand } from "./commands/anonymize.js";
import { keyCommand, keygenCommand, secretCommand } from "./commands/keys.js";
import { profileCommand } from "./commands/profile.js";
import { reidentifyCommand } from "./commands/reidentify.js";
import { scanCommand } from "./commands/scan.js";
import { verifyCommand } from "./commands/verify.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { CliOutput, type CliStreams } from "./output.js";

const EXAMPLES = `
Examples:
  $ deidkit keygen --out keys/
  $ deidkit secret new study.secret
  $ deidkit anonymize Data/ out/ --recipient keys/recipient.pub --secret study.secret
  $ deidkit key inspect out.deidkey
  $ deidkit key decrypt out.deidkey --identity keys/identity.key

Run deidkit help COMMAND for the options of one command.`;

export function buildProgram(output: CliOutput, setExit: (code: number) => void): Command {
  const program = new Command("deidkit")
    .description("De-identify radiotherapy research data (DICOM) with keyed pseudonyms and a sealed re-identification key")
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
  for (const command of [
    anonymizeCommand(current, setExit),
    keygenCommand(current),
    keyCommand(current),
    secretCommand(current),
    profileCommand(current),
    verifyCommand(current, setExit),
    reidentifyCommand(current, setExit),
    scanCommand(current),
  ]) {
    program.addCommand(command);
  }
  // Subcommands inherit exitOverride and output settings only when set on each one.
  const configure = (command: Command): void => {
    command.exitOverride().configureOutput({
      writeOut: (text) => output.streams.stdout.write(text),
      writeErr: (text) => output.streams.stderr.write(text),
      outputError: (text, write) => write(text.replace(/^error: /, "deidkit: error: ")),
    });
    command.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  return program;
}

/** Runs the command line `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[], streams: CliStreams): Promise<number> {
  const quiet = argv.includes("-q") || argv.includes("--quiet");
  const output = new CliOutput(streams, quiet);
  let exitCode: number = EXIT.OK;
  const program = buildProgram(output, (code) => {
    exitCode = Math.max(exitCode, code);
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.code === "commander.help") return EXIT.OK;
      return EXIT.USAGE;
    }
    output.clearProgress();
    if (isDeidError(error)) {
      output.error(error.path ? `${error.message} (${error.path})` : error.message);
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
