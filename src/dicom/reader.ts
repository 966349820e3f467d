/**
 * A DICOM reader that parses headers into memory and leaves bulk values in
 * the file (PS3.5 section 7 for the data set encoding, PS3.10 section 7 for
 * the file format).
 *
 * Values longer than `inlineLimit` become `BulkRef`s, so memory grows with
 * the number of header elements, not with the size of pixel data.
 */
import { DicomParseError, LimitError } from "../errors.js";
import type { Element, Fragment, Item, Syntax } from "./dataset.js";
import { implicitVr, lookupTag } from "./dictionary.js";
import type { ByteSource } from "./source.js";
import { formatTag as formatAnyTag, TAG, tagGroup, type Tag } from "./tags.js";
import {
  EXPLICIT_VR_LITTLE_ENDIAN,
  lookupTransferSyntax,
  type TransferSyntax,
} from "./transfer-syntax.js";
import { hasLongLength, isKnownVr } from "./vr.js";

/**
 * Formats a tag for an error message. A tag read from a damaged file is four
 * arbitrary bytes, which could spell part of a name ("(6F5A,6272)" is
 * "Zorb"), so only tags of the data dictionary and item tags are shown.
 */
function formatTag(tag: Tag): string {
  if (tagGroup(tag) === 0xfffe || lookupTag(tag)) return formatAnyTag(tag);
  return "an unlisted tag";
}

const UNDEFINED_LENGTH = 0xffffffff;
const ITEM_GROUP = 0xfffe;

export interface ReadLimits {
  /** Values longer than this stay in the file as BulkRefs (bytes). */
  inlineLimit: number;
  /** Maximum nesting depth of sequences; values above MAX_SUPPORTED_DEPTH act as that ceiling. */
  maxDepth: number;
  /** Maximum number of elements and items in one file. */
  maxNodes: number;
  /** Maximum total bytes of values loaded into memory for one file. */
  maxHeaderBytes: number;
}

/**
 * Nesting depth that the reader never goes beyond, whatever `maxDepth` says.
 * The parser and the writer recurse a few frames per sequence level, and on
 * Node 20 with the default stack they overflowed at about 1,500 levels.
 */
export const MAX_SUPPORTED_DEPTH = 256;

export const DEFAULT_READ_LIMITS: ReadLimits = {
  inlineLimit: 256 * 1024,
  maxDepth: 64,
  maxNodes: 1_000_000,
  maxHeaderBytes: 1024 * 1024 * 1024,
};

export interface ParsedDicom {
  /** The file started with a 128-byte preamble and "DICM". */
  hasPreamble: boolean;
  /** File meta elements (group 0002) as read; empty when the file has none. */
  meta: Item;
  dataset: Item;
  transferSyntax: TransferSyntax;
  /** The transfer syntax was guessed from the data set because the meta did not name it. */
  transferSyntaxGuessed: boolean;
  /** Offset of the first data set byte in the source. */
  datasetOffset: number;
}

const META_SYNTAX: Syntax = { littleEndian: true, explicitVr: true };

/** True when the bytes look like the start of a DICOM file or a raw data set. */
export function looksLikeDicom(head: Buffer): boolean {
  if (head.length >= 132 && head.toString("latin1", 128, 132) === "DICM") return true;
  if (head.length >= 4 && head.toString("latin1", 0, 4) === "DICM") return true;
  return guessRawSyntax(head, 0) !== undefined;
}

/**
 * Guesses the encoding of a data set that starts at `offset` without a
 * transfer syntax: the first tag must be a low standard group, and explicit
 * VR files carry two upper-case letters after it.
 */
function guessRawSyntax(head: Buffer, offset: number): Syntax | undefined {
  if (head.length < offset + 8) return undefined;
  const groupLe = head.readUInt16LE(offset);
  const groupBe = head.readUInt16BE(offset);
  const vr = head.toString("latin1", offset + 4, offset + 6);
  const explicitVr = isKnownVr(vr);
  if (groupLe >= 0x0002 && groupLe <= 0x0010 && groupLe % 2 === 0) {
    if (explicitVr) return { littleEndian: true, explicitVr: true };
    const length = head.readUInt32LE(offset + 4);
    if (length < 0x10000) return { littleEndian: true, explicitVr: false };
    return undefined;
  }
  if (groupBe >= 0x0002 && groupBe <= 0x0010 && groupBe % 2 === 0 && explicitVr) {
    return { littleEndian: false, explicitVr: true };
  }
  return undefined;
}

