/**
 * The encodings of text and CSV files. UTF-8 is judged from a file's first
 * bytes and must then hold to the end; text that is not UTF-8 is Latin-1,
 * which maps every byte; UTF-16 little-endian is recognised by its
 * byte-order mark or its zero bytes. Anything else cannot be searched for
 * the run's identifiers, so the file is left out.
 */
import { StringDecoder } from "node:string_decoder";
import { TextDecoder } from "node:util";

import { QuarantineReason } from "../deid/apply.js";

export type TextEncoding = "utf8" | "latin1" | "utf16le";

const REASON = "TEXT_ENCODING";

/** Share of zero bytes in the first bytes above which text is taken for UTF-16. */
const UTF16_ZERO_SHARE = 0.2;

/**
 * Judges the encoding from the first bytes of a file. With `cut` set, the
 * bytes are only the start of the file, so a UTF-8 character cut off at
 * their end is no error.
 */
export function judgeEncoding(head: Buffer, cut: boolean): TextEncoding {
  if (head[0] === 0xff && head[1] === 0xfe) {
    if (head[2] === 0 && head[3] === 0) throw unsupported("UTF-32");
    return "utf16le";
  }
  if (head[0] === 0xfe && head[1] === 0xff) throw unsupported("UTF-16 big-endian");
  let zerosAtEven = 0;
  let zerosAtOdd = 0;
  for (let index = 0; index < head.length; index++) {
    if (head[index] !== 0) continue;
    if (index % 2 === 0) zerosAtEven++;
    else zerosAtOdd++;
  }
  if (zerosAtEven + zerosAtOdd > head.length * UTF16_ZERO_SHARE) {
    // ASCII in UTF-16LE has its zero bytes at odd offsets, in UTF-16BE at even ones.
    if (zerosAtOdd > 4 * zerosAtEven) return "utf16le";
    throw unsupported("UTF-16 big-endian, UTF-32 or binary");
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: cut });
    return "utf8";
  } catch {
    return "latin1";
  }
}

function unsupported(what: string): QuarantineReason {
  return new QuarantineReason(REASON, `the text looks like ${what}, which deidkit cannot search for identifiers; convert it to UTF-8`);
}

/**
 * Decodes a file's bytes chunk by chunk. UTF-8 is decoded strictly: a byte
 * that is not UTF-8 after the part that judgeEncoding saw leaves the file
 * out, since a name written in another encoding there would not be found.
 */
export class ChunkDecoder {
  private readonly utf8: TextDecoder | undefined;
  private readonly other: StringDecoder | undefined;

  constructor(readonly encoding: TextEncoding) {
    if (encoding === "utf8") this.utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    else this.other = new StringDecoder(encoding);
  }

  write(bytes: Buffer): string {
    if (!this.utf8) return this.other!.write(bytes);
    try {
      return this.utf8.decode(bytes, { stream: true });
    } catch {
      throw mixedEncoding();
    }
  }

  end(): string {
    if (!this.utf8) return this.other!.end();
    try {
      return this.utf8.decode();
    } catch {
      throw mixedEncoding();
    }
  }
}

function mixedEncoding(): QuarantineReason {
  return new QuarantineReason(
    REASON,
    "the text starts as UTF-8 but has bytes further on that are not UTF-8, so names written in another encoding there would not be found; convert the file to one encoding",
  );
}
