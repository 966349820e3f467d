/**
 * Dates written as text in pipeline files: finding them, shifting them while
 * keeping their format, or replacing them with a placeholder.
 */
import { PLACEHOLDER } from "../deid/identifiers.js";
import { shiftDate, type CalendarDate } from "../deid/dates.js";

const DAY_SECONDS = 86_400;

const MONTH_NAMES: readonly (readonly string[])[] = [
  ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"],
  ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"],
];
const MONTH_ABBREVIATIONS: readonly string[] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

const MONTH_WORD = [...new Set([...MONTH_NAMES.flat(), ...MONTH_ABBREVIATIONS, "Sept"])].sort((a, b) => b.length - a.length).join("|");

/** A time of day after a date, kept as it is when the date is shifted. */
const TIME = String.raw`(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?`;
const SHORT_TIME = String.raw`(?: \d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?`;

/**
 * The date forms recognised, as named groups of one expression. Each
 * alternative keeps the digits of its date parts in groups so that the
 * shifted date can be written with the same widths.
 */
const DATE_PATTERN = new RegExp(
  [
    // 2019-03-15, 2019/03/15, 2019-03-15T10:30:00.5+01:00 (ISO 8601 and RFC 3339).
    String.raw`(?<![\d.])(?<isoYear>\d{4})(?<isoSep>[-/])(?<isoMonth>\d{1,2})\k<isoSep>(?<isoDay>\d{1,2})(?<isoTime>${TIME})(?![\d])`,
    // 20190315 and DICOM DT 20190315103000.5+0100.
    String.raw`(?<![\d.])(?<daYear>\d{4})(?<daMonth>\d{2})(?<daDay>\d{2})(?<daTime>(?:\d{2}){0,3}(?:\.\d{1,6})?(?:[+-]\d{4})?)(?![\d])`,
    // 15.03.2019 (German and other European usage).
    String.raw`(?<![\d.])(?<dotDay>\d{1,2})\.(?<dotMonth>\d{1,2})\.(?<dotYear>\d{4})(?<dotTime>${SHORT_TIME})(?![\d]|\.\d)`,
    // 03/15/2019 (US) or 15/03/2019 when the first number cannot be a month.
    String.raw`(?<![\d/])(?<slashFirst>\d{1,2})/(?<slashSecond>\d{1,2})/(?<slashYear>\d{4})(?<slashTime>${SHORT_TIME})(?![\d/])`,
    // 15-03-2019.
    String.raw`(?<![\d-])(?<dashDay>\d{1,2})-(?<dashMonth>\d{1,2})-(?<dashYear>\d{4})(?<dashTime>${SHORT_TIME})(?![\d-])`,
    // 15 March 2019, 15. März 2019, 15-Mar-2019.
    String.raw`(?<![\p{L}\p{N}])(?<nameDay>\d{1,2})(?<nameSep1>\.? |-)(?<nameMonth>${MONTH_WORD})(?<nameSep2>\.? |-)(?<nameYear>\d{4})(?![\p{L}\p{N}])`,
    // March 15, 2019.
    String.raw`(?<![\p{L}\p{N}])(?<usMonth>${MONTH_WORD})(?<usSep>\.? )(?<usDay>\d{1,2})(?<usComma>,? )(?<usYear>\d{4})(?![\p{L}\p{N}])`,
  ].join("|"),
  "giu",
);

/** Every recognised form has a four-digit year, so text without one is skipped quickly. */
const YEAR = /\d{4}/;

/** Start of every recognised date: digits and a separator, or a month name and a space. */
const DATE_START = /^(?:\d{1,4}[-./ ]|\d{8}|\p{L}{3,9}\.? \d)/u;

/** Results of replaceDateText by shift and text: tables repeat their dates in many rows. */
const replacedTexts = new Map<string, DateTextResult>();
const MAX_REMEMBERED_TEXTS = 65_536;

export interface DateTextResult {
  text: string;
  /** Number of dates shifted or replaced. */
  replaced: number;
}

function isValidDate(date: CalendarDate): boolean {
  if (date.month < 1 || date.month > 12 || date.day < 1) return false;
  const probe = new Date(Date.UTC(date.year, date.month - 1, date.day));
  return probe.getUTCDate() === date.day && probe.getUTCMonth() === date.month - 1;
}

