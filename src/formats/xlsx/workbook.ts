/**
 * Workbook facts read before any part is rewritten: the kind of every
 * part, sheet names, the date system, which styles show dates, the shared
 * string table, the parts left out, and the names in author fields.
 */
import { QuarantineReason } from "../../deid/apply.js";
import { isDateFormat } from "./dates.js";
import {
  classifyParts,
  parseContentTypes,
  parseRelationships,
  relationshipSource,
  resolveTarget,
  type Part,
} from "./package.js";
import { EMPTY_TABLE, loadSharedStrings, type SharedStringTable } from "./shared-strings.js";
import { attribute, localName, tokenText, Utf8PartDecoder, XmlTokenizer, type XmlToken } from "./xml.js";
import type { PackageEntry, ZipReader } from "./zip.js";

/** Parts other than sheets and the shared string table are read whole; this caps each of them. */
export const MAX_WHOLE_PART_BYTES = 64 * 1024 * 1024;

export interface WorkbookInfo {
  parts: Part[];
  /** Sheet names in workbook order. */
  sheetNames: string[];
  /** The workbook counts serial dates from 1904-01-01 instead of 1899-12-30. */
  date1904: boolean;
  dateStyles: Set<number>;
  strings: SharedStringTable;
  /** Names and account IDs found in author fields (notes, threaded comments, document properties). */
  authors: string[];
  /** Keys of parts left out of the output. */
  droppedParts: Set<string>;
  /** IDs of relationships to parts left out, by the key of their source part. */
  droppedRelationships: Map<string, Set<string>>;
}

/** Streams the tokens of one member to `handle`. */
export async function forEachToken(reader: ZipReader, entry: PackageEntry, handle: (tokens: XmlToken[]) => Promise<void> | void): Promise<void> {
  const decoder = new Utf8PartDecoder();
  const tokenizer = new XmlTokenizer();
  for await (const chunk of reader.chunks(entry)) await handle(tokenizer.push(decoder.decode(chunk)));
  await handle(tokenizer.push(decoder.decode(new Uint8Array(0), true)));
  await handle(tokenizer.finish());
}

export async function readTokens(reader: ZipReader, entry: PackageEntry): Promise<XmlToken[]> {
  const bytes = await reader.readAll(entry, MAX_WHOLE_PART_BYTES);
  const decoder = new Utf8PartDecoder();
  const tokenizer = new XmlTokenizer();
  return [...tokenizer.push(decoder.decode(bytes, true)), ...tokenizer.finish()];
}

/** Returns the trimmed, non-empty text of every element whose local name is in `locals`. */
function collectTexts(tokens: readonly XmlToken[], locals: ReadonlySet<string>): string[] {
  const texts: string[] = [];
  const stack: string[] = [];
  for (const token of tokens) {
    if (token.kind === "open" && !token.selfClosing) stack.push(localName(token.name));
    else if (token.kind === "close") stack.pop();
    else if ((token.kind === "text" || token.kind === "cdata") && locals.has(stack.at(-1) ?? "")) texts.push(tokenText(token));
  }
  return texts.map((text) => text.trim()).filter((text) => text.length > 0);
}

function readStyles(tokens: readonly XmlToken[]): Set<number> {
  const customFormats = new Map<number, string>();
  const dateStyles = new Set<number>();
  let inCellXfs = false;
  let index = 0;
  for (const token of tokens) {
    if (token.kind === "close" && localName(token.name) === "cellXfs") inCellXfs = false;
    if (token.kind !== "open") continue;
    const local = localName(token.name);
    if (local === "numFmt") customFormats.set(Number(attribute(token, "numFmtId")), attribute(token, "formatCode") ?? "");
    else if (local === "cellXfs") inCellXfs = !token.selfClosing;
    else if (local === "xf" && inCellXfs) {
      if (isDateFormat(Number(attribute(token, "numFmtId") ?? "0"), customFormats)) dateStyles.add(index);
      index++;
    }
  }
  return dateStyles;
}

function readWorkbook(tokens: readonly XmlToken[]): { sheetNames: string[]; date1904: boolean } {
  const sheetNames: string[] = [];
  let date1904 = false;
  for (const token of tokens) {
    if (token.kind !== "open") continue;
    const local = localName(token.name);
    if (local === "sheet") sheetNames.push(attribute(token, "name") ?? "");
    if (local === "workbookPr") date1904 = ["1", "true"].includes(attribute(token, "date1904") ?? "");
  }
  return { sheetNames, date1904 };
}

/** Returns the keys of the document thumbnails that the package relationships name. */
async function thumbnails(reader: ZipReader): Promise<Set<string>> {
  const keys = new Set<string>();
  const packageRelationships = reader.entries.find((entry) => entry.name.toLowerCase() === "_rels/.rels");
  if (!packageRelationships) return keys;
  for (const relationship of parseRelationships(await readTokens(reader, packageRelationships))) {
    if (!relationship.external && relationship.type.endsWith("/metadata/thumbnail")) keys.add(resolveTarget("", relationship.target));
  }
  return keys;
}

/** Reads everything the rewrite of sheets and other parts depends on. */
export async function readWorkbookInfo(reader: ZipReader): Promise<WorkbookInfo> {
  const contentTypesEntry = reader.entries.find((entry) => entry.name.toLowerCase() === "[content_types].xml");
  if (!contentTypesEntry) throw new QuarantineReason("XLSX_INVALID", "the package has no [Content_Types].xml; it is not an OOXML workbook");
  const parts = classifyParts(reader.entries, parseContentTypes(await readTokens(reader, contentTypesEntry)), await thumbnails(reader));
  const ofKind = (kind: Part["kind"]): Part[] => parts.filter((part) => part.kind === kind);

  const workbook = readWorkbook(await readTokens(reader, ofKind("workbook")[0].entry));
  const styles = ofKind("styles")[0];
  const dateStyles = styles ? readStyles(await readTokens(reader, styles.entry)) : new Set<number>();
  const sharedStrings = ofKind("shared-strings")[0];
  const strings = sharedStrings ? await loadSharedStrings(reader.chunks(sharedStrings.entry)) : EMPTY_TABLE;

  const droppedParts = new Set(ofKind("left-out").map((part) => part.key));
  const droppedRelationships = new Map<string, Set<string>>();
  for (const part of ofKind("relationships")) {
    const source = relationshipSource(part.key);
    const ids = new Set<string>();
    for (const relationship of parseRelationships(await readTokens(reader, part.entry))) {
      if (!relationship.external && droppedParts.has(resolveTarget(source, relationship.target))) ids.add(relationship.id);
    }
    if (ids.size) droppedRelationships.set(source, ids);
  }

  const authors: string[] = [];
  for (const part of ofKind("comments")) authors.push(...collectTexts(await readTokens(reader, part.entry), new Set(["author"])));
  for (const part of [...ofKind("core-properties"), ...ofKind("app-properties")]) {
    authors.push(...collectTexts(await readTokens(reader, part.entry), new Set(["creator", "lastModifiedBy", "Manager"])));
  }
  for (const part of ofKind("persons")) {
    for (const token of await readTokens(reader, part.entry)) {
      if (token.kind !== "open" || localName(token.name) !== "person") continue;
      for (const name of ["displayName", "userId"]) {
        const value = attribute(token, name)?.trim();
        if (value) authors.push(value);
      }
    }
  }
  return { parts, ...workbook, dateStyles, strings, authors: [...new Set(authors)], droppedParts, droppedRelationships };
}
