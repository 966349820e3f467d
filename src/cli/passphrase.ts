/**
 * Passphrases for key files, from a file, an environment variable or the
 * terminal. A passphrase is never taken from a command-line argument,
 * because other users can read the argument list of a running process.
 */
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { ReadStream } from "node:tty";

import { UsageError } from "../errors.js";

/** Largest passphrase file read, in bytes. */
export const MAX_PASSPHRASE_FILE_BYTES = 4096;

/** Passphrases shorter than this many code points get a warning when a key is sealed with them. */
export const SHORT_PASSPHRASE_CODE_POINTS = 12;

/** Source of one passphrase. The CLI accepts exactly one source per passphrase. */
export interface PassphraseSource {
  file?: string;
  env?: string;
  prompt?: boolean;
}

/** Names of the three options of one passphrase, for messages: `--passphrase` or `--new-passphrase`. */
export interface PassphraseOptionNames {
  prefix: string;
}

export function countSources(source: PassphraseSource): number {
  return [source.file !== undefined, source.env !== undefined, source.prompt === true].filter(Boolean).length;
}

/**
 * Reads the passphrase from its one source, or returns undefined when none
 * is given. `confirm` asks twice at the prompt, for a passphrase that seals
 * a new key. `what` names the key in the prompt, such as "the key out.deidkey".
 */
export async function readPassphrase(
  source: PassphraseSource,
  names: PassphraseOptionNames,
  what: string,
  confirm: boolean,
): Promise<string | undefined> {
  const count = countSources(source);
  if (count === 0) return undefined;
  if (count > 1) {
    const { prefix } = names;
    throw new UsageError(`${prefix}-file, ${prefix}-env and ${prefix}-prompt exclude each other`, {
      hint: "pass the passphrase one way only",
    });
  }
  let passphrase: string;
  if (source.file !== undefined) passphrase = await readPassphraseFile(source.file);
  else if (source.env !== undefined) passphrase = readPassphraseEnv(source.env, process.env, names.prefix);
  else passphrase = await promptPassphrase(what, confirm);
  return passphrase;
}

function checkPassphraseText(passphrase: string, where: string, path?: string): string {
  if (passphrase.length === 0) {
    throw new UsageError(`${where} is empty`, { path, hint: "a key file passphrase must not be empty" });
  }
  // A control character is most often the sign of a binary file or a pasted escape sequence, not an intended passphrase.
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/u.test(passphrase)) {
    throw new UsageError(`${where} contains a control character or a line break inside it`, {
      path,
      hint: "write the passphrase on a single line; only one final line break is removed",
    });
  }
  return passphrase;
}

