/**
 * Dates as workbooks store them: serial day numbers in cells with a date
 * number format, and YYYYMMDD numbers. Dates written as text are read by
 * ../date-text.ts.
 */
import { parseDa, type CalendarDate } from "../../deid/dates.js";

const DAY_MS = 86_400_000;

/** Built-in number formats (ECMA-376 Part 1, 18.8.30) that show a date. Formats 18 to 21 and 45 to 47 show only a time. */
const BUILT_IN_DATE_FORMATS = new Set([14, 15, 16, 17, 22, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 50, 51, 52, 53, 54, 55, 56, 57, 58]);

/**
 * True when a custom number format shows a day or a year (a month-only
 * format such as "mmm" is not recognised). Quoted text,
 * escaped characters and bracketed parts ([Red], [$-409], [h]) are ignored,
 * so an elapsed-time format such as [h]:mm is not a date.
 */
export function isDateFormatCode(formatCode: string): boolean {
  const stripped = formatCode.replace(/"[^"]*"/g, "").replace(/\\./g, "").replace(/\[[^\]]*\]/g, "").replace(/_.|\*./g, "");
  return /[dy]/i.test(stripped);
}

export function isDateFormat(numFmtId: number, customFormats: ReadonlyMap<number, string>): boolean {
  const custom = customFormats.get(numFmtId);
  if (custom !== undefined) return isDateFormatCode(custom);
  return BUILT_IN_DATE_FORMATS.has(numFmtId);
}

/** Largest serial Excel shows as a date (9999-12-31). */
const MAX_SERIAL = 2_958_465;

/**
 * Returns the calendar date of a serial day number. In the 1900 system Excel counts
 * a 29 February 1900 that never was, so serials from 61 on are counted from
 * 1899-12-30; earlier serials are not converted.
 */
export function serialToDate(serial: number, date1904: boolean): CalendarDate | undefined {
  if (!Number.isFinite(serial) || serial > MAX_SERIAL) return undefined;
  const day = Math.floor(serial);
  if (date1904 ? day < 0 : day < 61) return undefined;
  const epoch = date1904 ? Date.UTC(1904, 0, 1) : Date.UTC(1899, 11, 30);
  const date = new Date(epoch + day * DAY_MS);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

/**
 * Shifts the date of a serial day number written as text, keeping the time
 * fraction. A value below 1 is a time of day with no date and is kept.
 * Returns undefined when the text is not a number.
 */
export function shiftSerial(text: string, days: number): string | undefined {
  const value = Number(text);
  if (!text.trim() || !Number.isFinite(value)) return undefined;
  if (value < 1) return text;
  return String(value + days);
}

/** Returns the date of a number written as eight digits (20190316), or undefined when it is no valid date. */
export function compactDate(text: string): CalendarDate | undefined {
  return /^\d{8}$/.test(text) ? parseDa(text) : undefined;
}

/** Formats a date as ISO 8601 (YYYY-MM-DD). */
export function toIsoDate(date: CalendarDate): string {
  const pad = (value: number, width: number): string => String(value).padStart(width, "0");
  return `${pad(date.year, 4)}-${pad(date.month, 2)}-${pad(date.day, 2)}`;
}
