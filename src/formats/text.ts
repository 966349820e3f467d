/**
 * Plain text and logs: every line has the run's identifiers replaced. The
 * file is streamed, so its size does not matter; its line endings are kept.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { once } from "node:events";
import { finished } from "node:stream/promises";
import { StringDecoder } from "node:string_decoder";

import { LimitError } from "../errors.js";
import type { FormatHandler, FormatWriteResult, WriteContext } from "./types.js";

/** A line is cleaned as a whole, so an identifier cannot straddle two pieces; this caps its length. */
const MAX_LINE_CHARACTERS = 16 * 1024 * 1024;

const TEXT_EXTENSIONS = /\.(txt|log|md|markdown|ya?ml|cfg|conf|ini|toml|rst|out|err|sh|py|r|m|tex|html?|xml)$/i;

/** Text that is not valid UTF-8 is read and written as Latin-1, which maps every byte. */
function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export async function cleanTextStream(path: string, targetPath: string, context: WriteContext): Promise<FormatWriteResult> {
  const probe = createReadStream(path, { start: 0, end: 1 << 20 });
  const chunks: Buffer[] = [];
  for await (const chunk of probe) chunks.push(chunk as Buffer);
  // NOTE: the encoding is judged from the first MiB; a later invalid UTF-8 byte decodes as U+FFFD.
  const encoding: BufferEncoding = isUtf8(Buffer.concat(chunks)) ? "utf8" : "latin1";

  const decoder = new StringDecoder(encoding);
  const output = createWriteStream(targetPath, { flags: "wx", mode: 0o644 });
  // A write error (a full disk, say) can arrive while no write is awaited; keep it for the next step.
  let writeError: Error | undefined;
  output.on("error", (error) => {
    writeError ??= error;
  });
  let pending = "";
  let replacements = 0;
  const cleanLine = (line: string): string => {
    const result = context.cleaner.clean(line);
    for (const count of Object.values(result.replaced)) replacements += count ?? 0;
    return result.text;
  };
  const write = async (text: string): Promise<void> => {
    if (writeError) throw writeError;
    if (!output.write(Buffer.from(text, encoding))) await Promise.race([once(output, "drain"), finished(output)]);
    if (writeError) throw writeError;
  };
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 16 })) {
      pending += decoder.write(chunk as Buffer);
      const lastBreak = pending.lastIndexOf("\n");
      if (lastBreak < 0) {
        if (pending.length > MAX_LINE_CHARACTERS) {
          throw new LimitError(`a line is longer than ${MAX_LINE_CHARACTERS} characters`, {
            hint: "split the file into lines, or leave it out of the input",
          });
        }
        continue;
      }
      const complete = pending.slice(0, lastBreak + 1);
      pending = pending.slice(lastBreak + 1);
      await write(complete.split("\n").map(cleanLine).join("\n"));
    }
    pending += decoder.end();
    if (pending.length) await write(cleanLine(pending));
    output.end();
    await finished(output);
  } catch (error) {
    output.destroy();
    throw error;
  }
  return { replacements };
}

export const textFormat: FormatHandler = {
  name: "text",
  matches: (relativePath) => TEXT_EXTENSIONS.test(relativePath),
  write: cleanTextStream,
};