class Parser {
  private nodes = 0;
  private loadedBytes = 0;

  constructor(
    private readonly source: ByteSource,
    private readonly limits: ReadLimits,
  ) {}

  fail(message: string, offset: number): never {
    throw new DicomParseError(`${message} at byte ${offset}`, offset, {
      hint: "the file is damaged or not valid DICOM; it is left out of the output",
    });
  }

  /**
   * Fails unless `length` bytes remain before `end`. The message names `what`,
   * followed by `tag` when given; the tag is formatted only on failure,
   * because this check runs for every element.
   */
  private need(offset: number, length: number, end: number, what: string, tag?: Tag): void {
    if (offset + length > end) {
      const subject = tag === undefined ? what : `${what} ${formatTag(tag)}`;
      this.fail(`truncated ${subject}: needs ${length} bytes, ${Math.max(0, end - offset)} remain`, offset);
    }
  }

  private countNode(offset: number): void {
    if (++this.nodes > this.limits.maxNodes) {
      throw new LimitError(`more than ${this.limits.maxNodes} elements and items at byte ${offset}`, {
        hint: "raise --max-elements if the file is genuine",
      });
    }
  }

  private load(offset: number, length: number): Buffer {
    this.loadedBytes += length;
    if (this.loadedBytes > this.limits.maxHeaderBytes) {
      throw new LimitError(`header values exceed ${this.limits.maxHeaderBytes} bytes at byte ${offset}`, {
        hint: "raise --max-header-bytes if the file is genuine",
      });
    }
    return Buffer.from(this.source.read(offset, length));
  }

  private readUint32(offset: number, syntax: Syntax): number {
    const bytes = this.source.read(offset, 4);
    return syntax.littleEndian ? bytes.readUInt32LE(0) : bytes.readUInt32BE(0);
  }

  readTag(offset: number, syntax: Syntax): Tag {
    const bytes = this.source.read(offset, 4);
    if (!syntax.littleEndian) return bytes.readUInt32BE(0);
    return ((bytes.readUInt16LE(0) << 16) | bytes.readUInt16LE(2)) >>> 0;
  }

  /**
   * Parses elements from `offset` up to `end`, or up to an Item Delimitation
   * Item when `delimited` is set. `stopAtGroup` ends the loop at the first
   * element of another group (used for the file meta).
   */
  parseElements(
    offset: number,
    end: number,
    syntax: Syntax,
    depth: number,
    delimited: boolean,
    stopOutsideGroup?: number,
  ): { elements: Element[]; offset: number } {
    const elements: Element[] = [];
    let position = offset;
    let previousTag = -1;
    while (position < end) {
      this.need(position, 4, end, "element tag");
      const tag = this.readTag(position, syntax);
      if (stopOutsideGroup !== undefined && tagGroup(tag) !== stopOutsideGroup) break;
      if (tagGroup(tag) === ITEM_GROUP) {
        if (tag === TAG.ItemDelimitationItem && delimited) {
          this.need(position, 8, end, "item delimiter");
          return { elements, offset: position + 8 };
        }
        this.fail(`unexpected ${formatTag(tag)} among data elements`, position);
      }
      if (tag <= previousTag) this.fail(`element ${formatTag(tag)} out of ascending order`, position);
      previousTag = tag;
      const parsed = this.parseElement(position, end, tag, syntax, depth);
      elements.push(parsed.element);
      position = parsed.offset;
    }
    if (delimited) this.fail("missing item delimiter", position);
    return { elements, offset: position };
  }

