/**
 * The lookups re-identification needs, built from a decrypted key payload:
 * pseudonym to patient, replacement UID to original UID, output path to
 * input path, and a text cleaner that puts the originals back.
 */
import { KeyFileError } from "../errors.js";
import { TextCleaner } from "../deid/cleaner.js";
import { PLACEHOLDER, type IdentifierCategory, type Patient, type Term } from "../deid/identifiers.js";
import { compileProfile, OPTION_NAMES, type CompiledProfile, type OptionName } from "../profile/profile.js";
import { KEY_PAYLOAD_FORMAT, KEY_PAYLOAD_VERSION, type KeyPayload } from "../run/key-payload.js";

/** Written where a patient's name must be restored but the key contains no name in DICOM PN form. */
export const NAME_NOT_IN_KEY = "[NAME NOT IN KEY]";

/** Prefix of the patient key that anonymize builds from name and birth date when a file has no Patient ID. */
const NAME_KEY_PREFIX = "name:";

export interface KeyPatient {
  pseudonymId: string;
  /** The original Patient ID; "" when the files carried none. */
  originalId: string;
  /** The original Patient's Name in PN form, when the key records one. */
  originalName: string | undefined;
  /** Days anonymize added to this patient's dates. */
  shiftDays: number;
}

function invalidPayload(detail: string, path: string): KeyFileError {
  return new KeyFileError("KEY_FORMAT", `the key file does not hold a deidkit key payload: ${detail}`, {
    path,
    hint: "pass the .deidkey file that anonymize wrote for this output",
  });
}

function isString(value: unknown): value is string {
  return typeof value === "string";
}

