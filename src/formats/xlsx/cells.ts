/**
 * Cells of a sheet row (ECMA-376 Part 1, 18.3.1.4): parsing a buffered
 * <row> into its <c> elements, reading a cell's value and writing a cell
 * back with a new value.
 */
import { QuarantineReason } from "../../deid/apply.js";
import type { SharedStringTable } from "./shared-strings.js";
import { richPlainText } from "./scrub.js";
import { escapeText, localName, prefixOf, serializeOpen, tokenText, type XmlOpenToken, type XmlToken } from "./xml.js";

/** A direct child element of a cell: its local name and the indices of its first and last token. */
interface Child {
  local: string;
  start: number;
  end: number;
}

export interface Cell {
  /** Tokens from <c> to </c>. */
  tokens: XmlToken[];
  /** 1-based column number. */
  column: number;
  /** The t attribute; "n" (number) when absent. */
  type: string;
  /** Index into cellXfs (the s attribute). */
  style: number;
  children: Child[];
}

export interface Row {
  /** Tokens in order: the row's start tag, cells and other tokens, its end tag. */
  items: Array<XmlToken | Cell>;
  cells: Cell[];
}

export function isCell(item: XmlToken | Cell): item is Cell {
  return "column" in item;
}

function invalidCell(): QuarantineReason {
  return new QuarantineReason("XLSX_INVALID", "a cell of the workbook has an invalid reference or value");
}

/** Returns the column number of an A1 reference ("C7" gives 3). */
export function columnOf(reference: string): number {
  const match = /^\$?([A-Z]{1,3})\$?\d*$/i.exec(reference);
  if (!match) throw invalidCell();
  let column = 0;
  for (const letter of match[1].toUpperCase()) column = column * 26 + (letter.charCodeAt(0) - 64);
  return column;
}

export function cellAttribute(open: XmlOpenToken, local: string): string | undefined {
  return open.attributes.find((item) => localName(item.name) === local)?.value;
}

/** Splits the tokens of a <row> element into its cells. */
export function parseRow(tokens: readonly XmlToken[]): Row {
  const items: Array<XmlToken | Cell> = [];
  const cells: Cell[] = [];
  let column = 0;
  let index = 0;
  while (index < tokens.length) {
    const token = tokens[index];
    if (index === 0 || token.kind !== "open" || localName(token.name) !== "c") {
      items.push(token);
      index++;
      continue;
    }
    let end = index;
    if (!token.selfClosing) {
      for (let depth = 0; end < tokens.length; end++) {
        const inner = tokens[end];
        if (inner.kind === "open" && !inner.selfClosing) depth++;
        else if (inner.kind === "close" && --depth === 0) break;
      }
    }
    const reference = cellAttribute(token, "r");
    column = reference === undefined ? column + 1 : columnOf(reference);
    const cell = makeCell(tokens.slice(index, end + 1), column);
    items.push(cell);
    cells.push(cell);
    index = end + 1;
  }
  return { items, cells };
}

function makeCell(tokens: XmlToken[], column: number): Cell {
  const open = tokens[0] as XmlOpenToken;
  const children: Child[] = [];
  let depth = 0;
  for (let index = 1; index < tokens.length - 1; index++) {
    const token = tokens[index];
    if (token.kind === "open") {
      if (depth === 0) children.push({ local: localName(token.name), start: index, end: index });
      if (!token.selfClosing) depth++;
    } else if (token.kind === "close") {
      depth--;
      if (depth === 0) children.at(-1)!.end = index;
    }
  }
  const style = Number(cellAttribute(open, "s") ?? "0");
  if (!Number.isInteger(style) || style < 0) throw invalidCell();
  return { tokens, column, type: cellAttribute(open, "t") ?? "n", style, children };
}

export function child(cell: Cell, local: string): Child | undefined {
  return cell.children.find((item) => item.local === local);
}

/** Returns the text inside a simple child element such as <v> or <f>, and the index of its text token. */
export function childText(cell: Cell, local: string): { text: string; index: number | undefined } | undefined {
  const found = child(cell, local);
  if (!found) return undefined;
  const inner = cell.tokens.slice(found.start + 1, found.end);
  const index = inner.findIndex((token) => token.kind === "text" || token.kind === "cdata");
  return { text: inner.map(tokenText).join(""), index: index < 0 ? undefined : found.start + 1 + index };
}

