/** The non-DICOM formats deidkit de-identifies, tried in this order. */
import { textFormat } from "./text.js";
import type { FormatHandler } from "./types.js";

export const FORMATS: readonly FormatHandler[] = [textFormat];

export function findFormat(relativePath: string, head: Buffer): FormatHandler | undefined {
  return FORMATS.find((format) => format.matches(relativePath, head));
}

export function formatByName(name: string): FormatHandler | undefined {
  return FORMATS.find((format) => format.name === name);
}