  private parseElement(
    offset: number,
    end: number,
    tag: Tag,
    syntax: Syntax,
    depth: number,
  ): { element: Element; offset: number } {
    this.countNode(offset);
    let vr: string;
    let length: number;
    let headerLength: number;
    if (syntax.explicitVr) {
      this.need(offset, 8, end, "header of", tag);
      const header = this.source.read(offset, 8);
      vr = header.toString("latin1", 4, 6);
      if (!isKnownVr(vr)) this.fail(`invalid VR for ${formatTag(tag)}`, offset + 4);
      if (hasLongLength(vr)) {
        this.need(offset, 12, end, "header of", tag);
        length = this.readUint32(offset + 8, syntax);
        headerLength = 12;
      } else {
        length = syntax.littleEndian ? header.readUInt16LE(6) : header.readUInt16BE(6);
        headerLength = 8;
      }
    } else {
      this.need(offset, 8, end, "header of", tag);
      vr = implicitVr(tag);
      length = this.readUint32(offset + 4, syntax);
      headerLength = 8;
    }
    const valueOffset = offset + headerLength;

    if (length === UNDEFINED_LENGTH) {
      return this.parseUndefinedLength(offset, valueOffset, end, tag, vr, syntax, depth);
    }
    this.need(valueOffset, length, end, "value of", tag);
    const valueEnd = valueOffset + length;
    const element: Element = { tag, vr, undefinedLength: false };

    const dictionaryVr = lookupTag(tag)?.vr;
    if (vr === "SQ" || (vr === "UN" && dictionaryVr === "SQ")) {
      // A UN value whose tag is a standard sequence is encoded in implicit VR
      // little endian (PS3.5 section 6.2.2), so its items are parsed that way.
      const itemSyntax = vr === "UN" ? { littleEndian: true, explicitVr: false } : syntax;
      element.items = this.parseItems(valueOffset, valueEnd, itemSyntax, depth + 1, false).items;
      return { element, offset: valueEnd };
    }
    if (vr === "UN" && dictionaryVr !== undefined && dictionaryVr !== "UN") element.valueVr = dictionaryVr;
    // File meta values are always loaded, because the reader needs the
    // Transfer Syntax UID from them whatever inlineLimit is.
    if (length > this.limits.inlineLimit && tagGroup(tag) !== 0x0002) {
      element.bulk = { source: this.source, offset: valueOffset, length };
    } else {
      element.bytes = this.load(valueOffset, length);
    }
    return { element, offset: valueEnd };
  }

  private parseUndefinedLength(
    offset: number,
    valueOffset: number,
    end: number,
    tag: Tag,
    vr: string,
    syntax: Syntax,
    depth: number,
  ): { element: Element; offset: number } {
    const element: Element = { tag, vr, undefinedLength: true };
    if (vr === "SQ") {
      const parsed = this.parseItems(valueOffset, end, syntax, depth + 1, true);
      element.items = parsed.items;
      return { element, offset: parsed.offset };
    }
    if (vr === "UN") {
      const itemSyntax = { littleEndian: true, explicitVr: false };
      const parsed = this.parseItems(valueOffset, end, itemSyntax, depth + 1, true);
      element.items = parsed.items;
      return { element, offset: parsed.offset };
    }
    if (vr === "OB" || vr === "OW") {
      const parsed = this.parseFragments(valueOffset, end, syntax);
      element.fragments = parsed.fragments;
      return { element, offset: parsed.offset };
    }
    return this.fail(`undefined length is not allowed for VR ${vr} of ${formatTag(tag)}`, offset);
  }

  parseItems(
    offset: number,
    end: number,
    syntax: Syntax,
    depth: number,
    delimited: boolean,
  ): { items: Item[]; offset: number } {
    const maxDepth = Math.min(this.limits.maxDepth, MAX_SUPPORTED_DEPTH);
    if (depth > maxDepth) {
      const hint =
        maxDepth === MAX_SUPPORTED_DEPTH
          ? `deidkit reads at most ${MAX_SUPPORTED_DEPTH} levels of nesting; the file is left out of the output`
          : "raise --max-depth if the file is genuine";
      throw new LimitError(`sequences nested deeper than ${maxDepth} at byte ${offset}`, { hint });
    }
    const items: Item[] = [];
    let position = offset;
    while (position < end) {
      this.need(position, 8, end, "item header");
      const tag = this.readTag(position, syntax);
      const length = this.readUint32(position + 4, syntax);
      if (tag === TAG.SequenceDelimitationItem) {
        if (!delimited) this.fail("sequence delimiter inside a sequence of defined length", position);
        return { items, offset: position + 8 };
      }
      if (tag !== TAG.Item) this.fail(`expected an item, found ${formatTag(tag)}`, position);
      this.countNode(position);
      const itemStart = position + 8;
      if (length === UNDEFINED_LENGTH) {
        const parsed = this.parseElements(itemStart, end, syntax, depth, true);
        items.push({ elements: parsed.elements, undefinedLength: true, syntax });
        position = parsed.offset;
      } else {
        this.need(itemStart, length, end, "item");
        const parsed = this.parseElements(itemStart, itemStart + length, syntax, depth, false);
        items.push({ elements: parsed.elements, undefinedLength: false, syntax });
        position = itemStart + length;
      }
    }
    if (delimited) this.fail("missing sequence delimiter", position);
    return { items, offset: position };
  }

