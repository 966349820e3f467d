/**
 * Rewriters for the parts of a workbook other than sheets and shared
 * strings: the workbook part, document properties, comments, people,
 * drawings, charts, tables and external links. Each names the values that
 * are free text (cleaned), author fields (blanked), formulas (rewritten)
 * and dates (shifted or removed); everything else is opaque.
 */
import { QuarantineReason } from "../../deid/apply.js";
import { PLACEHOLDER, type Patient } from "../../deid/identifiers.js";
import { replaceDateText } from "../date-text.js";
import type { SheetNames } from "./formula.js";
import { cleanRichText } from "./scrub.js";
import { PartTransform, type AttributeAction, type PartEnvironment } from "./transform.js";
import {
  attribute,
  localName,
  prefixOf,
  textToken,
  tokenText,
  withAttributes,
  type XmlOpenToken,
  type XmlToken,
} from "./xml.js";

/** Date shift for dates outside cells (document properties, comment times). */
export interface DateShift {
  /** Days to add, or undefined when dates are removed instead. */
  days: number | undefined;
}

export function dateShiftFor(shiftDates: boolean, patient: Patient | undefined): DateShift {
  return { days: shiftDates && patient ? patient.shiftDays : undefined };
}

/** Shifts the date in a date-time value ("2019-03-16T10:00:00Z"); undefined when it cannot be shifted. */
function shiftDateTime(text: string, dates: DateShift): string | undefined {
  if (dates.days === undefined) return undefined;
  const result = replaceDateText(text, dates.days);
  return result.replaced === 1 ? result.text : undefined;
}

function replacedText(token: XmlToken, text: string, original: string): string {
  return text === original ? token.raw : textToken(text).raw;
}

/** Parts that hold no free text (theme, calculation chain, chart styles): every value is opaque. */
export class OpaqueTransform extends PartTransform {}

/** xl/workbook.xml: sheet names, defined names, and the name of the user who reserved the file. */
export class WorkbookTransform extends PartTransform {
  private views = 0;

  constructor(
    env: PartEnvironment,
    private readonly sheets: SheetNames,
  ) {
    super(env);
  }

  protected override dropElement(local: string): boolean {
    // The folder the workbook was last saved in (x15ac:absPath), which often contains a user name.
    return local === "absPath";
  }

  protected override openTag(token: XmlOpenToken): XmlOpenToken {
    const local = localName(token.name);
    if (local === "sheet") {
      const attributes = token.attributes.map((item) =>
        localName(item.name) === "name" ? { name: item.name, value: this.sheets.rename(item.value) } : item,
      );
      return withAttributes(token, attributes);
    }
    if (local === "customWorkbookView") {
      // Excel names custom views after the user who made them ("J. Smith - Personal View").
      this.views++;
      this.env.scrubber.replacements++;
      const attributes = token.attributes.map((item) => (localName(item.name) === "name" ? { name: item.name, value: `View ${this.views}` } : item));
      return super.openTag(withAttributes(token, attributes));
    }
    return super.openTag(token);
  }

  protected override attributeAction(element: string, attribute: string): AttributeAction {
    if (element === "definedName" && ["comment", "description", "help", "statusBar", "customMenu"].includes(attribute)) return "clean";
    if (element === "fileSharing" && attribute === "userName") return "drop";
    if (element === "sheet" && attribute === "name") return "keep";
    if (element === "customWorkbookView" && attribute === "name") return "keep";
    return "opaque";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (parent === "definedName") return replacedText(token, this.env.formulas.rewrite(text), text);
    return super.text(text, token, parent);
  }
}

/** docProps/core.xml: author fields are blanked, titles and keywords cleaned, dates shifted or removed. */
export class CorePropertiesTransform extends PartTransform {
  constructor(
    env: PartEnvironment,
    private readonly dates: DateShift,
  ) {
    super(env);
  }

  protected override bufferElement(local: string): boolean {
    return local === "created" || local === "modified" || local === "lastPrinted";
  }

  protected override element(tokens: XmlToken[]): string {
    const text = tokens.map(tokenText).join("");
    const shifted = shiftDateTime(text, this.dates);
    this.env.scrubber.replacements++;
    if (shifted === undefined || tokens.length !== 3) return "";
    return tokens[0].raw + textToken(shifted).raw + tokens[2].raw;
  }

