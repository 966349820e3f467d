/**
 * The identifiers known for a run: learnt from every header in a first pass,
 * then used to clean free text and path names in the second.
 */
import { deriveDateShift, derivePatientId, deriveToken } from "../pseudonym/derive.js";
import { dateTextForms, parseDa, shiftDate, type CalendarDate } from "./dates.js";

export type IdentifierCategory =
  | "patient-name"
  | "patient-id"
  | "course-id"
  | "other-id"
  | "birth-date"
  | "date"
  | "staff-name"
  | "address"
  | "phone"
  | "institution"
  | "device";

/** Placeholders written where an identifier without a pseudonym was found in text. */
export const PLACEHOLDER: Readonly<Record<IdentifierCategory, string>> = {
  "patient-name": "[NAME]",
  "patient-id": "[ID]",
  "course-id": "[COURSE]",
  "other-id": "[ID]",
  "birth-date": "[DATE]",
  date: "[DATE]",
  "staff-name": "[NAME]",
  address: "[ADDRESS]",
  phone: "[PHONE]",
  institution: "[INSTITUTION]",
  device: "[DEVICE]",
};

/** Shorter strings match too much ordinary text to be searched for on their own. */
export const MIN_TERM_LENGTH = 3;

/** Chinese, Japanese and Korean names are often two characters long, and such a pair is distinctive. */
export const MIN_CJK_TERM_LENGTH = 2;

const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

function isSearchable(text: string): boolean {
  return text.length >= (CJK.test(text) ? MIN_CJK_TERM_LENGTH : MIN_TERM_LENGTH);
}

export interface Patient {
  /** The original Patient ID (or "" when files carry none); never written in plaintext. */
  key: string;
  pseudonymId: string;
  pseudonymName: string;
  /** Days added to every date of this patient (negative: into the past). */
  shiftDays: number;
  /** Whether the pseudonym came from a --map crosswalk. */
  mapped: boolean;
}

/** A recorded registry call: `[patientKey]` for `patient`, `[text, category, replacement]` for `addTerm`. */
export type JournalEntry = [string] | [string, IdentifierCategory, string];

export interface Term {
  text: string;
  category: IdentifierCategory;
  replacement: string;
}

/** Splits a PN value into name component groups and their components (PS3.5 6.2.1). */
export function nameComponents(pn: string): string[][] {
  return pn
    .split("=")
    .map((group) => group.split("^").map((part) => part.trim()))
    .filter((group) => group.some((part) => part.length > 0));
}

/** The ways people write one name: PN form, "Family, Given", "Given Family" and each part alone. */
export function nameForms(pn: string): { full: string[]; parts: string[] } {
  const full = new Set<string>();
  const parts = new Set<string>();
  for (const group of nameComponents(pn)) {
    const [family = "", given = "", middle = "", prefix = "", suffix = ""] = group;
    const raw = group.join("^").replace(/\^+$/, "");
    full.add(raw);
    if (family && given) {
      full.add(`${family}^${given}`);
      full.add(`${family}, ${given}`);
      full.add(`${family},${given}`);
      full.add(`${given} ${family}`);
      full.add(`${family} ${given}`);
      full.add(`${family}_${given}`);
      full.add(`${given}_${family}`);
      if (middle) {
        full.add(`${given} ${middle} ${family}`);
        full.add(`${family}, ${given} ${middle}`);
        full.add(`${given} ${middle.charAt(0)}. ${family}`);
      }
      if (prefix) full.add(`${prefix} ${given} ${family}`);
      if (suffix) full.add(`${given} ${family} ${suffix}`);
      // Names in Chinese, Japanese and Korean are written family first, without a space.
      full.add(`${family}${given}`);
    }
    for (const part of [family, given, middle]) {
      for (const word of part.split(/[\s,]+/)) if (isSearchable(word)) parts.add(word);
    }
  }
  return { full: [...full].filter(isSearchable), parts: [...parts] };
}

/** IDs are also written without their leading zeros. */
export function idForms(id: string): string[] {
  const forms = new Set([id]);
  const stripped = id.replace(/^0+(?=\d)/, "");
  if (stripped !== id && stripped.length >= 4) forms.add(stripped);
  return [...forms].filter((form) => form.length >= MIN_TERM_LENGTH);
}

/**
 * Collects identifiers and the patients they belong to. Terms are keyed by
 * their lower-case text; when two sources give a term different
 * replacements, the category's placeholder is used instead of guessing.
 */
export class IdentifierRegistry {
  readonly patients = new Map<string, Patient>();
  private readonly terms = new Map<string, Term>();
  private readonly crosswalk: ReadonlyMap<string, string>;
  private readonly shiftDates: boolean;
  /**
   * Every `addTerm` call in order, when recording: worker threads send it to
   * the main thread, which replays it so the result does not depend on how
   * files were spread over workers.
   */
  journal: JournalEntry[] | undefined;

