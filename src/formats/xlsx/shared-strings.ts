/**
 * The shared string table (xl/sharedStrings.xml), which the string cells of
 * the workbook point into. Its plain texts are loaded first, because header
 * rows and the cells of identifier columns are read through it. The part
 * itself is rewritten after the sheets.
 */
import { LimitError } from "../../errors.js";
import { cleanRichText, richPlainText } from "./scrub.js";
import { rewriteFieldValue, type FieldRewriteContext } from "../field-rules.js";
import type { FieldClass } from "../fields.js";
import { PartTransform, type PartEnvironment } from "./transform.js";
import { escapeText, localName, prefixOf, Utf8PartDecoder, XmlTokenizer, type XmlOpenToken, type XmlToken } from "./xml.js";

/** Characters of plain text the loaded table holds; the table is kept in memory while sheets are read. */
export const MAX_SHARED_STRING_CHARACTERS = 256 * 1024 * 1024;
/** Items in the table. */
export const MAX_SHARED_STRINGS = 16 * 1024 * 1024;

export class SharedStringTable {
  constructor(private readonly texts: readonly string[]) {}

  get size(): number {
    return this.texts.length;
  }

  get(index: number): string | undefined {
    return this.texts[index];
  }
}

export const EMPTY_TABLE = new SharedStringTable([]);

/** Reads the plain text of every item, in order. */
export async function loadSharedStrings(chunks: AsyncIterable<Buffer>): Promise<SharedStringTable> {
  const decoder = new Utf8PartDecoder();
  const tokenizer = new XmlTokenizer();
  const texts: string[] = [];
  let characters = 0;
  let item: XmlToken[] | undefined;
  let depth = 0;
  const take = (tokens: XmlToken[]): void => {
    for (const token of tokens) {
      if (!item) {
        if (token.kind === "open" && localName(token.name) === "si") {
          if (token.selfClosing) {
            texts.push("");
            continue;
          }
          item = [token];
          depth = 1;
        }
        continue;
      }
      item.push(token);
      if (token.kind === "open" && !token.selfClosing) depth++;
      else if (token.kind === "close") depth--;
      if (depth > 0) continue;
      const text = richPlainText(item);
      item = undefined;
      characters += text.length;
      if (characters > MAX_SHARED_STRING_CHARACTERS || texts.length >= MAX_SHARED_STRINGS) {
        throw new LimitError(
          `the shared string table has more than ${MAX_SHARED_STRINGS} items or ${MAX_SHARED_STRING_CHARACTERS} characters`,
          { hint: "split the workbook, or leave it out of the input" },
        );
      }
      texts.push(text);
    }
  };
  for await (const chunk of chunks) take(tokenizer.push(decoder.decode(chunk)));
  take(tokenizer.push(decoder.decode(new Uint8Array(0), true)));
  take(tokenizer.finish());
  return new SharedStringTable(texts);
}

/**
 * Which shared strings the sheets use, and how. A cell of an identifier
 * column that gets a new value stops pointing into the table. An item that
 * only such cells used is emptied. An item that other cells still show is
 * rewritten by the column's rule, without a row and so without a patient.
 */
export class SharedStringUsage {
  /** 1 for an item that a cell still points to after rewriting. */
  private readonly keptByCell: Uint8Array;
  /** Index into `classes` plus one, or 0 when no identifier column used the item. */
  private readonly fieldCodes: Uint8Array;
  private readonly classes: FieldClass[] = [];

  constructor(size: number) {
    this.keptByCell = new Uint8Array(size);
    this.fieldCodes = new Uint8Array(size);
  }

  /** Records a cell that still points to item `index` after rewriting. */
  markKept(index: number, fieldClass: FieldClass): void {
    this.keptByCell[index] = 1;
    this.markField(index, fieldClass);
  }

  /** Records a cell of an identifier column that pointed to item `index` and got a new value. */
  markReplaced(index: number, fieldClass: FieldClass): void {
    this.markField(index, fieldClass);
  }

  isKept(index: number): boolean {
    return this.keptByCell[index] === 1;
  }

  fieldOf(index: number): FieldClass | undefined {
    const code = this.fieldCodes[index];
    return code ? this.classes[code - 1] : undefined;
  }

  private markField(index: number, fieldClass: FieldClass): void {
    if (fieldClass === "none" || this.fieldCodes[index]) return;
    let code = this.classes.indexOf(fieldClass);
    if (code < 0) code = this.classes.push(fieldClass) - 1;
    this.fieldCodes[index] = code + 1;
  }
}

/**
 * Rewrites xl/sharedStrings.xml after the sheets: each <si> is cleaned as
 * rich text, or rewritten by the rule of the identifier column that used
 * it. Indices and counts stay, so no cell reference changes.
 */
export class SharedStringsTransform extends PartTransform {
  private index = 0;

  constructor(
    env: PartEnvironment,
    private readonly usage: SharedStringUsage,
    private readonly context: FieldRewriteContext,
  ) {
    super(env);
  }

  protected override bufferElement(local: string): boolean {
    return local === "si";
  }

  protected override element(tokens: XmlToken[]): string {
    const index = this.index++;
    const fieldClass = this.usage.fieldOf(index);
    if (fieldClass === undefined) return this.serializeRewritten(cleanRichText(tokens, this.env.scrubber));
    const prefix = prefixOf((tokens[0] as XmlOpenToken).name);
    let text = "";
    if (this.usage.isKept(index)) {
      const result = rewriteFieldValue(fieldClass, richPlainText(tokens), undefined, this.context);
      this.env.scrubber.replacements += result.replaced;
      text = result.text;
    } else {
      this.env.scrubber.replacements++;
    }
    const space = /^\s|\s$/.test(text) ? ' xml:space="preserve"' : "";
    return `<${prefix}si><${prefix}t${space}>${escapeText(text)}</${prefix}t></${prefix}si>`;
  }

  protected override attributeAction(element: string): "keep" | "opaque" {
    return element === "sst" ? "keep" : "opaque";
  }
}