  protected override attributeAction(element: string, attribute: string): AttributeAction {
    return attribute === "type" || attribute === "lang" ? "keep" : "opaque";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (parent === "creator" || parent === "lastModifiedBy") {
      if (text) this.env.scrubber.replacements++;
      return "";
    }
    const free = ["title", "subject", "description", "keywords", "category", "contentStatus", "identifier", "version"];
    if (free.includes(parent) || this.stack.includes("keywords")) return replacedText(token, this.env.scrubber.clean(text), text);
    return super.text(text, token, parent);
  }
}

/** docProps/app.xml: company and manager blanked, the list of sheet names renamed. */
export class AppPropertiesTransform extends PartTransform {
  constructor(
    env: PartEnvironment,
    private readonly sheets: SheetNames,
  ) {
    super(env);
  }

  protected override attributeAction(): AttributeAction {
    return "keep";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (parent === "Company" || parent === "Manager" || parent === "HyperlinkBase") {
      if (text) this.env.scrubber.replacements++;
      return "";
    }
    if (parent === "lpstr" && this.stack.includes("TitlesOfParts")) {
      const renamed = this.sheets.rename(text);
      if (renamed !== text) return textToken(renamed).raw;
      // Named ranges are listed as "Sheet1!Print_Area".
      return replacedText(token, text.includes("!") ? this.env.formulas.rewrite(text) : this.env.scrubber.clean(text), text);
    }
    if (parent === "lpstr" || parent === "Template") return replacedText(token, this.env.scrubber.clean(text), text);
    return super.text(text, token, parent);
  }
}

const NUMERIC_VARIANT_TYPES = new Set(["i1", "i2", "i4", "i8", "int", "ui1", "ui2", "ui4", "ui8", "uint", "r4", "r8", "decimal", "cy"]);
const TEXT_VARIANT_TYPES = new Set(["lpwstr", "lpstr", "bstr"]);

/** docProps/custom.xml: each property's name and value are cleaned; a date is shifted or replaced. */
export class CustomPropertiesTransform extends PartTransform {
  constructor(
    env: PartEnvironment,
    private readonly dates: DateShift,
  ) {
    super(env);
  }

  protected override bufferElement(local: string): boolean {
    return local === "property";
  }

  protected override attributeAction(element: string, attribute: string): AttributeAction {
    if (element === "property" && attribute === "name") return "clean";
    if (element === "property" && (attribute === "fmtid" || attribute === "pid" || attribute === "linkTarget")) return "keep";
    return "opaque";
  }

  protected override element(tokens: XmlToken[]): string {
    const value = tokens[1];
    // A simple property is <property><vt:type>text</vt:type></property>; others (vectors, blobs) are opaque.
    if (tokens.length !== 5 || value.kind !== "open" || tokens[3].kind !== "close") return this.rewriteTokens(tokens);
    const type = localName(value.name);
    const text = tokenText(tokens[2]);
    const open = this.openTag(tokens[0] as XmlOpenToken).raw;
    const typed = (name: string, content: string): string => `${open}<${name}>${textToken(content).raw}</${name}>${tokens[4].raw}`;
    const asText = (content: string): string => typed(`${prefixOf(value.name)}lpwstr`, content);
    if (TEXT_VARIANT_TYPES.has(type)) return typed(value.name, this.env.scrubber.clean(text));
    if (NUMERIC_VARIANT_TYPES.has(type)) {
      const preview = this.env.scrubber.preview(text);
      if (preview.text === text) return this.serializeRewritten(tokens);
      this.env.scrubber.replacements += preview.count;
      return /^-?\d+(\.\d+)?$/.test(preview.text) ? typed(value.name, preview.text) : asText(preview.text);
    }
    if (type === "filetime" || type === "date") {
      this.env.scrubber.replacements++;
      const shifted = shiftDateTime(text, this.dates);
      return shifted === undefined ? asText(PLACEHOLDER.date) : typed(value.name, shifted);
    }
    return this.rewriteTokens(tokens);
  }
}

/** xl/comments*.xml (notes): authors blanked, note text cleaned as rich text. */
export class CommentsTransform extends PartTransform {
  protected override bufferElement(local: string): boolean {
    return local === "text" && this.stack.at(-1) === "comment";
  }

