/**
 * The Open Packaging Conventions layer (ECMA-376 Part 2): which part is
 * what, judged by its content type in [Content_Types].xml, and how parts
 * refer to each other through relationship parts.
 *
 * Parts that deidkit de-identifies, or that contain no free text, are
 * handled. Any other part quarantines the whole workbook with
 * XLSX_UNKNOWN_PART, because its content cannot be checked. The allow list:
 *   rewritten: workbook, worksheets, chart sheets, shared strings, styles,
 *     core, extended and custom document properties, notes (comments),
 *     threaded comments, persons, drawings, chart shapes, VML drawings,
 *     charts, tables, external links, relationships, [Content_Types].xml;
 *   checked and copied (no free text): theme, calculation chain, cell
 *     metadata, chart styles and chart colours;
 *   replaced: PNG, JPEG and GIF pictures by a blank 1x1 image of the same
 *     type, since a picture may show anything;
 *   left out, together with their relationships: printer settings (binary
 *     DEVMODE records that name printers and computers), the document
 *     thumbnail (a picture of the first sheet) and pictures in other
 *     formats (EMF, WMF, SVG, TIFF, BMP);
 *   checked and copied as well: sensitivity label information.
 * Quarantined, among others: VBA projects, pivot tables and caches, data
 *   connections and query tables, embedded objects, ActiveX and form
 *   controls, custom XML data, pictures in cells (rich data), slicers,
 *   timelines.
 */
import { posix } from "node:path";

import { QuarantineReason } from "../../deid/apply.js";
import { PartTransform, type AttributeAction, type PartEnvironment } from "./transform.js";
import { attribute, localName, withAttributes, type XmlOpenToken, type XmlToken } from "./xml.js";
import type { PackageEntry } from "./zip.js";

export type PartKind =
  | "content-types"
  | "relationships"
  | "workbook"
  | "worksheet"
  | "shared-strings"
  | "styles"
  | "opaque"
  | "core-properties"
  | "app-properties"
  | "custom-properties"
  | "comments"
  | "threaded-comments"
  | "persons"
  | "drawing"
  | "vml-drawing"
  | "table"
  | "external-link"
  | "image"
  | "left-out";

const SML = "application/vnd.openxmlformats-officedocument.spreadsheetml.";
const OFFICE = "application/vnd.openxmlformats-officedocument.";

const KIND_BY_CONTENT_TYPE: Readonly<Record<string, PartKind>> = {
  [`${SML}sheet.main+xml`]: "workbook",
  [`${SML}template.main+xml`]: "workbook",
  "application/vnd.ms-excel.sheet.macroenabled.main+xml": "workbook",
  "application/vnd.ms-excel.template.macroenabled.main+xml": "workbook",
  [`${SML}worksheet+xml`]: "worksheet",
  [`${SML}chartsheet+xml`]: "worksheet",
  [`${SML}sharedstrings+xml`]: "shared-strings",
  [`${SML}styles+xml`]: "styles",
  [`${OFFICE}theme+xml`]: "opaque",
  [`${SML}calcchain+xml`]: "opaque",
  [`${SML}sheetmetadata+xml`]: "opaque",
  "application/vnd.ms-office.chartstyle+xml": "opaque",
  "application/vnd.ms-office.chartcolorstyle+xml": "opaque",
  [`${SML}comments+xml`]: "comments",
  "application/vnd.ms-excel.threadedcomments+xml": "threaded-comments",
  "application/vnd.ms-excel.person+xml": "persons",
  "application/vnd.openxmlformats-package.core-properties+xml": "core-properties",
  [`${OFFICE}extended-properties+xml`]: "app-properties",
  [`${OFFICE}custom-properties+xml`]: "custom-properties",
  [`${OFFICE}drawing+xml`]: "drawing",
  [`${OFFICE}drawingml.chartshapes+xml`]: "drawing",
  [`${OFFICE}drawingml.chart+xml`]: "drawing",
  [`${OFFICE}vmldrawing`]: "vml-drawing",
  [`${SML}table+xml`]: "table",
  [`${SML}externallink+xml`]: "external-link",
  "application/vnd.openxmlformats-package.relationships+xml": "relationships",
  "image/png": "image",
  "image/jpeg": "image",
  "image/jpg": "image",
  "image/gif": "image",
  [`${SML}printersettings`]: "left-out",
  "application/vnd.ms-office.classificationlabels+xml": "opaque",
};

