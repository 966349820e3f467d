/**
 * Rules for values of named fields (JSON keys, table columns) by field
 * class: the identifiers a value teaches the registry in pass 1, and its
 * replacement in pass 2.
 */
import type { CleanResult, TextCleaner } from "../deid/cleaner.js";
import { capAge, formatDa } from "../deid/dates.js";
import { PLACEHOLDER, type IdentifierRegistry, type Patient } from "../deid/identifiers.js";
import { datesIn, isDateText, replaceDateValue, type DateTextResult } from "./date-text.js";
import { categoryOfField, toPersonName, type FieldClass } from "./fields.js";
import type { WriteContext } from "./types.js";

/**
 * Values that name no one. They are kept as they are and never learnt, so
 * that a reviewer column holding "auto" does not turn every "auto" in the
 * tree into "[NAME]", and a patient ID of "unknown" is no patient.
 */
const EMPTY_VALUES = new Set([
  "", "-", "--", "?", "n/a", "na", "nan", "none", "null", "nil", "unknown", "not available", "missing", "tbd",
  "auto", "automatic", "system", "yes", "no", "true", "false",
]);

/** The longest Patient ID tried when looking for the zero-padded form of an ID (LO, PS3.5 Table 6.2-1). */
const MAX_PATIENT_ID_LENGTH = 64;

/** True for a value that contains no identifier: blank, or a word such as "n/a" or "unknown". */
export function isEmptyValue(value: string): boolean {
  return EMPTY_VALUES.has(value.trim().toLowerCase());
}

/** Splits a field that may list several people ("A. Smith; B. Jones", DICOM "\\" multi-values). */
function splitNames(value: string): string[] {
  return value.split(/[;|\\\n\r/&]+/).map((name) => name.trim()).filter((name) => /\p{L}/u.test(name) && !isEmptyValue(name));
}

function isPaddedForm(key: string, digits: string): boolean {
  return key.length > digits.length && key.endsWith(digits) && /^0+$/.test(key.slice(0, key.length - digits.length));
}

/**
 * Registers the patient of a Patient ID found in a field. An ID of digits
 * that is a known patient's ID without its leading zeros ("12345" for
 * "0012345", as spreadsheet programs write it) is that patient.
 *
 * NOTE: the known patients are those this thread has learnt so far. With
 * --jobs, or when the zero-padded form is learnt later, "12345" becomes a
 * patient of its own and the shared ID form falls back to "[ID]" in text.
 */
export function learnPatientId(registry: IdentifierRegistry, id: string): Patient {
  const key = id.trim();
  if (/^\d+$/.test(key) && !registry.findPatient(key)) {
    for (const [existingKey, patient] of registry.patients) {
      if (isPaddedForm(existingKey, key)) return patient;
    }
  }
  return registry.patient(key);
}

/** The part of the run's TextCleaner that rewriting uses. */
export type Cleaner = Pick<TextCleaner, "clean">;

const resolvedIds = new WeakMap<Cleaner, Map<string, Patient>>();

/**
 * Returns the patient of a Patient ID found in a field in pass 2. An ID of
 * digits that the run's cleaner replaces with another patient's pseudonym
 * is that patient's ID without leading zeros, and resolves to that patient,
 * so its dates get that patient's shift.
 */
export function patientForId(context: { cleaner: Cleaner; patientFor: WriteContext["patientFor"] }, id: string): Patient {
  const key = id.trim();
  if (!/^\d+$/.test(key)) return context.patientFor(key);
  let cache = resolvedIds.get(context.cleaner);
  if (!cache) resolvedIds.set(context.cleaner, (cache = new Map()));
  const cached = cache.get(key);
  if (cached) return cached;
  // Cleaned before patientFor, which may register the ID again in the thread's registry.
  const cleaned = context.cleaner.clean(key).text;
  const exact = context.patientFor(key);
  let resolved = exact;
  if (cleaned !== key && cleaned !== exact.pseudonymId) {
    for (let padded = `0${key}`; padded.length <= MAX_PATIENT_ID_LENGTH; padded = `0${padded}`) {
      const candidate = context.patientFor(padded);
      if (candidate.pseudonymId === cleaned) {
        resolved = candidate;
        break;
      }
    }
  }
  cache.set(key, resolved);
  return resolved;
}

/** Distinct dates one file may teach the registry; see FieldLearner. */
export const MAX_LEARNT_DATES_PER_FILE = 1000;

/**
 * Pass 1 for one file: adds the identifiers in values of fields to the
 * registry. Each distinct value is learnt once per file, so a table with a
 * million rows of few patients costs few registry calls (with --jobs each
 * call is sent to the main thread).
 *
 * NOTE: ordinary dates (not birth dates) are learnt only up to
 * MAX_LEARNT_DATES_PER_FILE distinct dates per file, because each adds
 * 14 text forms to the cleaner. The file's own date fields are shifted
 * either way, but dates past the cap are not cleaned from other files'
 * free text unless another file teaches them.
 */
export class FieldLearner {
  private readonly seen = new Set<string>();
  private learntDates = 0;

  constructor(private readonly registry: IdentifierRegistry) {}

  /** Registers the patient of the record a Patient ID starts (see learnPatientId). */
  patientOfId(id: string): Patient {
    return learnPatientId(this.registry, id);
  }