  protected override element(tokens: XmlToken[]): string {
    return this.serializeRewritten(cleanRichText(tokens, this.env.scrubber));
  }

  protected override attributeAction(element: string): AttributeAction {
    return element === "comment" ? "keep" : "opaque";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (parent === "author") {
      this.env.scrubber.replacements++;
      return textToken(PLACEHOLDER["staff-name"]).raw;
    }
    return super.text(text, token, parent);
  }
}

/** xl/threadedComments/*.xml: text cleaned, time shifted or removed, @mentions removed when the text changes. */
export class ThreadedCommentsTransform extends PartTransform {
  private textChanged = false;

  constructor(
    env: PartEnvironment,
    private readonly dates: DateShift,
  ) {
    super(env);
  }

  protected override openTag(token: XmlOpenToken): XmlOpenToken {
    if (localName(token.name) !== "threadedComment") return super.openTag(token);
    this.textChanged = false;
    const attributes = [];
    for (const item of token.attributes) {
      if (localName(item.name) !== "dT") {
        attributes.push(item);
        continue;
      }
      this.env.scrubber.replacements++;
      const shifted = shiftDateTime(item.value, this.dates);
      if (shifted !== undefined) attributes.push({ name: item.name, value: shifted });
    }
    return withAttributes(token, attributes);
  }

  protected override dropElement(local: string): boolean {
    // A mention gives the start and length of "@Name" in the text, which cleaning may have moved.
    return local === "mentions" && this.textChanged;
  }

  protected override attributeAction(element: string): AttributeAction {
    return element === "mention" ? "keep" : "opaque";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (parent === "text") {
      const cleaned = this.env.scrubber.clean(text);
      if (cleaned !== text) this.textChanged = true;
      return replacedText(token, cleaned, text);
    }
    return super.text(text, token, parent);
  }
}

/** xl/persons/person.xml: the people of threaded comments, each named by the placeholder, with no account ID. */
export class PersonsTransform extends PartTransform {
  protected override attributeAction(element: string, attribute: string): AttributeAction {
    if (element !== "person") return "opaque";
    if (attribute === "userId" || attribute === "providerId") return "drop";
    return attribute === "id" ? "keep" : "opaque";
  }

  protected override openTag(token: XmlOpenToken): XmlOpenToken {
    if (localName(token.name) !== "person") return super.openTag(token);
    this.env.scrubber.replacements++;
    const attributes = token.attributes.map((item) =>
      localName(item.name) === "displayName" ? { name: item.name, value: PLACEHOLDER["staff-name"] } : item,
    );
    return super.openTag(withAttributes(token, attributes));
  }
}

/**
 * DrawingML parts: drawings, chart shapes and charts. Paragraph text is
 * cleaned as rich text, and shape names and descriptions are cleaned. The
 * cached copies of sheet data in charts (strCache, numCache) are removed,
 * because they may contain values that were rewritten in the sheets.
 * Excel rebuilds them from the sheets.
 */
export class DrawingTransform extends PartTransform {
  protected override bufferElement(local: string): boolean {
    return local === "p";
  }

  protected override element(tokens: XmlToken[]): string {
    return this.serializeRewritten(cleanRichText(tokens, this.env.scrubber));
  }

  protected override dropElement(local: string, token: XmlOpenToken): boolean {
    // An SVG picture (asvg:svgBlip) whose part is left out; the PNG copy Excel stores beside it stays.
    if (local === "svgBlip" && this.env.droppedRelationships.has(attribute(token, "embed") ?? "")) return true;
    if (local === "strCache" || local === "numCache" || local === "multiLvlStrCache") {
      this.env.scrubber.replacements++;
      return true;
    }
    return false;
  }

  protected override attributeAction(element: string, attribute: string): AttributeAction {
    if (element === "cNvPr" && (attribute === "name" || attribute === "descr" || attribute === "title")) return "clean";
    if ((element === "hlinkClick" || element === "hlinkHover") && attribute === "tooltip") return "clean";
    if (element === "sp" && attribute === "textlink") return "formula";
    return "opaque";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (parent === "f") return replacedText(token, this.env.formulas.rewrite(text), text);
    if (parent === "v" && this.stack.includes("numLit")) {
      const preview = this.env.scrubber.preview(text);
      if (preview.text === text) return token.raw;
      if (!/^-?\d+(\.\d+)?(E[+-]?\d+)?$/i.test(preview.text)) {
        throw new QuarantineReason("XLSX_IDENTIFIER_IN_STRUCTURE", "a number in a chart of the workbook is a known identifier");
      }
      this.env.scrubber.replacements += preview.count;
      return textToken(preview.text).raw;
    }
    if (parent === "v" || parent === "t") return replacedText(token, this.env.scrubber.clean(text), text);
    return super.text(text, token, parent);
  }
}

