/**
 * Plain text and logs: every line has the run's identifiers replaced. The
 * file is streamed, so its size does not matter; its line endings are kept.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

import { writeFully } from "../dicom/file-io.js";
import { openRegularFile } from "../dicom/source.js";
import { LimitError } from "../errors.js";
import { ChunkDecoder, judgeEncoding, type TextEncoding } from "./text-encoding.js";
import type { FormatHandler, FormatWriteResult, WriteContext } from "./types.js";

/** A line is cleaned as a whole, so an identifier cannot straddle two pieces; this caps its length. */
const MAX_LINE_CHARACTERS = 16 * 1024 * 1024;

const TEXT_EXTENSIONS = /\.(txt|log|md|markdown|ya?ml|cfg|conf|ini|toml|rst|out|err|sh|py|r|m|tex|html?|xml)$/i;

/** Bytes looked at to judge the encoding. */
const PROBE_BYTES = 1 << 20;
const CHUNK_BYTES = 1 << 16;

/**
 * Reads the text file at `path` with synchronous calls, a chunk at a time.
 * Most text files are small, and streams cost several trips through the
 * libuv pool per file (a third of the time of a tree of 1,500 small files).
 * Gives the encoding to `onEncoding` first, then the text to `onLines` in
 * pieces that end with a line break, apart from the last. Throws
 * TEXT_ENCODING for text it cannot search (see text-encoding.ts).
 */
function readTextLines(path: string, onEncoding: (encoding: TextEncoding) => void, onLines: (lines: string) => void): void {
  const input = openRegularFile(path);
  try {
    const size = fstatSync(input).size;
    const probe = Buffer.allocUnsafe(Math.max(1, Math.min(PROBE_BYTES, size)));
    const probed = readAt(input, probe, 0);
    const encoding = judgeEncoding(probe.subarray(0, probed), probed < size);
    onEncoding(encoding);

    const decoder = new ChunkDecoder(encoding);
    let pending = "";
    const take = (bytes: Buffer): void => {
      pending += decoder.write(bytes);
      const lastBreak = pending.lastIndexOf("\n");
      if (lastBreak < 0) {
        if (pending.length > MAX_LINE_CHARACTERS) {
          throw new LimitError(`a line is longer than ${MAX_LINE_CHARACTERS} characters`, {
            hint: "split the file into lines, or leave it out of the input",
          });
        }
        return;
      }
      onLines(pending.slice(0, lastBreak + 1));
      pending = pending.slice(lastBreak + 1);
    };
    take(probe.subarray(0, probed));
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    for (let position = probed, count: number; (count = readAt(input, chunk, position)) > 0; position += count) {
      take(chunk.subarray(0, count));
    }
    pending += decoder.end();
    if (pending.length) onLines(pending);
  } finally {
    closeSync(input);
  }
}

/** Pass 1 learns nothing from free text, but reads it through, so that a dry run and scan see the files pass 2 would leave out. */
async function checkText(path: string): Promise<void> {
  readTextLines(path, () => {}, () => {});
}

export async function cleanTextStream(path: string, targetPath: string, context: WriteContext): Promise<FormatWriteResult> {
  let output: number | undefined;
  let encoding: TextEncoding = "utf8";
  let replacements = 0;
  const cleanLine = (line: string): string => {
    const result = context.cleaner.clean(line);
    for (const count of Object.values(result.replaced)) replacements += count ?? 0;
    return result.text;
  };
  try {
    readTextLines(
      path,
      (judged) => {
        encoding = judged;
        output = openSync(targetPath, "wx", 0o644);
      },
      (lines) => writeFully(output!, Buffer.from(lines.split("\n").map(cleanLine).join("\n"), encoding)),
    );
    return { replacements };
  } finally {
    if (output !== undefined) closeSync(output);
  }
}

/** Fills `buffer` from `position` unless the file ends first; returns the number of bytes read. */
function readAt(fd: number, buffer: Buffer, position: number): number {
  let done = 0;
  while (done < buffer.length) {
    const count = readSync(fd, buffer, done, buffer.length - done, position + done);
    if (count === 0) break;
    done += count;
  }
  return done;
}

export const textFormat: FormatHandler = {
  name: "text",
  matches: (relativePath) => TEXT_EXTENSIONS.test(relativePath),
  learn: checkText,
  write: cleanTextStream,
};
