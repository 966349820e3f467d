/**
 * Excel workbooks (.xlsx, .xlsm, .xltx, .xltm), de-identified through the
 * zip package and the XML of each part, never through a table library, so
 * that formatting, formulas and everything non-identifying stay as they
 * were. package.ts lists which parts are rewritten, copied, replaced, left
 * out or make the workbook quarantined.
 *
 * Memory: sheets are streamed one row at a time; the shared string table's
 * plain text is held while sheets are read (at most
 * MAX_SHARED_STRING_CHARACTERS), and other parts are read whole (each at
 * most MAX_WHOLE_PART_BYTES).
 */
import { open, rm } from "node:fs/promises";

import { QuarantineReason } from "../../deid/apply.js";
import { isXlsxFile } from "../detect.js";
import type { FormatHandler, FormatWriteResult, LearnContext, WriteContext } from "../types.js";
import { FormulaRewriter, SheetNames } from "./formula.js";
import { relationshipSource, RelationshipsTransform, type Part } from "./package.js";
import {
  AppPropertiesTransform,
  CommentsTransform,
  ContentTypesTransform,
  CorePropertiesTransform,
  CustomPropertiesTransform,
  dateShiftFor,
  DrawingTransform,
  ExternalLinkTransform,
  OpaqueTransform,
  PersonsTransform,
  StylesTransform,
  TableTransform,
  ThreadedCommentsTransform,
  VmlTransform,
  WorkbookTransform,
} from "./parts.js";
import { Scrubber } from "./scrub.js";
import { SharedStringsTransform, SharedStringUsage } from "./shared-strings.js";
import { SheetLearner, SheetTransform } from "./sheet.js";
import type { PartEnvironment, PartTransform } from "./transform.js";
import { tokenText } from "./xml.js";
import { forEachToken, readTokens, readWorkbookInfo, type WorkbookInfo } from "./workbook.js";
import { ZipReader, ZipWriter } from "./zip.js";

/** Blank 1x1 images written in place of every picture, by content type (made with Pillow 9.4). */
const PLACEHOLDER_IMAGES: Readonly<Record<string, Buffer>> = {
  "image/png": Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4//8/AwAI/AL+eMSysAAAAABJRU5ErkJggg==", "base64"),
  "image/gif": Buffer.from("R0lGODdhAQABAIEAAP///wAAAAAAAAAAACwAAAAAAQABAAAIBAABBAQAOw==", "base64"),
  "image/jpeg": Buffer.from(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/wAALCAABAAEBAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APQK/9k=",
    "base64",
  ),
};

/** The first bytes of an OLE compound file: a password-encrypted workbook, or a legacy .xls renamed. */
const OLE_SIGNATURE = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);

async function openWorkbook(path: string): Promise<ZipReader> {
  const handle = await open(path, "r");
  const head = Buffer.alloc(8);
  try {
    await handle.read(head, 0, 8, 0);
  } finally {
    await handle.close();
  }
  if (head.equals(OLE_SIGNATURE)) {
    throw new QuarantineReason(
      "XLSX_ENCRYPTED",
      "the workbook is encrypted with a password or is a legacy .xls file; save it unencrypted as .xlsx and run again",
    );
  }
  return ZipReader.open(path);
}

async function learnWorkbook(path: string, context: LearnContext): Promise<void> {
  const reader = await openWorkbook(path);
  try {
    const info = await readWorkbookInfo(reader);
    const settings = { strings: info.strings, dateStyles: info.dateStyles, date1904: info.date1904 };
    for (const part of info.parts.filter((item) => item.kind === "worksheet")) {
      const learner = new SheetLearner(settings, context.registry);
      await forEachToken(reader, part.entry, (tokens) => tokens.forEach((token) => learner.push(token)));
    }
    // Whole names only, because author fields hold defaults such as "Microsoft Office User".
    for (const author of info.authors) context.registry.addTerm(author, "staff-name");
    for (const part of info.parts.filter((item) => item.kind === "app-properties")) {
      let inCompany = false;
      for (const token of await readTokens(reader, part.entry)) {
        if (token.kind === "open") inCompany = token.name.endsWith("Company") && !token.selfClosing;
        else if (token.kind === "text" && inCompany && token.raw.trim()) context.registry.addTerm(tokenText(token), "institution");
      }
    }
  } finally {
    reader.close();
  }
}