/** Legacy VML drawings (note boxes, form controls): text boxes cleaned, control links rewritten. */
export class VmlTransform extends PartTransform {
  protected override attributeAction(_element: string, attribute: string): AttributeAction {
    return attribute === "alt" || attribute === "title" ? "clean" : "opaque";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (parent.startsWith("Fmla")) return replacedText(token, this.env.formulas.rewrite(text), text);
    if (this.stack.includes("textbox")) return replacedText(token, this.env.scrubber.clean(text), text);
    return super.text(text, token, parent);
  }
}

/** xl/tables/*.xml: column names cleaned (they repeat the header cells), formulas rewritten. */
export class TableTransform extends PartTransform {
  protected override dropElement(local: string): boolean {
    return local === "dateGroupItem";
  }

  protected override attributeAction(element: string, attribute: string): AttributeAction {
    if (element === "tableColumn" && ["name", "uniqueName", "totalsRowLabel"].includes(attribute)) return "clean";
    if (element === "table" && attribute === "comment") return "clean";
    if ((element === "filter" || element === "customFilter") && attribute === "val") return "clean";
    return "opaque";
  }

  protected override text(text: string, token: XmlToken, parent: string): string {
    if (parent === "calculatedColumnFormula" || parent === "totalsRowFormula") {
      return replacedText(token, this.env.formulas.rewrite(text), text);
    }
    return super.text(text, token, parent);
  }
}

/**
 * xl/externalLinks/*.xml: the sheet names of the other workbook are cleaned
 * as this workbook's formulas refer to them, and the cached copy of its
 * cells (sheetDataSet) is removed. DDE and OLE links are not supported.
 */
export class ExternalLinkTransform extends PartTransform {
  constructor(
    env: PartEnvironment,
    private readonly sheets: SheetNames,
  ) {
    super(env);
  }

  protected override dropElement(local: string): boolean {
    if (local === "ddeLink" || local === "oleLink") {
      throw new QuarantineReason("XLSX_UNKNOWN_PART", "the workbook has a DDE or OLE link, which deidkit does not de-identify");
    }
    if (local === "sheetDataSet") {
      this.env.scrubber.replacements++;
      return true;
    }
    return false;
  }

  protected override openTag(token: XmlOpenToken): XmlOpenToken {
    if (localName(token.name) !== "sheetName") return super.openTag(token);
    const value = attribute(token, "val");
    if (value === undefined) return token;
    const attributes = token.attributes.map((item) =>
      localName(item.name) === "val" ? { name: item.name, value: this.sheets.renameOther(value) } : item,
    );
    return withAttributes(token, attributes);
  }

  protected override attributeAction(element: string, attribute: string): AttributeAction {
    if (element === "definedName" && attribute === "refersTo") return "formula";
    if (element === "sheetName" && attribute === "val") return "keep";
    return "opaque";
  }
}

/** xl/styles.xml: only custom number formats can hold text (a quoted literal). */
export class StylesTransform extends PartTransform {
  protected override attributeAction(element: string, attribute: string): AttributeAction {
    return element === "numFmt" && attribute === "formatCode" ? "clean" : "opaque";
  }
}

/** [Content_Types].xml: declarations of parts left out are removed. */
export class ContentTypesTransform extends PartTransform {
  constructor(
    env: PartEnvironment,
    private readonly droppedParts: ReadonlySet<string>,
  ) {
    super(env);
  }

  protected override dropElement(local: string, token: XmlOpenToken): boolean {
    const partName = local === "Override" ? attribute(token, "PartName") : undefined;
    return partName !== undefined && this.droppedParts.has(partName.replace(/^\//, "").toLowerCase());
  }

  protected override attributeAction(): AttributeAction {
    return "keep";
  }
}
