/** The non-DICOM formats deidkit de-identifies, tried in this order. */
import { csvFormat } from "./csv.js";
import { isParquetFile, isXlsxFile, isZipFile } from "./detect.js";
import { jsonFormat } from "./json.js";
import { textFormat } from "./text.js";
import { niftiFormat } from "./nifti/index.js";
import { passThroughFormat } from "./pass-through.js";
import type { FormatHandler } from "./types.js";

/**
 * A handler whose module is imported when it first learns or writes a file.
 * Zip, XLSX and Parquet load packages that take a tenth of a second to
 * import, which every worker thread would pay for trees without such files.
 */
function importedOnUse(name: string, matches: FormatHandler["matches"], load: () => Promise<FormatHandler>): FormatHandler {
  let handler: Promise<FormatHandler> | undefined;
  const loaded = () => (handler ??= load());
  return {
    name,
    matches,
    learn: async (path, context) => (await loaded()).learn?.(path, context),
    write: async (path, targetPath, context) => (await loaded()).write(path, targetPath, context),
  };
}

const zipFormat = importedOnUse("zip", isZipFile, async () => (await import("./zip.js")).zipFormat);
const parquetFormat = importedOnUse("parquet", isParquetFile, async () => (await import("./parquet.js")).parquetFormat);
const xlsxFormat = importedOnUse("xlsx", isXlsxFile, async () => (await import("./xlsx/index.js")).xlsxFormat);

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
