/**
 * A streaming XML tokenizer for the parts of an OOXML package. It keeps the
 * raw text of every token, so a part whose tokens are not changed is written
 * back byte for byte. It reads UTF-8 only, rejects document type
 * declarations (OOXML has none, and they allow entity expansion attacks) and
 * checks that start and end tags match.
 */
import { LimitError } from "../../errors.js";
import { QuarantineReason } from "../../deid/apply.js";

/**
 * Characters one token may have. Excel caps a cell at 32,767 characters and
 * a formula at 8,192, so only a damaged or crafted part comes near it. The
 * tokenizer keeps at most one incomplete token in memory.
 */
export const MAX_TOKEN_CHARACTERS = 16 * 1024 * 1024;

/** Elements nest at most this deep; OOXML parts nest fewer than 20 levels. */
export const MAX_XML_DEPTH = 256;

export interface XmlAttribute {
  /** Qualified name as written, e.g. "r:id". */
  name: string;
  /** Value with entity and character references decoded. */
  value: string;
}

export type XmlToken =
  | { kind: "text"; raw: string }
  | { kind: "cdata"; raw: string }
  | { kind: "open"; raw: string; name: string; attributes: XmlAttribute[]; selfClosing: boolean }
  | { kind: "close"; raw: string; name: string }
  | { kind: "markup"; raw: string };

export type XmlOpenToken = Extract<XmlToken, { kind: "open" }>;

export function invalidXml(problem: string): QuarantineReason {
  return new QuarantineReason("XLSX_INVALID", `a part of the workbook is not well-formed XML: ${problem}`);
}

/** Returns the part of a qualified name after its prefix: "x:c" gives "c". */
export function localName(name: string): string {
  const colon = name.indexOf(":");
  return colon < 0 ? name : name.slice(colon + 1);
}

/** Returns the prefix of a qualified name with its colon ("x:" for "x:c"), or "". */
export function prefixOf(name: string): string {
  const colon = name.indexOf(":");
  return colon < 0 ? "" : name.slice(0, colon + 1);
}

const NAMED_ENTITIES: Readonly<Record<string, string>> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/** Decodes the five predefined entities and character references; anything else is invalid. */
export function unescapeXml(raw: string): string {
  if (!raw.includes("&")) return raw;
  return raw.replace(/&([^;&<]{0,12});?/g, (match, name: string) => {
    if (!match.endsWith(";")) throw invalidXml("an ampersand that starts no reference");
    const named = NAMED_ENTITIES[name];
    if (named !== undefined) return named;
    const code = /^#x[0-9a-fA-F]+$/.test(name) ? parseInt(name.slice(2), 16) : /^#[0-9]+$/.test(name) ? Number(name.slice(1)) : NaN;
    if (!Number.isInteger(code) || code > 0x10ffff) throw invalidXml("an unknown entity reference");
    return String.fromCodePoint(code);
  });
}