  private parseFragments(offset: number, end: number, syntax: Syntax): { fragments: Fragment[]; offset: number } {
    const fragments: Fragment[] = [];
    let position = offset;
    while (position < end) {
      this.need(position, 8, end, "pixel data fragment header");
      const tag = this.readTag(position, syntax);
      const length = this.readUint32(position + 4, syntax);
      if (tag === TAG.SequenceDelimitationItem) return { fragments, offset: position + 8 };
      if (tag !== TAG.Item || length === UNDEFINED_LENGTH) {
        this.fail("invalid pixel data fragment", position);
      }
      this.countNode(position);
      const valueOffset = position + 8;
      this.need(valueOffset, length, end, "pixel data fragment");
      // Fragments are never changed, so even small ones stay in the file: a cine loop has thousands.
      fragments.push({ source: this.source, offset: valueOffset, length });
      position = valueOffset + length;
    }
    return this.fail("missing sequence delimiter after pixel data fragments", position);
  }
}

/** Reads the (0002,0010) Transfer Syntax UID value from parsed file meta elements. */
function metaTransferSyntaxUid(meta: Element[]): string | undefined {
  const element = meta.find((candidate) => candidate.tag === TAG.TransferSyntaxUID);
  if (!element?.bytes) return undefined;
  return element.bytes.toString("latin1").replace(/[\0 ]+$/, "");
}

/**
 * Parses a DICOM file or raw data set. For the deflated transfer syntax only
 * the file meta is parsed and `dataset` comes back empty: openDicom inflates
 * the rest and parses it with parseDataset.
 */
export function parseDicom(
  source: ByteSource,
  limits: ReadLimits = DEFAULT_READ_LIMITS,
): ParsedDicom {
  const parser: Parser = new Parser(source, limits);
  const head = source.read(0, Math.min(source.size, 256));
  let position = 0;
  let hasPreamble = false;
  if (head.length >= 132 && head.toString("latin1", 128, 132) === "DICM") {
    hasPreamble = true;
    position = 132;
  } else if (head.length >= 4 && head.toString("latin1", 0, 4) === "DICM") {
    position = 4;
  }

  let metaElements: Element[] = [];
  if (source.size >= position + 4 && parser.readTag(position, META_SYNTAX) >>> 16 === 0x0002) {
    const parsed = parser.parseElements(position, source.size, META_SYNTAX, 0, false, 0x0002);
    metaElements = parsed.elements;
    position = parsed.offset;
  } else if (hasPreamble) {
    parser.fail("file meta information is missing after the DICM prefix", position);
  }

  const declared = metaTransferSyntaxUid(metaElements);
  let transferSyntax: TransferSyntax | undefined;
  let guessed = false;
  if (declared !== undefined) {
    transferSyntax = lookupTransferSyntax(declared);
    if (!transferSyntax) {
      throw new DicomParseError("unknown transfer syntax in the file meta", position, {
        hint: "deidkit cannot parse this encoding; the file is left out of the output",
      });
    }
  } else {
    const rest = source.read(position, Math.min(source.size - position, 16));
    const syntax = guessRawSyntax(rest, 0);
    if (!syntax) parser.fail("no transfer syntax and the data set encoding is not recognisable", position);
    guessed = true;
    const uid = syntax.explicitVr
      ? syntax.littleEndian ? EXPLICIT_VR_LITTLE_ENDIAN : "1.2.840.10008.1.2.2"
      : "1.2.840.10008.1.2";
    transferSyntax = lookupTransferSyntax(uid)!;
  }

  const meta: Item = { elements: metaElements, undefinedLength: false, syntax: META_SYNTAX };
  if (transferSyntax.deflated) {
    return { hasPreamble, meta, dataset: { elements: [], undefinedLength: false, syntax: META_SYNTAX }, transferSyntax, transferSyntaxGuessed: guessed, datasetOffset: position };
  }
  const syntax: Syntax = { littleEndian: transferSyntax.littleEndian, explicitVr: transferSyntax.explicitVr };
  const parsed = parser.parseElements(position, source.size, syntax, 0, false);
  const dataset: Item = { elements: parsed.elements, undefinedLength: false, syntax };
  return { hasPreamble, meta, dataset, transferSyntax, transferSyntaxGuessed: guessed, datasetOffset: position };
}

/** Parses a bare data set (used for the inflated content of deflated files). */
export function parseDataset(source: ByteSource, syntax: Syntax, limits: ReadLimits = DEFAULT_READ_LIMITS): Item {
  const parser = new Parser(source, limits);
  const parsed = parser.parseElements(0, source.size, syntax, 0, false);
  return { elements: parsed.elements, undefinedLength: false, syntax };
}
