/**
 * Serialises data sets back to bytes. The output is a list of parts: small
 * buffers for headers and references to bulk values that stay in the input
 * file until they are copied (see emitParts in file-io.ts).
 */
import type { BulkRef, Element, Fragment, Item, Syntax } from "./dataset.js";
import { isBulkRef } from "./dataset.js";
import { TAG } from "./tags.js";
import { hasLongLength } from "./vr.js";

export type Part = Buffer | BulkRef;

const UNDEFINED_LENGTH = 0xffffffff;

function valueLength(value: Buffer | BulkRef): number {
  return isBulkRef(value) ? value.length : value.length;
}

function headerLength(element: Element, syntax: Syntax): number {
  if (!syntax.explicitVr) return 8;
  return hasLongLength(element.vr) ? 12 : 8;
}

/** Encoded length of an item including its 8-byte header and any delimiter. */
function itemLength(item: Item): number {
  let length = 8;
  for (const element of item.elements) length += elementLength(element, item.syntax);
  if (item.undefinedLength) length += 8;
  return length;
}

function contentLength(element: Element): number {
  if (element.items) {
    let length = 0;
    for (const item of element.items) length += itemLength(item);
    return length;
  }
  if (element.fragments) {
    let length = 0;
    for (const fragment of element.fragments) length += 8 + valueLength(fragment);
    return length;
  }
  if (element.bulk) return element.bulk.length;
  return element.bytes?.length ?? 0;
}

/** Encoded length of an element including its header and any delimiter. */
export function elementLength(element: Element, syntax: Syntax): number {
  const delimiter = element.undefinedLength ? 8 : 0;
  return headerLength(element, syntax) + contentLength(element) + delimiter;
}

class PartWriter {
  readonly parts: Part[] = [];
  private buffer = Buffer.allocUnsafe(64 * 1024);
  private used = 0;

  private ensure(size: number): void {
    if (this.used + size <= this.buffer.length) return;
    this.flush();
    if (size > this.buffer.length) this.buffer = Buffer.allocUnsafe(size);
  }

  flush(): void {
    if (this.used > 0) {
      this.parts.push(Buffer.from(this.buffer.subarray(0, this.used)));
      this.used = 0;
    }
  }

  uint16(value: number, littleEndian: boolean): void {
    this.ensure(2);
    if (littleEndian) this.buffer.writeUInt16LE(value, this.used);
    else this.buffer.writeUInt16BE(value, this.used);
    this.used += 2;
  }

  uint32(value: number, littleEndian: boolean): void {
    this.ensure(4);
    if (littleEndian) this.buffer.writeUInt32LE(value, this.used);
    else this.buffer.writeUInt32BE(value, this.used);
    this.used += 4;
  }

  bytes(value: Buffer): void {
    if (value.length > 16 * 1024) {
      this.flush();
      this.parts.push(value);
      return;
    }
    this.ensure(value.length);
    value.copy(this.buffer, this.used);
    this.used += value.length;
  }

  bulk(value: BulkRef): void {
    this.flush();
    this.parts.push(value);
  }

  tag(tag: number, littleEndian: boolean): void {
    this.uint16(tag >>> 16, littleEndian);
    this.uint16(tag & 0xffff, littleEndian);
  }
}

function writeElement(out: PartWriter, element: Element, syntax: Syntax): void {
  const littleEndian = syntax.littleEndian;
  const length = element.undefinedLength ? UNDEFINED_LENGTH : contentLength(element);
  out.tag(element.tag, littleEndian);
  if (syntax.explicitVr) {
    out.bytes(Buffer.from(element.vr, "latin1"));
    if (hasLongLength(element.vr)) {
      out.uint16(0, littleEndian);
      out.uint32(length, littleEndian);
    } else {
      if (length > 0xffff) throw new RangeError(`value of ${element.vr} too long for a 16-bit length`);
      out.uint16(length, littleEndian);
    }
  } else {
    out.uint32(length, littleEndian);
  }

  if (element.items) {
    for (const item of element.items) writeItem(out, item);
  } else if (element.fragments) {
    for (const fragment of element.fragments) writeFragment(out, fragment, littleEndian);
  } else if (element.bulk) {
    out.bulk(element.bulk);
  } else if (element.bytes) {
    out.bytes(element.bytes);
  }
  if (element.undefinedLength) {
    // The items of a UN value, and so its delimiter, are implicit VR little
    // endian even in a big endian data set (PS3.5 section 6.2.2).
    const delimiterLittleEndian = element.vr === "UN" && element.items ? true : littleEndian;
    out.tag(TAG.SequenceDelimitationItem, delimiterLittleEndian);
    out.uint32(0, delimiterLittleEndian);
  }
}

/** Writes an item header, elements and delimiter in the item's own byte order. */
function writeItem(out: PartWriter, item: Item): void {
  const littleEndian = item.syntax.littleEndian;
  out.tag(TAG.Item, littleEndian);
  out.uint32(item.undefinedLength ? UNDEFINED_LENGTH : itemLength(item) - 8, littleEndian);
  for (const element of item.elements) writeElement(out, element, item.syntax);
  if (item.undefinedLength) {
    out.tag(TAG.ItemDelimitationItem, littleEndian);
    out.uint32(0, littleEndian);
  }
}

function writeFragment(out: PartWriter, fragment: Fragment, littleEndian: boolean): void {
  out.tag(TAG.Item, littleEndian);
  out.uint32(valueLength(fragment), littleEndian);
  if (isBulkRef(fragment)) out.bulk(fragment);
  else out.bytes(fragment);
}

/** Serialises the elements of a data set (no item header) in its own syntax. */
export function writeDataset(dataset: Item): Part[] {
  const out = new PartWriter();
  for (const element of dataset.elements) writeElement(out, element, dataset.syntax);
  out.flush();
  return out.parts;
}

/**
 * Serialises a Part 10 file: a zero preamble, "DICM", the file meta group in
 * explicit VR little endian with a correct group length, then the data set.
 */
export function writePart10(meta: Element[], dataset: Item | undefined): Part[] {
  const metaSyntax: Syntax = { littleEndian: true, explicitVr: true };
  const body = meta.filter((element) => element.tag !== TAG.FileMetaInformationGroupLength);
  let groupLength = 0;
  for (const element of body) groupLength += elementLength(element, metaSyntax);
  const lengthValue = Buffer.alloc(4);
  lengthValue.writeUInt32LE(groupLength, 0);

  const out = new PartWriter();
  out.bytes(Buffer.alloc(128));
  out.bytes(Buffer.from("DICM", "latin1"));
  writeElement(out, { tag: TAG.FileMetaInformationGroupLength, vr: "UL", undefinedLength: false, bytes: lengthValue }, metaSyntax);
  for (const element of body) writeElement(out, element, metaSyntax);
  if (dataset) for (const element of dataset.elements) writeElement(out, element, dataset.syntax);
  out.flush();
  return out.parts;
}
