/**
 * The base of every part rewriter: it receives tokens one at a time and
 * returns the text to write. Subclasses declare which elements they need whole
 * (a sheet row, a shared string), which to drop, and what each attribute
 * and text node holds. By default every value is opaque: it is copied, and
 * the workbook is left out if it contains a known identifier.
 */
import { LimitError } from "../../errors.js";
import type { FormulaRewriter } from "./formula.js";
import type { Scrubber } from "./scrub.js";
import {
  checkDeclaration,
  localName,
  prefixOf,
  tokenText,
  withAttributes,
  type XmlAttribute,
  type XmlOpenToken,
  type XmlToken,
} from "./xml.js";

/** Characters an element kept whole in memory (a row, a shared string, a paragraph) may have. */
export const MAX_BUFFERED_CHARACTERS = 64 * 1024 * 1024;

export type AttributeAction = "keep" | "opaque" | "clean" | "formula" | "drop";

export interface PartEnvironment {
  scrubber: Scrubber;
  formulas: FormulaRewriter;
  /** IDs of this part's relationships whose targets are left out of the output. */
  droppedRelationships: ReadonlySet<string>;
}

export abstract class PartTransform {
  /** Local names of the open elements around the current token (not counting a buffered element's own). */
  protected readonly stack: string[] = [];
  private buffer: XmlToken[] | undefined;
  private bufferDepth = 0;
  private bufferLength = 0;
  private skipDepth = 0;

  constructor(protected readonly env: PartEnvironment) {}

  push(token: XmlToken): string {
    if (this.skipDepth > 0) {
      if (token.kind === "open" && !token.selfClosing) this.skipDepth++;
      else if (token.kind === "close") this.skipDepth--;
      return "";
    }
    if (this.buffer) return this.pushBuffered(token);
    switch (token.kind) {
      case "open": {
        const local = localName(token.name);
        if (this.dropElement(local, token)) {
          if (!token.selfClosing) this.skipDepth = 1;
          return "";
        }
        if (this.bufferElement(local, token)) {
          if (token.selfClosing) return this.element([token]);
          this.buffer = [token];
          this.bufferDepth = 1;
          this.bufferLength = token.raw.length;
          return "";
        }
        const rewritten = this.openTag(token);
        if (!token.selfClosing) this.stack.push(local);
        return rewritten.raw;
      }
      case "close":
        this.stack.pop();
        return this.closeTag(token);
      case "text":
      case "cdata":
        return this.text(tokenText(token), token, this.stack.at(-1) ?? "");
      case "markup":
        checkDeclaration(token);
        return token.raw;
    }
  }

  private pushBuffered(token: XmlToken): string {
    const buffer = this.buffer!;
    buffer.push(token);
    this.bufferLength += token.raw.length;
    if (this.bufferLength > MAX_BUFFERED_CHARACTERS) {
      throw new LimitError(`an element of the workbook (a row or a text) is longer than ${MAX_BUFFERED_CHARACTERS} characters`, {
        hint: "the workbook is damaged or crafted; leave it out of the input",
      });
    }
    if (token.kind === "open" && !token.selfClosing) this.bufferDepth++;
    else if (token.kind === "close") this.bufferDepth--;
    if (this.bufferDepth > 0) return "";
    this.buffer = undefined;
    return this.element(buffer);
  }

  /** True for elements whose tokens `element` gets all at once. */
  protected bufferElement(_local: string, _token: XmlOpenToken): boolean {
    return false;
  }

  /** Returns the output of a buffered element; by default each token goes through the rules as usual. */
  protected element(tokens: XmlToken[]): string {
    return this.rewriteTokens(tokens);
  }

  /** Rewrites buffered tokens one by one with the usual attribute and text rules. */
  protected rewriteTokens(tokens: readonly XmlToken[]): string {
    let out = "";
    const depth = this.stack.length;
    for (const token of tokens) {
      if (token.kind === "open") {
        out += this.openTag(token).raw;
        if (!token.selfClosing) this.stack.push(localName(token.name));
      } else if (token.kind === "close") {
        this.stack.pop();
        out += token.raw;
      } else if (token.kind === "text" || token.kind === "cdata") {
        out += this.text(tokenText(token), token, this.stack.at(-1) ?? "");
      } else {
        out += token.raw;
      }
    }
    this.stack.length = depth;
    return out;
  }

  /** Writes tokens whose text is already rewritten: start tags get the attribute rules, text is kept. */
  protected serializeRewritten(tokens: readonly XmlToken[]): string {
    return tokens.map((token) => (token.kind === "open" ? this.openTag(token).raw : token.raw)).join("");
  }

  /** Returns the output for an end tag outside buffered elements. */
  protected closeTag(token: XmlToken): string {
    return token.raw;
  }

  /** True for elements left out of the output with everything inside them. */
  protected dropElement(_local: string, _token: XmlOpenToken): boolean {
    return false;
  }

  protected attributeAction(_element: string, _attribute: string): AttributeAction {
    return "opaque";
  }

  /** Returns the output for a text node; by default it is opaque. */
  protected text(text: string, token: XmlToken, _parent: string): string {
    this.env.scrubber.checkOpaque(text);
    return token.raw;
  }

  /** Applies the attribute rules to a start tag. */
  protected openTag(token: XmlOpenToken): XmlOpenToken {
    const element = localName(token.name);
    let changed = false;
    const attributes: XmlAttribute[] = [];
    for (const item of token.attributes) {
      const value = this.attributeValue(element, item);
      if (value !== item.value) changed = true;
      if (value !== undefined) attributes.push(value === item.value ? item : { name: item.name, value });
    }
    return changed ? withAttributes(token, attributes) : token;
  }

  /** Returns the new value of an attribute, or undefined to remove it. */
  private attributeValue(element: string, item: XmlAttribute): string | undefined {
    const { name, value } = item;
    if (name === "xmlns" || name.startsWith("xmlns:") || name.startsWith("xml:") || name.startsWith("mc:")) return value;
    // A relationship ID (r:id, r:embed) names a part; the reference goes when its part is left out.
    if (prefixOf(name) && this.env.droppedRelationships.has(value)) return undefined;
    switch (this.attributeAction(element, localName(name))) {
      case "keep":
        return value;
      case "clean":
        return this.env.scrubber.clean(value);
      case "formula":
        return this.env.formulas.rewrite(value);
      case "drop":
        return undefined;
      case "opaque":
        this.env.scrubber.checkOpaque(value);
        return value;
    }
  }
}

/** Runs tokens through a transform and returns the whole output (for small parts and tests). */
export function applyTransform(transform: PartTransform, tokens: readonly XmlToken[]): string {
  return tokens.map((token) => transform.push(token)).join("");
}