const pad = (value: number, width: number): string => String(value).padStart(width, "0");

/** The month number of a month word, and a function that writes another month in the same language and case. */
function readMonthWord(word: string): { month: number; write(month: number): string } | undefined {
  const lower = word.toLowerCase();
  const withCase = (text: string): string => (word === word.toUpperCase() ? text.toUpperCase() : word === word.toLowerCase() ? text.toLowerCase() : text);
  for (const names of MONTH_NAMES) {
    const index = names.findIndex((name) => name.toLowerCase() === lower);
    if (index >= 0) return { month: index + 1, write: (month) => withCase(names[month - 1]) };
  }
  const index = lower === "sept" ? 8 : MONTH_ABBREVIATIONS.findIndex((name) => name.toLowerCase() === lower);
  if (index >= 0) return { month: index + 1, write: (month) => withCase(MONTH_ABBREVIATIONS[month - 1]) };
  return undefined;
}

type Groups = Record<string, string | undefined>;

/** A date found in text: its calendar date and how to write another date the same way. */
interface FoundDate {
  date: CalendarDate;
  write(date: CalendarDate): string;
  /** True for the compact YYYYMMDD form, which identifiers can also look like. */
  compact: boolean;
}

function readNumeric(year: string, month: string, day: string): CalendarDate {
  return { year: Number(year), month: Number(month), day: Number(day) };
}

/** Reads the date of one match of DATE_PATTERN; undefined when its numbers are no calendar date. */
function readMatch(groups: Groups): FoundDate | undefined {
  const g = groups as Record<string, string>;
  let found: FoundDate | undefined;
  if (g.isoYear !== undefined) {
    found = {
      date: readNumeric(g.isoYear, g.isoMonth, g.isoDay),
      write: (d) => `${pad(d.year, 4)}${g.isoSep}${pad(d.month, g.isoMonth.length)}${g.isoSep}${pad(d.day, g.isoDay.length)}${g.isoTime}`,
      compact: false,
    };
  } else if (g.daYear !== undefined) {
    found = { date: readNumeric(g.daYear, g.daMonth, g.daDay), write: (d) => `${pad(d.year, 4)}${pad(d.month, 2)}${pad(d.day, 2)}${g.daTime}`, compact: true };
  } else if (g.dotYear !== undefined) {
    found = {
      date: readNumeric(g.dotYear, g.dotMonth, g.dotDay),
      write: (d) => `${pad(d.day, g.dotDay.length)}.${pad(d.month, g.dotMonth.length)}.${pad(d.year, 4)}${g.dotTime}`,
      compact: false,
    };
  } else if (g.slashYear !== undefined) {
    // Month first (US) unless the first number cannot be a month.
    const dayFirst = Number(g.slashFirst) > 12;
    const [monthText, dayText] = dayFirst ? [g.slashSecond, g.slashFirst] : [g.slashFirst, g.slashSecond];
    found = {
      date: readNumeric(g.slashYear, monthText, dayText),
      write: (d) => {
        const month = pad(d.month, monthText.length);
        const day = pad(d.day, dayText.length);
        return `${dayFirst ? day : month}/${dayFirst ? month : day}/${pad(d.year, 4)}${g.slashTime}`;
      },
      compact: false,
    };
  } else if (g.dashYear !== undefined) {
    found = {
      date: readNumeric(g.dashYear, g.dashMonth, g.dashDay),
      write: (d) => `${pad(d.day, g.dashDay.length)}-${pad(d.month, g.dashMonth.length)}-${pad(d.year, 4)}${g.dashTime}`,
      compact: false,
    };
  } else if (g.nameYear !== undefined) {
    const month = readMonthWord(g.nameMonth);
    if (!month) return undefined;
    found = {
      date: { year: Number(g.nameYear), month: month.month, day: Number(g.nameDay) },
      write: (d) => `${pad(d.day, g.nameDay.length)}${g.nameSep1}${month.write(d.month)}${g.nameSep2}${pad(d.year, 4)}`,
      compact: false,
    };
  } else if (g.usYear !== undefined) {
    const month = readMonthWord(g.usMonth);
    if (!month) return undefined;
    found = {
      date: { year: Number(g.usYear), month: month.month, day: Number(g.usDay) },
      write: (d) => `${month.write(d.month)}${g.usSep}${d.day}${g.usComma}${pad(d.year, 4)}`,
      compact: false,
    };
  }
  return found && isValidDate(found.date) ? found : undefined;
}

