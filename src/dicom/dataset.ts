import type { ByteSource } from "./source.js";
import type { Tag } from "./tags.js";

/** Byte order and VR encoding of a data set or of the items nested in it. */
export interface Syntax {
  littleEndian: boolean;
  explicitVr: boolean;
}

/** A value left in the input file and copied to the output without being loaded. */
export interface BulkRef {
  source: ByteSource;
  offset: number;
  length: number;
}

export type Fragment = Buffer | BulkRef;

export interface Element {
  tag: Tag;
  vr: string;
  /**
   * VR that the value is read and written with, when it differs from the VR
   * in the header. A value of a known tag stored as UN (PS3.5 6.2.2) is still
   * a name, a date or a UID, and must be de-identified as one.
   */
  valueVr?: string;
  /** The value length was 0xFFFFFFFF in the input (sequences, encapsulated pixel data). */
  undefinedLength: boolean;
  /** Raw value bytes in the input's byte order, for values up to the inline limit. */
  bytes?: Buffer;
  /** A large value copied from the input on write. */
  bulk?: BulkRef;
  /** Items of a sequence (VR SQ, or UN that contains a sequence). */
  items?: Item[];
  /** Encapsulated pixel data: the Basic Offset Table item followed by the fragments. */
  fragments?: Fragment[];
}

export interface Item {
  elements: Element[];
  undefinedLength: boolean;
  /** Encoding of this item's elements; items of UN sequences use implicit VR little endian. */
  syntax: Syntax;
}

/** Returns the VR an element's value is interpreted with. */
export function vrOf(element: Element): string {
  return element.valueVr ?? element.vr;
}

export function isBulkRef(value: unknown): value is BulkRef {
  return typeof value === "object" && value !== null && "source" in value && "offset" in value;
}

export function findElement(item: Item, tag: Tag): Element | undefined {
  for (const element of item.elements) {
    if (element.tag === tag) return element;
    if (element.tag > tag) return undefined;
  }
  return undefined;
}

/** Inserts or replaces an element, keeping the elements in ascending tag order. */
export function putElement(item: Item, element: Element): void {
  const elements = item.elements;
  let index = 0;
  while (index < elements.length && elements[index].tag < element.tag) index++;
  if (index < elements.length && elements[index].tag === element.tag) elements[index] = element;
  else elements.splice(index, 0, element);
}

export function removeElement(item: Item, tag: Tag): void {
  const index = item.elements.findIndex((element) => element.tag === tag);
  if (index >= 0) item.elements.splice(index, 1);
}