/** Escapes character data; a carriage return is written as a reference, because parsers turn CR LF into LF. */
export function escapeText(text: string): string {
  return text.replace(/[&<>\r]/g, (character) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;" })[character] ?? character);
}

/** Escapes an attribute value for double quotes; tabs and line breaks are written as references, which survive attribute normalisation. */
export function escapeAttribute(text: string): string {
  return text.replace(
    /[&<>"\t\n\r]/g,
    (character) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;" })[character] ?? character,
  );
}

/** Returns the text content of a text or CDATA token. */
export function tokenText(token: XmlToken): string {
  if (token.kind === "text") return unescapeXml(token.raw);
  if (token.kind === "cdata") return token.raw.slice(9, -3);
  return "";
}

export function attribute(token: XmlOpenToken, local: string): string | undefined {
  return token.attributes.find((item) => localName(item.name) === local)?.value;
}

/** Writes a start tag from its name and attributes, as `<name a="v">` or `<name a="v"/>`. */
export function serializeOpen(name: string, attributes: readonly XmlAttribute[], selfClosing: boolean): string {
  const parts = attributes.map((item) => ` ${item.name}="${escapeAttribute(item.value)}"`);
  return `<${name}${parts.join("")}${selfClosing ? "/>" : ">"}`;
}

/** Returns a copy of `token` with new attributes and its raw text rebuilt. */
export function withAttributes(token: XmlOpenToken, attributes: XmlAttribute[]): XmlOpenToken {
  return { ...token, attributes, raw: serializeOpen(token.name, attributes, token.selfClosing) };
}

export function textToken(text: string): XmlToken {
  return { kind: "text", raw: escapeText(text) };
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

function isNameEnd(code: number): boolean {
  return isSpace(code) || code === 0x2f /* / */ || code === 0x3e /* > */ || code === 0x3d /* = */;
}

/** Parses the start tag in `raw` ("<name attr='v' ...>" or ".../>"); throws when it is malformed. */
function parseStartTag(raw: string): XmlOpenToken {
  const end = raw.length - 1;
  const selfClosing = raw.charCodeAt(end - 1) === 0x2f;
  const stop = selfClosing ? end - 1 : end;
  let index = 1;
  while (index < stop && !isNameEnd(raw.charCodeAt(index))) index++;
  const name = raw.slice(1, index);
  if (!name) throw invalidXml("a start tag without a name");
  const attributes: XmlAttribute[] = [];
  for (;;) {
    const before = index;
    while (index < stop && isSpace(raw.charCodeAt(index))) index++;
    if (index >= stop) break;
    if (index === before) throw invalidXml("attributes without space between them");
    const nameStart = index;
    while (index < stop && !isNameEnd(raw.charCodeAt(index))) index++;
    const attributeName = raw.slice(nameStart, index);
    while (index < stop && isSpace(raw.charCodeAt(index))) index++;
    if (!attributeName || raw[index] !== "=") throw invalidXml("an attribute without a value");
    index++;
    while (index < stop && isSpace(raw.charCodeAt(index))) index++;
    const quote = raw[index];
    if (quote !== '"' && quote !== "'") throw invalidXml("an attribute value without quotes");
    const close = raw.indexOf(quote, index + 1);
    if (close < 0 || close >= stop) throw invalidXml("an attribute value without its closing quote");
    const valueRaw = raw.slice(index + 1, close);
    if (valueRaw.includes("<")) throw invalidXml("a '<' inside an attribute value");
    // Attribute value normalisation (XML 1.0 section 3.3.3): literal white space becomes a space.
    const value = unescapeXml(valueRaw.replace(/\r\n|[\t\n\r]/g, " "));
    if (attributes.some((item) => item.name === attributeName)) throw invalidXml("an attribute given twice");
    attributes.push({ name: attributeName, value });
    index = close + 1;
  }
  return { kind: "open", raw, name, attributes, selfClosing };
}

/** Returns the index of the '>' that ends the tag at `start`, skipping quoted values, or -1 when the buffer ends first. */
function findTagEnd(buffer: string, start: number): number {
  let quote = 0;
  for (let index = start + 1; index < buffer.length; index++) {
    const code = buffer.charCodeAt(index);
    if (quote) {
      if (code === quote) quote = 0;
    } else if (code === 0x22 || code === 0x27) {
      quote = code;
    } else if (code === 0x3e) {
      return index;
    }
  }
  return -1;
}

/**
 * Splits XML text, given in pieces, into tokens. Each call to `push`
 * returns the tokens completed so far; `finish` returns the rest and checks
 * that the document is complete.
 */
export class XmlTokenizer {
  private buffer = "";
  private readonly open: string[] = [];
  private rootSeen = false;

  push(text: string): XmlToken[] {
    this.buffer += text;
    return this.drain(false);
  }

  finish(): XmlToken[] {
    const tokens = this.drain(true);
    if (this.buffer.length) throw invalidXml("the part ends inside a tag");
    if (this.open.length) throw invalidXml("the part ends before all elements are closed");
    if (!this.rootSeen) throw invalidXml("the part has no root element");
    return tokens;
  }

  private drain(final: boolean): XmlToken[] {
    const tokens: XmlToken[] = [];
    let position = 0;
    const buffer = this.buffer;
    while (position < buffer.length) {
      const token = this.next(buffer, position, final);
      if (!token) break;
      tokens.push(token);
      position += token.raw.length;
    }
    this.buffer = buffer.slice(position);
    if (this.buffer.length > MAX_TOKEN_CHARACTERS) {
      throw new LimitError(`an XML token in the workbook is longer than ${MAX_TOKEN_CHARACTERS} characters`, {
        hint: "the workbook is damaged or crafted; leave it out of the input",
      });
    }
    return tokens;
  }

  /** Returns the token at `start`, or undefined when it is not complete in the buffer yet. */
  private next(buffer: string, start: number, final: boolean): XmlToken | undefined {
    if (buffer.charCodeAt(start) !== 0x3c) {
      const end = buffer.indexOf("<", start);
      if (end < 0 && !final) return undefined;
      const raw = buffer.slice(start, end < 0 ? buffer.length : end);
      this.checkText(raw);
      return { kind: "text", raw };
    }
    // Wait for enough characters to tell "<![CDATA[" from "<!--" and a tag.
    if (buffer.length - start < 9 && !final) return undefined;
    const delimited = (opening: string, closing: string, kind: "cdata" | "markup"): XmlToken | undefined => {
      const end = buffer.indexOf(closing, start + opening.length);
      if (end < 0) {
        if (final) throw invalidXml("an unterminated comment, CDATA section or declaration");
        return undefined;
      }
      return { kind, raw: buffer.slice(start, end + closing.length) };
    };
    if (buffer.startsWith("<?", start)) return delimited("<?", "?>", "markup");
    if (buffer.startsWith("<!--", start)) return delimited("<!--", "-->", "markup");
    if (buffer.startsWith("<![CDATA[", start)) {
      if (!this.open.length) throw invalidXml("a CDATA section outside the root element");
      return delimited("<![CDATA[", "]]>", "cdata");
    }
    if (buffer.startsWith("<!", start)) throw invalidXml("a document type declaration, which OOXML does not allow");
    const end = findTagEnd(buffer, start);
    if (end < 0) {
      if (final) throw invalidXml("the part ends inside a tag");
      return undefined;
    }
    const raw = buffer.slice(start, end + 1);
    if (raw.startsWith("</")) {
      const name = raw.slice(2, -1).trim();
      if (this.open.pop() !== name) throw invalidXml("an end tag that does not match its start tag");
      return { kind: "close", raw, name };
    }
    const token = parseStartTag(raw);
    if (!this.open.length) {
      if (this.rootSeen) throw invalidXml("a second root element");
      this.rootSeen = true;
    }
    if (!token.selfClosing) {
      if (this.open.length >= MAX_XML_DEPTH) {
        throw new LimitError(`XML elements in the workbook nest deeper than ${MAX_XML_DEPTH} levels`, {
          hint: "the workbook is damaged or crafted; leave it out of the input",
        });
      }
      this.open.push(token.name);
    }
    return token;
  }

  private checkText(raw: string): void {
    if (!this.open.length) {
      // Outside the root only white space (and a byte order mark at the very start) may appear.
      if (!/^[\uFEFF]?[\s]*$/.test(raw)) throw invalidXml("text outside the root element");
      return;
    }
    if (raw.includes("&")) unescapeXml(raw);
  }
}

/**
 * Decodes UTF-8 bytes in pieces. A UTF-16 part, an encoding declaration
 * other than UTF-8 and invalid byte sequences are rejected. A byte order
 * mark is kept, so that it is written back.
 */
export class Utf8PartDecoder {
  private readonly decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  private first = true;

  decode(bytes: Uint8Array, final = false): string {
    if (this.first && bytes.length >= 2) {
      this.first = false;
      if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
        throw new QuarantineReason("XLSX_INVALID", "a part of the workbook is encoded in UTF-16, which deidkit does not read");
      }
    }
    let text: string;
    try {
      text = this.decoder.decode(bytes, { stream: !final });
    } catch {
      throw new QuarantineReason("XLSX_INVALID", "a part of the workbook is not valid UTF-8");
    }
    return text;
  }
}

/** Rejects an XML declaration that names an encoding other than UTF-8. */
export function checkDeclaration(token: XmlToken): void {
  if (token.kind !== "markup" || !token.raw.startsWith("<?xml ")) return;
  const encoding = /\sencoding\s*=\s*["']([^"']*)["']/.exec(token.raw)?.[1];
  if (encoding !== undefined && !/^utf-?8$/i.test(encoding)) {
    throw new QuarantineReason("XLSX_INVALID", "a part of the workbook declares an encoding other than UTF-8");
  }
}