  /**
   * Learns one value. `patient` is the patient of the record (row or
   * object) the value is in. A patient-id value other than the record's
   * own ID is registered as another ID of that patient, as DICOM Other
   * Patient IDs are.
   */
  learn(fieldClass: FieldClass, value: string, patient: Patient | undefined): void {
    if (fieldClass === "none" || fieldClass === "age" || isEmptyValue(value)) return;
    const key = `${fieldClass}\0${patient?.key ?? "\0"}\0${value}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const registry = this.registry;
    switch (fieldClass) {
      case "patient-id":
        if (patient && patient.key !== value.trim()) registry.addIdForms(value, "patient-id", patient.pseudonymId);
        else learnPatientId(registry, value);
        return;
      case "patient-name":
        for (const name of splitNames(value)) {
          if (patient) registry.addPatientName(toPersonName(name), patient);
          else registry.addOtherName(toPersonName(name));
        }
        return;
      case "staff-name":
        for (const name of splitNames(value)) registry.addOtherName(toPersonName(name));
        return;
      case "birth-date":
        for (const date of datesIn(value)) registry.addDate(formatDa(date), "birth-date", patient);
        return;
      case "date":
        for (const date of datesIn(value)) {
          if (this.learntDates >= MAX_LEARNT_DATES_PER_FILE) return;
          this.learntDates++;
          registry.addDate(formatDa(date), "date", patient);
        }
        return;
      case "course-id":
        registry.addCourse(value, patient);
        return;
      case "other-id":
        registry.addIdForms(value, "other-id");
        return;
      case "address":
      case "email":
        registry.addAddress(value, "address");
        return;
      case "institution":
        registry.addAddress(value, "institution");
        return;
      case "phone":
      case "device":
        registry.addTerm(value, fieldClass);
        return;
    }
  }
}

/**
 * Adds the identifiers in one value of a field to the registry, as
 * FieldLearner.learn does but without remembering values, so a caller
 * with many records should keep one FieldLearner per file instead.
 */
export function learnFieldValue(registry: IdentifierRegistry, fieldClass: FieldClass, value: string, patient: Patient | undefined): void {
  new FieldLearner(registry).learn(fieldClass, value, patient);
}

/**
 * Caps an age above 89 years at 90 (HIPAA Safe Harbor, 45 CFR
 * 164.514(b)(2)(i)(C)): "95", "95 years" and "095Y" give "90", "90 years"
 * and "090Y". Other text is returned unchanged.
 */
export function capAgeText(text: string): string {
  const trimmed = text.trim();
  if (/^\d{3}[DWMY]$/.test(trimmed)) return text.replace(trimmed, capAge(trimmed));
  const match = /^(\s*)(\d+(?:\.\d+)?)(\s*(?:y|yr|yrs|years?|j|jahre)?\.?\s*)$/i.exec(text);
  if (match && Number(match[2]) > 89) return `${match[1]}90${match[3]}`;
  return text;
}

export interface FieldRewriteContext {
  cleaner: Cleaner;
  shiftDates: boolean;
  patientFor: WriteContext["patientFor"];
}

/** Texts cleaned once per file and remembered; tables repeat values, and each clean scans for every term of the run. */
const MAX_CACHED_TEXTS = 65_536;
const MAX_CACHED_TEXT_LENGTH = 1024;

/**
 * Wraps the run's cleaner for one file, remembering the results for short
 * texts. The cache is emptied when it reaches MAX_CACHED_TEXTS texts, so its
 * memory does not grow with the file.
 */
export function cachingCleaner(cleaner: Cleaner): Cleaner {
  const cache = new Map<string, CleanResult>();
  return {
    clean(text: string): CleanResult {
      if (text.length > MAX_CACHED_TEXT_LENGTH) return cleaner.clean(text);
      let result = cache.get(text);
      if (!result) {
        if (cache.size >= MAX_CACHED_TEXTS) cache.clear();
        result = cleaner.clean(text);
        cache.set(text, result);
      }
      return result;
    },
  };
}

function cleaned(context: FieldRewriteContext, text: string, replaced = 0): DateTextResult {
  const result = context.cleaner.clean(text);
  for (const count of Object.values(result.replaced)) replaced += count ?? 0;
  return { text: result.text, replaced };
}

/**
 * Pass 2: returns the de-identified text of one value of a field.
 * `patient` is the patient of the record the value is in (for a patient-id
 * value: the patient it resolves to), or undefined when unknown. Dates are
 * shifted by that patient's shift when dates are shifted, otherwise
 * replaced by "[DATE]". Values of identifier fields become their
 * pseudonym or placeholder. All other text is cleaned of the run's
 * identifiers, except that a free-text value which is a date as a whole
 * is treated as a date.
 */
export function rewriteFieldValue(
  fieldClass: FieldClass,
  value: string,
  patient: Patient | undefined,
  context: FieldRewriteContext,
): DateTextResult {
  if (isEmptyValue(value)) return { text: value, replaced: 0 };
  const shiftDays = context.shiftDates && patient ? patient.shiftDays : undefined;
  switch (fieldClass) {
    case "patient-id":
      return { text: (patient ?? patientForId(context, value)).pseudonymId, replaced: 1 };
    case "patient-name":
      return { text: patient?.pseudonymName ?? PLACEHOLDER["patient-name"], replaced: 1 };
    case "date": {
      const shifted = replaceDateValue(value, shiftDays);
      return cleaned(context, shifted.text, shifted.replaced);
    }
    case "course-id": {
      // A course ID the registry learnt has a keyed pseudonym; one it could not learn (too short) gets the placeholder.
      const result = cleaned(context, value);
      return result.text === value ? { text: PLACEHOLDER["course-id"], replaced: 1 } : result;
    }
    case "age": {
      const capped = capAgeText(value);
      return cleaned(context, capped, capped === value ? 0 : 1);
    }
    case "none": {
      if (!isDateText(value)) return cleaned(context, value);
      const shifted = replaceDateValue(value, shiftDays);
      return cleaned(context, shifted.text, shifted.replaced);
    }
    default:
      return { text: PLACEHOLDER[categoryOfField(fieldClass) ?? "other-id"], replaced: 1 };
  }
}