function transformFor(
  part: Part,
  env: PartEnvironment,
  info: WorkbookInfo,
  sheets: SheetNames,
  usage: SharedStringUsage,
  context: WriteContext,
): PartTransform {
  const dates = dateShiftFor(context.shiftDates, context.patient);
  switch (part.kind) {
    case "content-types":
      return new ContentTypesTransform(env, info.droppedParts);
    case "relationships":
      return new RelationshipsTransform(env, info.droppedRelationships.get(relationshipSource(part.key)) ?? new Set());
    case "workbook":
      return new WorkbookTransform(env, sheets);
    case "worksheet":
      return new SheetTransform(env, info, context, usage);
    case "shared-strings":
      return new SharedStringsTransform(env, usage, context);
    case "styles":
      return new StylesTransform(env);
    case "core-properties":
      return new CorePropertiesTransform(env, dates);
    case "app-properties":
      return new AppPropertiesTransform(env, sheets);
    case "custom-properties":
      return new CustomPropertiesTransform(env, dates);
    case "comments":
      return new CommentsTransform(env);
    case "threaded-comments":
      return new ThreadedCommentsTransform(env, dates);
    case "persons":
      return new PersonsTransform(env);
    case "drawing":
      return new DrawingTransform(env);
    case "vml-drawing":
      return new VmlTransform(env);
    case "table":
      return new TableTransform(env);
    case "external-link":
      return new ExternalLinkTransform(env, sheets);
    case "opaque":
    case "image":
    case "left-out":
      return new OpaqueTransform(env);
  }
}

async function writeParts(reader: ZipReader, writer: ZipWriter, info: WorkbookInfo, context: WriteContext): Promise<number> {
  const scrubber = new Scrubber(context.cleaner, info.authors);
  // Part names are kept, so one that contains an identifier (xl/media/Doe_Jane.png) cannot be written.
  for (const part of info.parts) scrubber.checkOpaque(part.entry.name);
  const sheets = new SheetNames(info.sheetNames, scrubber);
  const formulas = new FormulaRewriter(scrubber, sheets);
  const usage = new SharedStringUsage(info.strings.size);
  // The shared string table is written last, once the sheets have recorded how they use it.
  const ordered = [...info.parts.filter((part) => part.kind !== "shared-strings"), ...info.parts.filter((part) => part.kind === "shared-strings")];
  for (const part of ordered) {
    if (part.kind === "left-out") {
      scrubber.replacements++;
      continue;
    }
    if (part.kind === "image") {
      scrubber.replacements++;
      writer.addBuffer(part.entry.name, PLACEHOLDER_IMAGES[part.contentType === "image/jpg" ? "image/jpeg" : part.contentType]);
      continue;
    }
    const env: PartEnvironment = {
      scrubber,
      formulas,
      droppedRelationships: info.droppedRelationships.get(part.key) ?? new Set(),
    };
    const transform = transformFor(part, env, info, sheets, usage, context);
    const sink = writer.addStream(part.entry.name);
    await forEachToken(reader, part.entry, async (tokens) => {
      let out = "";
      for (const token of tokens) out += transform.push(token);
      await sink.write(out);
    });
    await sink.end();
  }
  return scrubber.replacements;
}

async function writeWorkbook(path: string, targetPath: string, context: WriteContext): Promise<FormatWriteResult> {
  const reader = await openWorkbook(path);
  try {
    const info = await readWorkbookInfo(reader);
    const writer = await ZipWriter.create(targetPath);
    try {
      const replacements = await writeParts(reader, writer, info, context);
      await writer.finish();
      return { replacements };
    } catch (error) {
      await writer.abort();
      await rm(targetPath, { force: true });
      throw error;
    }
  } finally {
    reader.close();
  }
}

/** What the user can do about each reason a workbook is quarantined for, added to its message. */
const ADVICE: Readonly<Record<string, string>> = {
  XLSX_INVALID: "open and save the workbook again in a spreadsheet program, or leave it out of the input",
  XLSX_UNKNOWN_PART: "remove that content in a spreadsheet program and save again, or leave the workbook out of the input",
  XLSX_IDENTIFIER_IN_STRUCTURE: "rename or remove it in a spreadsheet program and run again, or leave the workbook out of the input",
};

async function withAdvice<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof QuarantineReason) || ADVICE[error.reasonCode] === undefined) throw error;
    throw new QuarantineReason(error.reasonCode, `${error.message}; ${ADVICE[error.reasonCode]}`);
  }
}

export const xlsxFormat: FormatHandler = {
  name: "xlsx",
  matches: isXlsxFile,
  learn: (path, context) => withAdvice(() => learnWorkbook(path, context)),
  write: (path, targetPath, context) => withAdvice(() => writeWorkbook(path, targetPath, context)),
};