/**
 * Shifts every date in `text` by `shiftDays`, keeping its format and any
 * time of day after it, or replaces each date (with its time) by "[DATE]"
 * when `shiftDays` is undefined. Recognised forms: YYYY-MM-DD and
 * YYYY/MM/DD with an optional ISO 8601 time and offset, YYYYMMDD with an
 * optional DICOM DT time, DD.MM.YYYY, MM/DD/YYYY (DD/MM/YYYY when the first
 * number is above 12), DD-MM-YYYY, and dates with English or German month
 * names. Numbers that are no calendar date are left alone.
 *
 * NOTE: YYYYMMDD also matches 8-digit identifiers that happen to be valid
 * dates, so call this on text known to contain dates. Free text is better
 * served by the run's cleaner, which contains the dates the registry learnt.
 */
export function replaceDateText(text: string, shiftDays: number | undefined): DateTextResult {
  if (!YEAR.test(text)) return { text, replaced: 0 };
  const memoKey = `${shiftDays ?? ""}\0${text}`;
  const remembered = replacedTexts.get(memoKey);
  if (remembered) return remembered;
  const result = replaceDates(text, shiftDays);
  if (text.length <= 256) {
    if (replacedTexts.size >= MAX_REMEMBERED_TEXTS) replacedTexts.clear();
    replacedTexts.set(memoKey, result);
  }
  return result;
}

function replaceDates(text: string, shiftDays: number | undefined): DateTextResult {
  let replaced = 0;
  const out = text.replace(DATE_PATTERN, (match: string, ...rest: unknown[]) => {
    const found = readMatch(rest[rest.length - 1] as Groups);
    if (!found) return match;
    replaced++;
    return shiftDays === undefined ? PLACEHOLDER.date : found.write(shiftDate(found.date, shiftDays));
  });
  return { text: out, replaced };
}

/** Finds the calendar dates written in `text`, in the forms replaceDateText recognises. */
export function datesIn(text: string): CalendarDate[] {
  const dates: CalendarDate[] = [];
  for (const match of text.matchAll(DATE_PATTERN)) {
    const found = readMatch(match.groups as Groups);
    if (found) dates.push(found.date);
  }
  return dates;
}

/**
 * True when the whole of `text` (ignoring surrounding white space) is one
 * date, optionally with a time, in a form other than YYYYMMDD.
 */
export function isDateText(text: string): boolean {
  const trimmed = text.trim();
  if (trimmed.length < 8 || trimmed.length > 40 || !DATE_START.test(trimmed)) return false;
  const matches = [...trimmed.matchAll(DATE_PATTERN)];
  if (matches.length !== 1 || matches[0][0] !== trimmed) return false;
  const found = readMatch(matches[0].groups as Groups);
  return found !== undefined && !found.compact;
}

/** Seconds (9 or 10 digits) or milliseconds (12 or 13 digits) since 1970, with an optional fraction. */
const EPOCH_PATTERN = /^(\s*)(\d{9,10}|\d{12,13})(\.\d+)?(\s*)$/;

/**
 * Shifts or replaces the date in a value known to be a date, such as a
 * column named plan_date. Besides the forms of replaceDateText it reads
 * Unix times in seconds or milliseconds. A value with digits but no
 * recognised date (a year alone, "03/2019") becomes "[DATE]", so that no
 * part of a date survives. Values without digits ("unknown") are kept.
 */
export function replaceDateValue(text: string, shiftDays: number | undefined): DateTextResult {
  const epoch = EPOCH_PATTERN.exec(text);
  if (epoch) {
    if (shiftDays === undefined) return { text: PLACEHOLDER.date, replaced: 1 };
    const [, before, whole, fraction = "", after] = epoch;
    const unit = whole.length >= 12 ? DAY_SECONDS * 1000 : DAY_SECONDS;
    return { text: `${before}${BigInt(whole) + BigInt(shiftDays * unit)}${fraction}${after}`, replaced: 1 };
  }
  const result = replaceDateText(text, shiftDays);
  if (result.replaced > 0) return result;
  if (/\d/.test(text)) return { text: PLACEHOLDER.date, replaced: 1 };
  return result;
}
