/** Date parsing, shifting and the textual forms in which people write dates. */

const DAY_MS = 86_400_000;

export interface CalendarDate {
  year: number;
  month: number;
  day: number;
}

function isValid(date: CalendarDate): boolean {
  const probe = new Date(Date.UTC(date.year, date.month - 1, date.day));
  return probe.getUTCFullYear() === date.year && probe.getUTCMonth() === date.month - 1 && probe.getUTCDate() === date.day;
}

/** Parses a DA value (YYYYMMDD, PS3.5 Table 6.2-1); returns undefined when invalid. */
export function parseDa(value: string): CalendarDate | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(value);
  if (!match) return undefined;
  const date = { year: Number(match[1]), month: Number(match[2]), day: Number(match[3]) };
  return isValid(date) ? date : undefined;
}

export function shiftDate(date: CalendarDate, days: number): CalendarDate {
  const shifted = new Date(Date.UTC(date.year, date.month - 1, date.day) + days * DAY_MS);
  return { year: shifted.getUTCFullYear(), month: shifted.getUTCMonth() + 1, day: shifted.getUTCDate() };
}

const pad = (value: number, width: number): string => String(value).padStart(width, "0");

export function formatDa(date: CalendarDate): string {
  return `${pad(date.year, 4)}${pad(date.month, 2)}${pad(date.day, 2)}`;
}

/** Shifts a DA value; returns undefined when the value is not a valid date. */
export function shiftDa(value: string, days: number): string | undefined {
  const date = parseDa(value);
  return date ? formatDa(shiftDate(date, days)) : undefined;
}

/**
 * Shifts the date part of a DT value (YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]),
 * keeping its precision, time and offset. Returns undefined when invalid.
 */
export function shiftDt(value: string, days: number): string | undefined {
  const match = /^(\d{4})(\d{2})?(\d{2})?([0-9.]*)([+-]\d{4})?$/.exec(value);
  if (!match) return undefined;
  const [, year, month, day, time, offset] = match;
  const date = { year: Number(year), month: Number(month ?? "01"), day: Number(day ?? "01") };
  if (!isValid(date)) return undefined;
  const shifted = shiftDate(date, days);
  let out = pad(shifted.year, 4);
  if (month !== undefined) out += pad(shifted.month, 2);
  if (day !== undefined) out += pad(shifted.day, 2);
  return out + (time ?? "") + (offset ?? "");
}

/** One way of writing a date in text. */
interface DateFormat {
  format(date: CalendarDate): string;
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const MONTHS_DE = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"];
const month = (d: CalendarDate): string => MONTHS[d.month - 1];
const monthShort = (d: CalendarDate): string => MONTHS[d.month - 1].slice(0, 3);

/** The forms of one date that text cleaning searches for: numeric (ISO, DICOM, European, US) and with month names. */
export const DATE_TEXT_FORMATS: readonly DateFormat[] = [
  { format: (d) => formatDa(d) },
  { format: (d) => `${pad(d.year, 4)}-${pad(d.month, 2)}-${pad(d.day, 2)}` },
  { format: (d) => `${pad(d.year, 4)}/${pad(d.month, 2)}/${pad(d.day, 2)}` },
  { format: (d) => `${pad(d.day, 2)}.${pad(d.month, 2)}.${pad(d.year, 4)}` },
  { format: (d) => `${pad(d.day, 2)}/${pad(d.month, 2)}/${pad(d.year, 4)}` },
  { format: (d) => `${pad(d.month, 2)}/${pad(d.day, 2)}/${pad(d.year, 4)}` },
  { format: (d) => `${pad(d.day, 2)}-${pad(d.month, 2)}-${pad(d.year, 4)}` },
  { format: (d) => `${d.day} ${month(d)} ${pad(d.year, 4)}` },
  { format: (d) => `${pad(d.day, 2)} ${month(d)} ${pad(d.year, 4)}` },
  { format: (d) => `${month(d)} ${d.day}, ${pad(d.year, 4)}` },
  { format: (d) => `${d.day} ${monthShort(d)} ${pad(d.year, 4)}` },
  { format: (d) => `${pad(d.day, 2)}-${monthShort(d)}-${pad(d.year, 4)}` },
  { format: (d) => `${monthShort(d)} ${d.day}, ${pad(d.year, 4)}` },
  { format: (d) => `${d.day}. ${MONTHS_DE[d.month - 1]} ${pad(d.year, 4)}` },
  { format: (d) => `${d.day}.${d.month}.${pad(d.year, 4)}` },
  { format: (d) => `${pad(d.day, 2)}.${pad(d.month, 2)}.${pad(d.year % 100, 2)}` },
  { format: (d) => `${d.day}/${d.month}/${pad(d.year, 4)}` },
  { format: (d) => `${d.month}/${d.day}/${pad(d.year, 4)}` },
  { format: (d) => `${pad(d.year, 4)}-${d.month}-${d.day}` },
  { format: (d) => `${pad(d.day, 2)}${pad(d.month, 2)}${pad(d.year, 4)}` },
];

/** Each textual form of `date` paired with the same form of `replacement`. */
export function dateTextForms(date: CalendarDate, replacement: CalendarDate | undefined): Array<[string, string | undefined]> {
  const seen = new Set<string>();
  const forms: Array<[string, string | undefined]> = [];
  for (const format of DATE_TEXT_FORMATS) {
    const text = format.format(date);
    if (seen.has(text)) continue;
    seen.add(text);
    forms.push([text, replacement ? format.format(replacement) : undefined]);
  }
  return forms;
}

/**
 * Caps an AS value (PS3.5 Table 6.2-1: nnnD, nnnW, nnnM or nnnY) at 89
 * years: any older age becomes "090Y", because very old ages are rare enough
 * to identify (HIPAA Safe Harbor groups every age over 89 the same way).
 * An invalid age becomes empty.
 */
export function capAge(value: string): string {
  const match = /^(\d{3})([DWMY])$/.exec(value);
  if (!match) return "";
  const count = Number(match[1]);
  const years = { D: count / 365.25, W: (count * 7) / 365.25, M: count / 12, Y: count }[match[2] as "D" | "W" | "M" | "Y"];
  return years > 89 ? "090Y" : value;
}