/** Reads a passphrase file: the whole content as UTF-8, less one final LF or CRLF. */
export async function readPassphraseFile(path: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw new UsageError(`${path}: cannot read the passphrase file (${code})`, {
      path,
      hint: "check the --passphrase-file path and its permissions",
    });
  }
  let bytes: Buffer;
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size > MAX_PASSPHRASE_FILE_BYTES) {
      throw new UsageError(`${path}: the passphrase file is not a regular file of at most ${MAX_PASSPHRASE_FILE_BYTES} bytes`, {
        path,
        hint: "the file must contain only the passphrase",
      });
    }
    bytes = await handle.readFile();
  } finally {
    await handle.close();
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${path}: the passphrase file is not valid UTF-8`, { path, hint: "save the file as UTF-8" });
  } finally {
    bytes.fill(0);
  }
  return checkPassphraseText(text.replace(/\r?\n$/u, ""), `${path}: the passphrase`, path);
}

/** Reads a passphrase from the environment variable `name` (the name, not the value, is the option's argument). */
export function readPassphraseEnv(name: string, env: NodeJS.ProcessEnv, prefix = "--passphrase"): string {
  const value = env[name];
  if (value === undefined) {
    throw new UsageError(`the environment variable ${name} named by ${prefix}-env is not set`, {
      hint: `set it before running deidkit, or pass ${prefix}-file or ${prefix}-prompt`,
    });
  }
  return checkPassphraseText(value, `the environment variable ${name}`);
}

// ---------------------------------------------------------------------------
// Terminal prompt

/** The terminal a prompt reads from and writes to. */
export interface PromptTerminal {
  input: NodeJS.ReadableStream & { setRawMode(mode: boolean): unknown };
  write(text: string): void;
  close(): Promise<void>;
}

/** Raised by readHiddenLine when the person presses Ctrl-C or Ctrl-D at the prompt. */
export class PromptCancelled extends Error {}

/**
 * Reads one line from a terminal in raw mode, so nothing typed is echoed.
 * Backspace (DEL or BS) removes the last code point; Enter ends the line;
 * Ctrl-C, and Ctrl-D on an empty line, cancel. Raw mode is switched off
 * again in every case.
 */
export function readHiddenLine(terminal: PromptTerminal, prompt: string): Promise<string> {
  const { input } = terminal;
  // Raw mode comes first: a line typed or pasted before it would be echoed by the terminal's line discipline.
  input.setRawMode(true);
  terminal.write(prompt);
  return new Promise<string>((resolve, reject) => {
    const characters: string[] = [];
    const finish = (error?: Error): void => {
      input.removeListener("data", onData);
      input.removeListener("end", onEnd);
      input.setRawMode(false);
      input.pause();
      terminal.write("\n");
      const line = characters.join("");
      characters.length = 0;
      if (error) reject(error);
      else resolve(line);
    };
    const onEnd = (): void => finish(new PromptCancelled("the terminal closed"));
    const onData = (chunk: Buffer | string): void => {
      const text = typeof chunk === "string" ? chunk : chunk.toString("utf8");
      for (const character of text) {
        if (character === "\r" || character === "\n") return finish();
        if (character === "\u0003") return finish(new PromptCancelled("Ctrl-C"));
        if (character === "\u0004") {
          if (characters.length === 0) return finish(new PromptCancelled("Ctrl-D"));
          continue;
        }
        if (character === "\u007f" || character === "\b") {
          characters.pop();
          continue;
        }
        // Other control characters (arrow-key escape sequences among them) are not part of a passphrase.
        if (/[\u0000-\u001f]/u.test(character)) continue;
        characters.push(character);
      }
    };
    input.on("data", onData);
    input.on("end", onEnd);
    input.resume();
  });
}

/**
 * Opens the controlling terminal (/dev/tty), so a prompt works even when
 * stdin and stdout are redirected. Fails with exit 2 when the process has
 * no terminal, as under cron, CI or `setsid`.
 */
export async function openTerminal(): Promise<PromptTerminal> {
  const noTerminal = (): UsageError =>
    new UsageError("the passphrase prompt needs a terminal, and this process has none", {
      hint: "pass the passphrase with a --passphrase-file or --passphrase-env option instead",
    });
  if (process.platform === "win32") {
    // NOTE: Windows has no /dev/tty, so the prompt uses stdin there, which must itself be a console.
    const stdin = process.stdin;
    if (!stdin.isTTY) throw noTerminal();
    return { input: stdin, write: (text) => process.stderr.write(text), close: async () => undefined };
  }
  let readFd: number;
  let writeFd: number;
  try {
    readFd = openSync("/dev/tty", constants.O_RDONLY | constants.O_NOCTTY);
  } catch {
    throw noTerminal();
  }
  try {
    writeFd = openSync("/dev/tty", constants.O_WRONLY | constants.O_NOCTTY);
  } catch {
    closeSync(readFd);
    throw noTerminal();
  }
  // The stream owns readFd from here on and closes it when destroyed.
  const input = new ReadStream(readFd);
  return {
    input,
    // The prompt goes to the terminal itself, not to stdout or stderr, which may be redirected to files.
    write: (text) => {
      writeSync(writeFd, text);
    },
    close: async () => {
      input.destroy();
      closeSync(writeFd);
    },
  };
}

/** Prompts on the terminal for a passphrase, twice when `confirm` is set, and checks that both entries match. */
export async function promptPassphrase(
  what: string,
  confirm: boolean,
  openPromptTerminal: () => Promise<PromptTerminal> = openTerminal,
): Promise<string> {
  const terminal = await openPromptTerminal();
  try {
    const first = await readHiddenLine(terminal, `deidkit: passphrase for ${what}: `);
    checkPassphraseText(first, "the passphrase typed");
    if (confirm) {
      const second = await readHiddenLine(terminal, `deidkit: type the passphrase again: `);
      if (second !== first) {
        throw new UsageError("the two passphrases typed do not match", { hint: "run the command again" });
      }
    }
    return first;
  } catch (error) {
    if (error instanceof PromptCancelled) {
      throw new UsageError(`passphrase entry was cancelled (${error.message}); nothing was written`);
    }
    throw error;
  } finally {
    await terminal.close();
  }
}
