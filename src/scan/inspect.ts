/**
 * The second look a scan takes at each entry: its file type, the categories
 * of learnt identifiers in its path and content, and its DICOM facts.
 */
import { closeSync, readSync } from "node:fs";
import { basename } from "node:path";

import type { IdentifierCategory } from "../deid/identifiers.js";
import { looksLikeDicom } from "../dicom/reader.js";
import { openRegularFile } from "../dicom/source.js";
import type { FormatSet } from "../formats/index.js";
import type { DicomPassOptions } from "../run/dicom-file.js";
import type { TreeEntry } from "../tree/walk.js";
import type { IdentifierMatcher } from "../verify/matcher.js";
import { fileViewsUnder } from "../verify/views.js";
import { readDicomFacts, type DicomFacts } from "./dicom-facts.js";

export interface InspectContext {
  /** Finds the identifiers learnt by the first pass. */
  matcher: IdentifierMatcher;
  formats: FormatSet;
  passOptions: DicomPassOptions;
  /** Folder in which each file's extracted members get a private folder of their own. */
  scratchParent: string;
}

export interface EntryFacts {
  /** "dicom", a format name, "unsupported", "symlink", "special" or "unreadable". */
  type: string;
  /** Categories of learnt identifiers found in the entry's path or content. */
  categories: Set<IdentifierCategory>;
  /** False for links and special files, and when a file could not be read to its end. */
  contentSearched: boolean;
  /** Present for DICOM files whose header could be parsed. */
  dicom?: DicomFacts;
}

const HEAD_BYTES = 256;

function readHead(path: string): Buffer {
  const fd = openRegularFile(path);
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    return buffer.subarray(0, readSync(fd, buffer, 0, HEAD_BYTES, 0));
  } finally {
    closeSync(fd);
  }
}

/** Returns the file type by the rule TaskRunner uses: DICOM by content first, then the first format that takes it. */
function typeOf(entry: TreeEntry, formats: FormatSet): string {
  let head: Buffer;
  try {
    head = readHead(entry.path);
  } catch {
    return "unreadable";
  }
  if (looksLikeDicom(head)) return "dicom";
  return formats.find(entry.relativePath, head)?.name ?? "unsupported";
}

async function searchContent(entry: TreeEntry, context: InspectContext, categories: Set<IdentifierCategory>): Promise<boolean> {
  try {
    for await (const view of fileViewsUnder(context.scratchParent, entry.path, basename(entry.path))) {
      for (const match of context.matcher.find(view.text)) categories.add(match.category as IdentifierCategory);
    }
    return true;
  } catch {
    // A damaged archive or a cap reached: what was read before still counts.
    return false;
  }
}

/** Inspects one entry; `learntKind` is the kind the learn pass gave it, when it succeeded. */
export async function inspectEntry(entry: TreeEntry, learntKind: string | undefined, context: InspectContext): Promise<EntryFacts> {
  const categories = new Set<IdentifierCategory>();
  for (const match of context.matcher.find(entry.relativePath)) categories.add(match.category as IdentifierCategory);
  if (entry.kind !== "file") return { type: entry.kind, categories, contentSearched: false };

  const type = learntKind ?? typeOf(entry, context.formats);
  const contentSearched = type !== "unreadable" && (await searchContent(entry, context, categories));
  let dicom: DicomFacts | undefined;
  if (type === "dicom") {
    try {
      dicom = await readDicomFacts(entry.path, context.passOptions.limits, context.passOptions.maxInflatedBytes);
    } catch {
      dicom = undefined;
    }
  }
  return { type, categories, contentSearched, dicom };
}
