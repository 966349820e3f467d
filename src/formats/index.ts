/** The non-DICOM formats deidkit de-identifies, tried in this order. */
import { csvFormat } from "./csv.js";
import { jsonFormat } from "./json.js";
import { textFormat } from "./text.js";
import { niftiFormat } from "./nifti/index.js";
import { parquetFormat } from "./parquet.js";
import { passThroughFormat } from "./pass-through.js";
import type { FormatHandler } from "./types.js";
import { xlsxFormat } from "./xlsx/index.js";
import { zipFormat } from "./zip.js";

export const FORMATS: readonly FormatHandler[] = [jsonFormat, csvFormat, textFormat, niftiFormat, zipFormat, parquetFormat, xlsxFormat];

/** The handlers of one run: the user's pass-through patterns first, then the built-in formats. */
export class FormatSet {
  private readonly handlers: readonly FormatHandler[];

  constructor(passThrough: readonly string[] = []) {
    this.handlers = passThrough.length ? [passThroughFormat(passThrough), ...FORMATS] : FORMATS;
  }

  find(relativePath: string, head: Buffer): FormatHandler | undefined {
    return this.handlers.find((format) => format.matches(relativePath, head));
  }

  byName(name: string): FormatHandler | undefined {
    return this.handlers.find((format) => format.name === name);
  }
}