export function isNumberType(cell: Cell): boolean {
  return cell.type === "n";
}

export function isStringType(cell: Cell): boolean {
  return cell.type === "s" || cell.type === "inlineStr" || cell.type === "str";
}

/** Returns the value a cell shows (the shared or inline string, or the text of <v>), or undefined when it has none. */
export function cellValue(cell: Cell, strings: SharedStringTable): string | undefined {
  if (cell.type === "inlineStr") {
    const inline = child(cell, "is");
    return inline ? richPlainText(cell.tokens.slice(inline.start, inline.end + 1)) : undefined;
  }
  const value = childText(cell, "v");
  if (!value) return undefined;
  if (cell.type !== "s") return value.text;
  const index = Number(value.text);
  const text = Number.isInteger(index) ? strings.get(index) : undefined;
  if (text === undefined) {
    throw new QuarantineReason("XLSX_INVALID", "a cell of the workbook points past the end of the shared string table");
  }
  return text;
}

/** Writes an integer stored in exponent form ("1.2345678E7") in digits, and returns other numbers unchanged. */
export function canonicalNumber(text: string): string {
  if (!/e/i.test(text)) return text;
  const value = Number(text);
  return Number.isSafeInteger(value) ? String(value) : text;
}

function serializeTokens(tokens: readonly XmlToken[]): string {
  return tokens.map((token) => token.raw).join("");
}

function cellStart(cell: Cell, type: string | undefined): string {
  const open = cell.tokens[0] as XmlOpenToken;
  const attributes = open.attributes.filter((item) => localName(item.name) !== "t");
  if (type !== undefined) attributes.push({ name: "t", value: type });
  return serializeOpen(open.name, attributes, false);
}

function cellEnd(cell: Cell): string {
  return `</${(cell.tokens[0] as XmlOpenToken).name}>`;
}

/** Serializes the cell's children other than its value (<v>, <is>): its formula, and the rest in order. */
function keptChildren(cell: Cell, tokens: readonly XmlToken[]): { formula: string; rest: string } {
  let formula = "";
  let rest = "";
  for (const item of cell.children) {
    const text = serializeTokens(tokens.slice(item.start, item.end + 1));
    if (item.local === "f") formula += text;
    else if (item.local !== "v" && item.local !== "is") rest += text;
  }
  return { formula, rest };
}

/**
 * Writes the cell with a string value. A cell with a formula becomes a
 * formula string result (t="str"); any other becomes an inline string, so
 * that the shared string table, which other cells may use, is not touched.
 */
export function stringCell(cell: Cell, tokens: readonly XmlToken[], text: string): string {
  const { formula, rest } = keptChildren(cell, tokens);
  const prefix = prefixOf((cell.tokens[0] as XmlOpenToken).name);
  const escaped = escapeText(text);
  if (formula) return `${cellStart(cell, "str")}${formula}<${prefix}v>${escaped}</${prefix}v>${rest}${cellEnd(cell)}`;
  const space = /^\s|\s$/.test(text) ? ' xml:space="preserve"' : "";
  return `${cellStart(cell, "inlineStr")}<${prefix}is><${prefix}t${space}>${escaped}</${prefix}t></${prefix}is>${rest}${cellEnd(cell)}`;
}

/** Writes the numeric cell with a new number. */
export function numberCell(cell: Cell, tokens: readonly XmlToken[], number: string): string {
  const { formula, rest } = keptChildren(cell, tokens);
  const prefix = prefixOf((cell.tokens[0] as XmlOpenToken).name);
  return `${cellStart(cell, undefined)}${formula}<${prefix}v>${number}</${prefix}v>${rest}${cellEnd(cell)}`;
}

/** Writes the cell without a value, keeping its style and formula. */
export function emptyCell(cell: Cell, tokens: readonly XmlToken[]): string {
  const { formula, rest } = keptChildren(cell, tokens);
  return `${cellStart(cell, undefined)}${formula}${rest}${cellEnd(cell)}`;
}

export function serializeCell(tokens: readonly XmlToken[]): string {
  return serializeTokens(tokens);
}
