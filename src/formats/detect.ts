/**
 * Recognition of the formats whose modules load large packages (zip and XLSX through
 * yauzl and archiver, Parquet through hyparquet) recognise their files, and
 * the Parquet size cap that verify shares. Kept apart so that FormatSet and
 * verify need not import those modules; FormatSet imports each on the first
 * file it takes.
 */

const ZIP_LOCAL_HEADER = Buffer.from([0x50, 0x4b, 0x03, 0x04]);

export function isZipFile(relativePath: string, head: Buffer): boolean {
  const name = relativePath.slice(relativePath.lastIndexOf("/") + 1);
  if (/\.zip$/i.test(name)) return true;
  // By content only without an extension, so that .xlsx, .docx and other zip-based formats go to their own handlers.
  return !name.includes(".") && head.subarray(0, 4).equals(ZIP_LOCAL_HEADER);
}

/** Parquet is read whole, and decoded values take far more memory than their compressed bytes. */
export const MAX_PARQUET_BYTES = 256 * 1024 * 1024;

export function isParquetFile(relativePath: string, head: Buffer): boolean {
  return /\.(parquet|parq|pq)$/i.test(relativePath) || head.subarray(0, 4).toString("latin1") === "PAR1";
}

export function isXlsxFile(relativePath: string): boolean {
  return /\.(xlsx|xlsm|xltx|xltm)$/i.test(relativePath);
}