/** Describes a part that is not on the allow list for the quarantine message, never by its name, which may identify someone. */
function describeUnknownPart(name: string, contentType: string | undefined): string {
  const type = contentType ?? "";
  if (/vbaproject|macrosheet|vbadata/.test(type)) return "a VBA macro project";
  if (/pivot/.test(type)) return "a pivot table or its cache";
  if (/connections|querytable/.test(type)) return "a data connection or query";
  if (name.startsWith("xl/embeddings/") || /oleobject|package$/.test(type)) return "an embedded object";
  if (name.startsWith("customxml/")) return "custom XML data";
  if (/activex|ctrlprops/.test(type)) return "a form or ActiveX control";
  if (!contentType) return "a member without a content type";
  return "a part deidkit does not know";
}

export interface Part {
  entry: PackageEntry;
  /** Part name in lower case without a leading "/", as relationships resolve to it. */
  key: string;
  kind: PartKind;
  contentType: string;
}

/** Reads [Content_Types].xml: content type by extension and by part name. */
export function parseContentTypes(tokens: readonly XmlToken[]): (partKey: string) => string | undefined {
  const byExtension = new Map<string, string>();
  const byPart = new Map<string, string>();
  for (const token of tokens) {
    if (token.kind !== "open") continue;
    const local = localName(token.name);
    const contentType = attribute(token, "ContentType")?.toLowerCase().trim();
    if (contentType === undefined) continue;
    if (local === "Default") byExtension.set((attribute(token, "Extension") ?? "").toLowerCase(), contentType);
    if (local === "Override") byPart.set((attribute(token, "PartName") ?? "").replace(/^\//, "").toLowerCase(), contentType);
  }
  // The extension is what follows the last dot of the last segment, so "_rels/.rels" has the extension "rels".
  const extensionOf = (key: string): string => {
    const name = key.slice(key.lastIndexOf("/") + 1);
    return name.includes(".") ? name.slice(name.lastIndexOf(".") + 1) : "";
  };
  return (key) => byPart.get(key) ?? byExtension.get(extensionOf(key));
}

/**
 * Gives each member its kind; throws XLSX_UNKNOWN_PART for the first member
 * off the allow list. Parts in `leftOut` (the thumbnail) and pictures other
 * than PNG, JPEG and GIF are left out whatever their content type.
 */
export function classifyParts(
  entries: readonly PackageEntry[],
  contentTypeOf: (key: string) => string | undefined,
  leftOut: ReadonlySet<string>,
): Part[] {
  const parts: Part[] = [];
  for (const entry of entries) {
    if (entry.name.endsWith("/")) continue;
    const key = entry.name.toLowerCase();
    if (key === "[content_types].xml") {
      parts.push({ entry, key, kind: "content-types", contentType: "" });
      continue;
    }
    const contentType = contentTypeOf(key);
    const known = contentType === undefined ? undefined : KIND_BY_CONTENT_TYPE[contentType];
    const kind = leftOut.has(key) || (!known && contentType?.startsWith("image/")) ? "left-out" : known;
    if (!kind) {
      throw new QuarantineReason(
        "XLSX_UNKNOWN_PART",
        `the workbook contains ${describeUnknownPart(key, contentType)}, which deidkit cannot de-identify`,
      );
    }
    parts.push({ entry, key, kind, contentType: contentType! });
  }
  if (!parts.some((part) => part.kind === "workbook")) {
    throw new QuarantineReason("XLSX_INVALID", "the package has no workbook part; it is not a spreadsheet");
  }
  return parts;
}

/** Returns the part whose relationships a relationship part lists: "xl/_rels/workbook.xml.rels" gives "xl/workbook.xml", "_rels/.rels" gives "". */
export function relationshipSource(key: string): string {
  const match = /^(.*?)_rels\/([^/]*)\.rels$/.exec(key);
  if (!match) return "";
  return `${match[1]}${match[2]}`;
}

export interface Relationship {
  id: string;
  type: string;
  target: string;
  external: boolean;
}

export function parseRelationships(tokens: readonly XmlToken[]): Relationship[] {
  const relationships: Relationship[] = [];
  for (const token of tokens) {
    if (token.kind !== "open" || localName(token.name) !== "Relationship") continue;
    relationships.push({
      id: attribute(token, "Id") ?? "",
      type: attribute(token, "Type") ?? "",
      target: attribute(token, "Target") ?? "",
      external: (attribute(token, "TargetMode") ?? "").toLowerCase() === "external",
    });
  }
  return relationships;
}

/** Returns the key of the part an internal relationship target refers to, resolved against its source part. */
export function resolveTarget(source: string, target: string): string {
  let decoded = target;
  try {
    decoded = decodeURIComponent(target);
  } catch {
    // A target that is not valid percent-encoding is compared as written.
  }
  const path = decoded.startsWith("/") ? decoded.slice(1) : posix.join(posix.dirname(source), decoded);
  return posix.normalize(path).replace(/^\.\//, "").toLowerCase();
}

/**
 * Cleans the target of an external relationship. A file path (a linked
 * workbook, a file: hyperlink) keeps only its cleaned file name, because
 * folders often name the user or the patient. An e-mail address is
 * removed, and any other URL is cleaned.
 */
export function cleanExternalTarget(target: string, clean: (text: string) => string): string {
  let decoded = target;
  try {
    decoded = decodeURIComponent(target);
  } catch {
    // Not percent-encoded text: cleaned as written.
  }
  if (/^mailto:/i.test(decoded)) return "mailto:";
  const isPath = /^file:/i.test(decoded) || /^[A-Za-z]:[\\/]/.test(decoded) || decoded.includes("\\") || !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(decoded);
  if (isPath && /[\\/]/.test(decoded)) {
    const name = decoded.slice(Math.max(decoded.lastIndexOf("/"), decoded.lastIndexOf("\\")) + 1);
    return clean(name);
  }
  const cleaned = clean(decoded);
  return cleaned === decoded ? target : encodeURI(cleaned);
}

/** A relationship part: relationships to parts left out are removed, external targets cleaned. */
export class RelationshipsTransform extends PartTransform {
  constructor(
    env: PartEnvironment,
    private readonly droppedIds: ReadonlySet<string>,
  ) {
    super(env);
  }

  protected override dropElement(local: string, token: XmlOpenToken): boolean {
    return local === "Relationship" && this.droppedIds.has(attribute(token, "Id") ?? "");
  }

  protected override openTag(token: XmlOpenToken): XmlOpenToken {
    if (localName(token.name) !== "Relationship" || (attribute(token, "TargetMode") ?? "").toLowerCase() !== "external") {
      return super.openTag(token);
    }
    const attributes = token.attributes.map((item) => {
      if (localName(item.name) !== "Target") return item;
      const value = cleanExternalTarget(item.value, (text) => this.env.scrubber.preview(text).text);
      if (value !== item.value) this.env.scrubber.replacements++;
      return { name: item.name, value };
    });
    return withAttributes(token, attributes);
  }

  protected override attributeAction(element: string, attribute: string): AttributeAction {
    if (element === "Relationship" && (attribute === "Id" || attribute === "Type" || attribute === "TargetMode")) return "keep";
    return "opaque";
  }
}
