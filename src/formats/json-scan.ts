/**
 * An event scanner for JSON text (RFC 8259) that reports where each token
 * sits, so that a writer can copy everything it does not change byte for
 * byte: white space, key order, duplicate keys and number spellings.
 */
import { LimitError } from "../errors.js";

export interface JsonScalar {
  kind: "string" | "number" | "literal";
  /** Offsets of the token in the text, end exclusive; a string token includes its quotes. */
  start: number;
  end: number;
  /** The decoded string, or the token as written for numbers and literals. */
  value: string;
}

export interface JsonVisitor {
  /** A container starts at offset `start` (its "{" or "["). */
  enter(kind: "object" | "array", start: number): void;
  leave(): void;
  /** An object member name; the next `enter` or `scalar` is its value. */
  key(token: JsonScalar): void;
  scalar(token: JsonScalar): void;
}

/** Thrown for text that is not JSON; `offset` is the character offset of the problem. */
export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at character ${offset}`);
    this.name = "JsonSyntaxError";
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * Literals. NaN, Infinity and -Infinity are not JSON, but Python's json
 * module writes them by default (allow_nan=True), so pipeline outputs
 * contain them. They are accepted and copied as written.
 */
const LITERALS = ["true", "false", "null", "NaN", "Infinity", "-Infinity"];

const enum Expect {
  Value,
  ValueOrClose,
  KeyOrClose,
  Key,
  Colon,
  CommaOrClose,
  End,
}

function isWhiteSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

function scanString(text: string, start: number): JsonScalar {
  let index = start + 1;
  let escaped = false;
  for (;;) {
    if (index >= text.length) throw new JsonSyntaxError("unterminated string", start);
    const code = text.charCodeAt(index);
    if (code === 0x22) break;
    if (code === 0x5c) {
      escaped = true;
      index += 2;
      continue;
    }
    if (code < 0x20) throw new JsonSyntaxError("control character in a string", index);
    index++;
  }
  const end = index + 1;
  if (!escaped) return { kind: "string", start, end, value: text.slice(start + 1, index) };
  try {
    return { kind: "string", start, end, value: JSON.parse(text.slice(start, end)) as string };
  } catch {
    throw new JsonSyntaxError("invalid escape sequence in a string", start);
  }
}

function scanBareToken(text: string, start: number): JsonScalar {
  for (const literal of LITERALS) {
    if (text.startsWith(literal, start)) return { kind: "literal", start, end: start + literal.length, value: literal };
  }
  NUMBER.lastIndex = start;
  const match = NUMBER.exec(text);
  if (!match) throw new JsonSyntaxError("unexpected character", start);
  return { kind: "number", start, end: start + match[0].length, value: match[0] };
}

/**
 * Scans `text` and calls `visitor` for each container, member name and
 * scalar in document order. A leading byte order mark is skipped. Throws
 * JsonSyntaxError for text that is not one JSON value, and LimitError
 * when containers nest deeper than `maxDepth`.
 */
export function scanJson(text: string, visitor: JsonVisitor, maxDepth: number): void {
  const stack: Array<"object" | "array"> = [];
  let expect = Expect.Value as Expect;
  let index = text.charCodeAt(0) === 0xfeff ? 1 : 0;

  const afterValue = (): void => {
    expect = stack.length === 0 ? Expect.End : Expect.CommaOrClose;
  };
  const open = (kind: "object" | "array"): void => {
    if (stack.length >= maxDepth) {
      throw new LimitError(`JSON containers nest deeper than ${maxDepth} levels`, {
        hint: "flatten the document, or leave the file out of the input",
      });
    }
    stack.push(kind);
    visitor.enter(kind, index);
    index++;
    expect = kind === "object" ? Expect.KeyOrClose : Expect.ValueOrClose;
  };
  const close = (): void => {
    stack.pop();
    visitor.leave();
    index++;
    afterValue();
  };

  while (index < text.length) {
    const code = text.charCodeAt(index);
    if (isWhiteSpace(code)) {
      index++;
      continue;
    }
    const top = stack[stack.length - 1];
    switch (expect) {
      case Expect.ValueOrClose:
      case Expect.Value:
        if (expect === Expect.ValueOrClose && code === 0x5d) {
          close();
        } else if (code === 0x7b) {
          open("object");
        } else if (code === 0x5b) {
          open("array");
        } else {
          const token = code === 0x22 ? scanString(text, index) : scanBareToken(text, index);
          visitor.scalar(token);
          index = token.end;
          afterValue();
        }
        break;
      case Expect.KeyOrClose:
      case Expect.Key:
        if (expect === Expect.KeyOrClose && code === 0x7d) {
          close();
        } else if (code === 0x22) {
          const token = scanString(text, index);
          visitor.key(token);
          index = token.end;
          expect = Expect.Colon;
        } else {
          throw new JsonSyntaxError("expected a member name", index);
        }
        break;
      case Expect.Colon:
        if (code !== 0x3a) throw new JsonSyntaxError("expected ':'", index);
        index++;
        expect = Expect.Value;
        break;
      case Expect.CommaOrClose:
        if (code === 0x2c) {
          index++;
          expect = top === "object" ? Expect.Key : Expect.Value;
        } else if ((code === 0x7d && top === "object") || (code === 0x5d && top === "array")) {
          close();
        } else {
          throw new JsonSyntaxError("expected ',' or the end of the container", index);
        }
        break;
      case Expect.End:
        throw new JsonSyntaxError("unexpected text after the JSON value", index);
    }
  }
  if (expect !== Expect.End) throw new JsonSyntaxError("unexpected end of the file", text.length);
}
