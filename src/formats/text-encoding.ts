/**
 * The encodings of text and CSV files. UTF-8 is judged from a file's first
 * bytes and must then hold to the end. Text that is not UTF-8 is Latin-1,
 * which maps every byte, unless a UTF-8 character appears in it. UTF-16
 * little-endian is recognised by its byte-order mark or its zero bytes.
 * Anything else, mixed UTF-8 and Latin-1 included, cannot be searched for
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
    // A UTF-8 name among Latin-1 text would be read as two Latin-1
    // characters per letter and never match.
    if (utf8SequenceIn(head)) throw mixedEncoding();
    return "latin1";
  }
}

/**
 * Returns the length of the UTF-8 sequence that `lead` starts (2 to 4), or 0
 * when it starts none.
 */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Returns true when `bytes` contain a complete UTF-8 sequence of two to
 * four bytes. Latin-1 text seldom does: it takes an accented letter from
 * Â to ô followed by one to three symbols from the range 0x80 to 0xBF.
 */
function utf8SequenceIn(bytes: Buffer): boolean {
  for (let index = 0; index < bytes.length; index++) {
    const length = sequenceLength(bytes[index]!);
    if (length === 0 || index + length > bytes.length) continue;
    let continued = true;
    for (let next = index + 1; next < index + length; next++) {
      if ((bytes[next]! & 0xc0) !== 0x80) continued = false;
    }
    if (continued) return true;
  }
  return false;
}

function unsupported(what: string): QuarantineReason {
  return new QuarantineReason(REASON, `the text looks like ${what}, which deidkit cannot search for identifiers; convert it to UTF-8`);
}

/**
 * A decoder of a file's bytes, chunk by chunk. A byte that is not UTF-8 in
 * UTF-8 text leaves the file out, and so does a UTF-8 character in Latin-1
 * text, because a name written in the other encoding would not be found.
 */
export class ChunkDecoder {
  private readonly utf8: TextDecoder | undefined;
  private readonly other: StringDecoder | undefined;
  /** The last bytes of the previous Latin-1 chunk, for a UTF-8 character split between two chunks. */
  private carry = Buffer.alloc(0);

  constructor(readonly encoding: TextEncoding) {
    if (encoding === "utf8") this.utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    else this.other = new StringDecoder(encoding);
  }

  write(bytes: Buffer): string {
    if (this.encoding === "latin1") {
      // The seam between two chunks is checked on its own, so that no chunk is copied.
      const seam = this.carry.length ? Buffer.concat([this.carry, bytes.subarray(0, 3)]) : undefined;
      if ((seam && utf8SequenceIn(seam)) || utf8SequenceIn(bytes)) throw mixedEncoding();
      this.carry = Buffer.from(bytes.subarray(Math.max(0, bytes.length - 3)));
    }
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
    "the text mixes UTF-8 with bytes that are not UTF-8 (Latin-1, say), so names written in one of them would not be found; convert the file to one encoding",
  );
}