/** A relative input path from the key: "/"-separated, with no empty, "." or ".." component. */
function isSafeRelativePath(path: string): boolean {
  if (path.length === 0 || path.includes("\0")) return false;
  return path.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

/** Checks the shape of a decrypted payload, because the key file's authentication does not check its content's version. */
export function checkKeyPayload(value: unknown, keyPath: string): KeyPayload {
  const payload = value as Partial<KeyPayload> | null;
  if (typeof payload !== "object" || payload === null || payload.format !== KEY_PAYLOAD_FORMAT) {
    throw invalidPayload("unknown payload format", keyPath);
  }
  if (payload.version !== KEY_PAYLOAD_VERSION) throw invalidPayload(`payload version ${String(payload.version)} is not supported`, keyPath);
  if (!Array.isArray(payload.run?.options) || !payload.run.options.every(isString)) throw invalidPayload("run options missing", keyPath);
  const patientsValid = Array.isArray(payload.patients) && payload.patients.every(
    (patient) => isString(patient?.originalId) && isString(patient.pseudonymId) && isString(patient.pseudonymName) && Number.isInteger(patient.shiftDays),
  );
  if (!patientsValid) throw invalidPayload("invalid patient list", keyPath);
  const identifiersValid = Array.isArray(payload.identifiers) && payload.identifiers.every(
    (term) => isString(term?.original) && isString(term.replacement) && isString(term.category),
  );
  if (!identifiersValid) throw invalidPayload("invalid identifier list", keyPath);
  if (!Array.isArray(payload.uids) || !payload.uids.every((uid) => isString(uid?.original) && isString(uid.replacement))) {
    throw invalidPayload("invalid UID list", keyPath);
  }
  const filesValid = Array.isArray(payload.files) && payload.files.every(
    (file) => isString(file?.input) && isString(file.output) && isSafeRelativePath(file.input) && isSafeRelativePath(file.output),
  );
  if (!filesValid) throw invalidPayload("invalid file list", keyPath);
  return payload as KeyPayload;
}

/**
 * Maps each key to the first value given for it, leaving out keys that two
 * entries map to values that `sameValue` distinguishes.
 */
function uniqueMap(
  pairs: Iterable<[string, string]>,
  normalise: (key: string) => string = (key) => key,
  sameValue: (a: string, b: string) => boolean = (a, b) => a === b,
): Map<string, string> {
  const map = new Map<string, string>();
  const ambiguous = new Set<string>();
  for (const [key, value] of pairs) {
    const normalised = normalise(key);
    const existing = map.get(normalised);
    if (existing === undefined) map.set(normalised, value);
    else if (!sameValue(existing, value)) ambiguous.add(normalised);
  }
  for (const key of ambiguous) map.delete(key);
  return map;
}

function originalNameOf(patient: KeyPayload["patients"][number], payload: KeyPayload): string | undefined {
  if (patient.originalId.startsWith(NAME_KEY_PREFIX)) {
    const name = patient.originalId.slice(NAME_KEY_PREFIX.length, patient.originalId.lastIndexOf("|"));
    if (name.length > 0) return name;
  }
  // The registry adds a name's PN form before its other written forms, and files are learnt in tree order.
  const term = payload.identifiers.find(
    (candidate) => candidate.category === "patient-name" && candidate.replacement === patient.pseudonymName && candidate.original.includes("^"),
  );
  return term?.original;
}

/** Decrypted key content arranged for re-identification. */
export class ReverseKey {
  readonly options: ReadonlySet<OptionName>;
  readonly profile: CompiledProfile;
  /** Whether anonymize shifted dates (Retain Longitudinal Temporal Information with Modified Dates). */
  readonly shiftDates: boolean;
  readonly cleaner: TextCleaner;
  private readonly patientsByPseudonym = new Map<string, KeyPatient>();
  private readonly uids: Map<string, string>;
  private readonly inputPaths: Map<string, string>;
  private readonly termsWithoutDates: Term[];
  private dateFreeCleaner: TextCleaner | undefined;

  constructor(payload: KeyPayload) {
    const known = new Set<string>(OPTION_NAMES);
    this.options = new Set(payload.run.options.filter((option): option is OptionName => known.has(option)));
    this.profile = compileProfile(this.options);
    this.shiftDates = this.options.has("retain-longitudinal-modified-dates");
    for (const patient of payload.patients) {
      const nameKeyed = patient.originalId.startsWith(NAME_KEY_PREFIX);
      this.patientsByPseudonym.set(patient.pseudonymId.toLowerCase(), {
        pseudonymId: patient.pseudonymId,
        originalId: nameKeyed ? "" : patient.originalId,
        originalName: originalNameOf(patient, payload),
        shiftDays: patient.shiftDays,
      });
    }
    this.uids = uniqueMap(payload.uids.map((uid) => [uid.replacement, uid.original]));
    const written = payload.files.filter((file) => file.status === "written");
    this.inputPaths = uniqueMap(written.map((file) => [file.output, file.input]));
    const terms = this.reverseTerms(payload);
    this.cleaner = new TextCleaner(terms, (uid) => uid);
    this.termsWithoutDates = terms.filter((term) => !term.dateForm);
  }

  /**
   * A cleaner that restores IDs, course IDs and UIDs but no dates, for text
   * whose dates are shifted back by arithmetic instead.
   */
  get cleanerWithoutDates(): TextCleaner {
    this.dateFreeCleaner ??= new TextCleaner(this.termsWithoutDates, (uid) => uid);
    return this.dateFreeCleaner;
  }

  /** Terms whose text is a replacement anonymize wrote and whose replacement is the original it stood for. */
  private reverseTerms(payload: KeyPayload): Array<Term & { dateForm?: boolean }> {
    const terms: Array<Term & { dateForm?: boolean }> = [];
    for (const patient of this.patientsByPseudonym.values()) {
      // In text a pseudonym replaced the ID and the name forms alike; the ID is restored, or the name when there is no ID.
      const original = patient.originalId || patient.originalName;
      if (original) terms.push({ text: patient.pseudonymId, category: "patient-id", replacement: original });
    }
    const originals = new Set(payload.identifiers.map((term) => term.original.toLowerCase()));
    const restorable = payload.identifiers.filter(
      (term) => (term.category === "course-id" || term.category === "date") && term.replacement !== PLACEHOLDER[term.category as IdentifierCategory],
    );
    // A shifted date that is also an original date of the run cannot be distinguished from that date, so it stays as it is.
    const pairs = restorable.filter((term) => term.category !== "date" || !originals.has(term.replacement.toLowerCase()));
    const dateForms = new Set(pairs.filter((term) => term.category === "date").map((term) => term.replacement.toLowerCase()));
    // "2019-04-19" and "2019-4-19" are forms of one date that shift to the same text; the first (padded) form is kept.
    const withoutPadding = (text: string): string => text.toLowerCase().replace(/(?<!\d)0+(?=\d)/g, "");
    const byReplacement = uniqueMap(
      pairs.map((term) => [term.replacement, term.original]),
      (text) => text.toLowerCase(),
      (a, b) => withoutPadding(a) === withoutPadding(b),
    );
    for (const [text, original] of byReplacement) {
      // Dates keep their category, so that a date followed by an ISO 8601 time ("T10:15") still matches.
      const dateForm = dateForms.has(text);
      terms.push({ text, category: dateForm ? "date" : "other-id", replacement: original, dateForm });
    }
    for (const [replacement, original] of this.uids) terms.push({ text: replacement, category: "other-id", replacement: original });
    return terms;
  }

  /** Returns the patient whose pseudonym is `text` (case-insensitive), if the key has one. */
  patientOf(text: string): KeyPatient | undefined {
    return this.patientsByPseudonym.get(text.trim().toLowerCase());
  }

  /** Returns the original of a UID that anonymize wrote, if the key records it. */
  originalUid(uid: string): string | undefined {
    return this.uids.get(uid);
  }

  /** Returns the input path recorded for an output path (both relative, "/"-separated). */
  inputPathOf(outputPath: string): string | undefined {
    return this.inputPaths.get(outputPath);
  }

  /** The patients of the key, by pseudonym. */
  get patients(): Iterable<KeyPatient> {
    return this.patientsByPseudonym.values();
  }

  /**
   * Returns a Patient whose "pseudonym" is the original and whose shift
   * undoes the run's shift, so that format handlers written for
   * de-identification put the originals back when given a pseudonym.
   */
  inversePatient(patient: KeyPatient): Patient {
    return {
      key: patient.pseudonymId,
      pseudonymId: patient.originalId || patient.pseudonymId,
      pseudonymName: patient.originalName ?? NAME_NOT_IN_KEY,
      shiftDays: -patient.shiftDays,
      mapped: false,
    };
  }
}