  constructor(
    private readonly secret: Uint8Array,
    options: { crosswalk?: ReadonlyMap<string, string>; shiftDates: boolean },
  ) {
    this.crosswalk = options.crosswalk ?? new Map();
    this.shiftDates = options.shiftDates;
  }

  patient(key: string): Patient {
    let patient = this.patients.get(key);
    if (!patient) {
      this.journal?.push([key]);
      // Crosswalks often lose leading zeros (spreadsheets read IDs as numbers).
      const mappedId = this.crosswalk.get(key) ?? this.crosswalk.get(key.replace(/^0+(?=\d)/, ""));
      const pseudonymId = mappedId ?? derivePatientId(this.secret, key);
      patient = {
        key,
        pseudonymId,
        pseudonymName: pseudonymId,
        shiftDays: deriveDateShift(this.secret, key),
        mapped: mappedId !== undefined,
      };
      this.patients.set(key, patient);
      // Keys made from name and birth date ("name:...") are not IDs; their parts are learnt on their own.
      if (key.length > 0 && !key.startsWith("name:")) this.addIdForms(key, "patient-id", pseudonymId);
    }
    return patient;
  }

  /** Replays calls recorded in another thread's journal, in order. */
  replay(journal: readonly JournalEntry[]): void {
    for (const entry of journal) {
      if (entry.length === 1) this.patient(entry[0]);
      else this.addTerm(entry[0], entry[1], entry[2]);
    }
  }

  /** Returns the patient whose original ID is `key`, if one was registered. */
  findPatient(key: string): Patient | undefined {
    return this.patients.get(key);
  }

  addTerm(text: string, category: IdentifierCategory, replacement: string = PLACEHOLDER[category]): void {
    this.journal?.push([text, category, replacement]);
    const trimmed = text.trim();
    if (!isSearchable(trimmed)) return;
    const key = trimmed.toLowerCase();
    const existing = this.terms.get(key);
    if (!existing) {
      this.terms.set(key, { text: trimmed, category, replacement });
      return;
    }
    if (existing.replacement !== replacement) {
      // Patient pseudonyms win over placeholders; two different pseudonyms fall back to a placeholder.
      const existingIsPlaceholder = existing.replacement === PLACEHOLDER[existing.category];
      const newIsPlaceholder = replacement === PLACEHOLDER[category];
      if (existingIsPlaceholder && !newIsPlaceholder) this.terms.set(key, { text: trimmed, category, replacement });
      else if (!existingIsPlaceholder && !newIsPlaceholder) existing.replacement = PLACEHOLDER[existing.category];
    }
  }

  addIdForms(id: string, category: IdentifierCategory, replacement?: string): void {
    for (const form of idForms(id.trim())) this.addTerm(form, category, replacement);
  }

  /**
   * Registers a course (treatment course) ID. Its replacement is "C-" and 8
   * Crockford base32 characters of a keyed hash of the patient and the
   * course, so the same course gets the same pseudonym in every file and run.
   */
  addCourse(courseId: string, patient: Patient | undefined): string {
    const trimmed = courseId.trim();
    const pseudonym = `C-${deriveToken(this.secret, "course", `${patient?.key ?? ""}\0${trimmed}`)}`;
    this.addTerm(trimmed, "course-id", pseudonym);
    return pseudonym;
  }

  addPatientName(pn: string, patient: Patient): void {
    const forms = nameForms(pn);
    for (const form of [...forms.full, ...forms.parts]) this.addTerm(form, "patient-name", patient.pseudonymName);
  }

  addOtherName(pn: string): void {
    const forms = nameForms(pn);
    for (const form of [...forms.full, ...forms.parts]) this.addTerm(form, "staff-name");
  }

  /** Adds a DA value in its textual forms; shifted by the patient's shift when dates are shifted. */
  addDate(da: string, category: "date" | "birth-date", patient: Patient | undefined): void {
    const date = parseDa(da.trim());
    if (!date) return;
    const shifted: CalendarDate | undefined =
      category === "date" && this.shiftDates && patient ? shiftDate(date, patient.shiftDays) : undefined;
    for (const [text, replacement] of dateTextForms(date, shifted)) {
      this.addTerm(text, category, replacement);
    }
  }

  addAddress(text: string, category: "address" | "institution"): void {
    this.addTerm(text, category);
    for (const part of text.split(/[\n\r^,;]+/)) {
      if (part.trim().length >= 6) this.addTerm(part, category);
    }
  }

  allTerms(): Term[] {
    return [...this.terms.values()];
  }
}
