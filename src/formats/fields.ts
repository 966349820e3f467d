/**
 * Classifies the key of a JSON object or the header of a table column by
 * the identifier its values hold, whatever the spelling: patient_id,
 * PatientID, "Patient ID" and patientId are one field. Formats use the
 * class to decide how a value is learnt in pass 1 and rewritten in pass 2
 * (see field-rules.ts).
 */
import type { IdentifierCategory } from "../deid/identifiers.js";
import { lookupTag } from "../dicom/dictionary.js";

export { datesIn, isDateText, replaceDateText, replaceDateValue, type DateTextResult } from "./date-text.js";

/**
 * Field class: an identifier category of the registry, or "email" (learnt
 * and replaced as an address), "age" (kept, ages above 89 capped) or
 * "none" (free text, cleaned of the run's identifiers).
 */
export type FieldClass = IdentifierCategory | "email" | "age" | "none";

/** Lower-cases a field name and drops everything but letters and digits: "Patient ID" and patient_id give "patientid". */
export function normaliseFieldName(name: string): string {
  return name.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");
}

/** Splits a field name into lower-case words at separators and camelCase boundaries: "AcquisitionDateTime" gives acquisition, date, time. */
export function fieldWords(name: string): string[] {
  return name
    .replace(/IDs(?!\p{Ll})/gu, "Ids")
    .replace(/([\p{Ll}\p{N}])(\p{Lu})/gu, "$1 $2")
    .replace(/(\p{Lu}+)(\p{Lu}\p{Ll})/gu, "$1 $2")
    .replace(/(\p{L})(\p{N})/gu, "$1 $2")
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((word) => word.length > 0);
}

/** Normalised names with a fixed class, checked before the word rules. */
const EXACT: ReadonlyMap<string, FieldClass> = new Map<string, FieldClass>([
  ...words("patient-id", "patient patid pid mrn medicalrecordnumber medicalrecordno medicalrecordlocator hospitalnumber subject subjectid participant participantid otherpatientids nhsnumber"),
  ...words("patient-name", "firstname lastname givenname familyname surname forename middlename fullname maidenname mothersmaidenname patientbirthname patientmotherbirthname otherpatientnames responsibleperson"),
  ...words("birth-date", "dob birthdate birthday dateofbirth birthdatetime geburtsdatum gebdatum yearofbirth birthyear"),
  ...words("course-id", "course courseid coursekey courseno coursenumber courseidentifier"),
  ...words("other-id", "accession accessionnumber accessionno studyid visitid visitnumber encounterid admissionid caseid caseno casenumber issuerofpatientid clinicaltrialsubjectid clinicaltrialsubjectreadingid requestedprocedureid scheduledprocedurestepid performedprocedurestepid patientaccountnumber accountnumber insurancenumber insuranceid ssn socialsecuritynumber nationalid fillerordernumberimagingservicerequest placerordernumberimagingservicerequest"),
  ...words("staff-name", "physiciansofrecord nameofphysiciansreadingstudy operatorsname username personname"),
  ...words("address", "address patientaddress streetaddress street homeaddress postaladdress personaddress zip zipcode postcode postalcode city town residence regionofresidence countryofresidence"),
  ...words("phone", "tel fax mobile patienttelephonenumbers persontelephonenumbers"),
  ...words("email", "email mail emailaddress"),
  ...words("institution", "hospital hospitalname clinic clinicname department departmentname facility facilityname organization organisation responsibleorganization"),
  ...words("device", "station stationname deviceserialnumber serialnumber deviceid deviceuid detectorid gantryid hostname ipaddress macaddress"),
  ...words("age", "age patientage ageyears"),
]);

function words(fieldClass: FieldClass, names: string): Array<[string, FieldClass]> {
  return names.split(" ").map((name) => [name, fieldClass]);
}

const PATIENT_WORDS = new Set(["patient", "patients", "pat", "pt", "subject", "participant"]);
const ID_WORDS = new Set(["id", "ids", "number", "no", "nr", "num", "key", "identifier", "mrn"]);
const NAME_WORDS = new Set(["name", "names", "firstname", "lastname", "givenname", "familyname", "surname", "forename"]);
const NAME_PART_WORDS = new Set(["first", "last", "given", "family", "middle", "full", "maiden", "sur", "fore"]);
const BIRTH_DATE_WORDS = new Set(["date", "day", "year", "dt", "datetime", "time", "of"]);
const DATE_WORDS = new Set(["date", "dates", "datetime", "timestamp", "timestamps", "dttm"]);
/** Abbreviations that name a date only next to another word: plan_dt is a date, dt alone is often a time step. */
const SHORT_DATE_WORDS = new Set(["dt", "ts"]);
/** Words ending in "date" that are no dates. */
const NOT_DATES = ["update", "candidate", "validate", "accommodate", "mandate", "sedate", "liquidate", "consolidate", "intimidate", "elucidate"];
/** A date word next to one of these names a property of dates, not a date: date_format, update_rate. */
const DATE_PROPERTY_WORDS = new Set(["rate", "format", "fmt", "count", "type", "flag", "pattern", "unit", "units", "precision", "shift", "offset", "source", "status", "zone", "tz"]);
const STAFF_WORDS = new Set([
  "reviewer", "reviewers", "physician", "physicians", "operator", "operators", "referring", "oncologist", "physicist",
  "physicists", "dosimetrist", "planner", "approver", "author", "authors", "clinician", "doctor", "therapist",
  "radiologist", "technologist", "technician", "nurse", "surgeon", "consultant", "radiographer", "attending",
]);
/** Staff roles long enough to find inside a name written without separators, such as "reviewername". */
const STAFF_STEMS = ["reviewer", "physician", "operator", "oncologist", "physicist", "dosimetrist", "approver", "clinician", "therapist", "radiologist", "technologist", "radiographer"];

function isDateWord(word: string): boolean {
  if (DATE_WORDS.has(word)) return true;
  if (word.endsWith("datetime") || word.endsWith("timestamp")) return true;
  return word.endsWith("date") && !NOT_DATES.some((notDate) => word.endsWith(notDate));
}

/** "patient" directly followed by "id" (or number, key, ...), as in source_patient_id. */
function hasAdjacent(list: readonly string[], first: ReadonlySet<string>, second: ReadonlySet<string>): boolean {
  return list.some((word, index) => first.has(word) && index + 1 < list.length && second.has(list[index + 1]));
}

function isBirthDate(list: readonly string[], flat: string): boolean {
  if (list.includes("dob") || flat.includes("dateofbirth") || flat.includes("birthdate") || flat.includes("birthday")) return true;
  return list.includes("birth") && list.some((word) => BIRTH_DATE_WORDS.has(word));
}

function isPatientName(list: readonly string[], flat: string): boolean {
  return flat.endsWith("patientname") || flat.endsWith("patientnames") || hasAdjacent(list, PATIENT_WORDS, NAME_WORDS);
}

function isPatientId(list: readonly string[], flat: string): boolean {
  if (list.includes("type")) return false;
  if (flat.endsWith("patientid") || flat.endsWith("patientids")) return true;
  return list.includes("mrn") || hasAdjacent(list, PATIENT_WORDS, ID_WORDS);
}

function isDate(list: readonly string[]): boolean {
  if (list.some((word) => DATE_PROPERTY_WORDS.has(word))) return false;
  if (list.some(isDateWord)) return true;
  if (list.length > 1 && list.some((word) => SHORT_DATE_WORDS.has(word))) return true;
  // created_at, reviewed_on: a past participle and "at" or "on".
  const last = list[list.length - 1];
  return list.length >= 2 && (last === "at" || last === "on") && list[list.length - 2].endsWith("ed");
}

function isStaff(list: readonly string[], flat: string): boolean {
  if (list.some((word) => STAFF_WORDS.has(word))) return true;
  if (STAFF_STEMS.some((stem) => flat.includes(stem))) return true;
  // reviewed_by, createdBy, approvedby, but not sort_by.
  return /^[\p{L}\p{N}]+edby$/u.test(flat) && list[list.length - 1].endsWith("by");
}

/**
 * Classifies a name that EXACT does not list by its words. Birth dates are
 * checked before dates, and dates before staff roles, so that a reviewer's
 * signature date is a date.
 */
function classifyWords(list: readonly string[], flat: string): FieldClass {
  if (isBirthDate(list, flat)) return "birth-date";
  if (isPatientName(list, flat)) return "patient-name";
  if (isPatientId(list, flat)) return "patient-id";
  if (hasAdjacent(list, new Set(["course"]), ID_WORDS)) return "course-id";
  if (isDate(list)) return "date";
  if (list.includes("accession")) return "other-id";
  if (isStaff(list, flat)) return list.some((word) => ID_WORDS.has(word)) ? "other-id" : "staff-name";
  if (hasAdjacent(list, NAME_PART_WORDS, new Set(["name"]))) return "patient-name";
  if (flat.includes("institution") || list.includes("hospital")) return "institution";
  if (flat.includes("email")) return "email";
  if (list.includes("ip") || list.includes("mac") || list.includes("serial") || flat.endsWith("stationname")) return "device";
  if (list.includes("address") || list.includes("street")) return "address";
  if (flat.includes("phone") || flat.includes("telecom") || list.includes("fax") || list.includes("mobile")) return "phone";
  if (list.includes("age") || list.includes("ages")) return "age";
  return "none";
}

/** A DICOM JSON key (PS3.18 F.2): eight hexadecimal digits of a tag, e.g. "00100010". */
const TAG_KEY = /^[0-9A-Fa-f]{8}$/;

/**
 * Classifies a key or column name. DICOM JSON tag keys are classified by
 * their PS3.6 keyword, so "00100020" is a patient ID like "PatientID".
 */
export function classifyField(name: string): FieldClass {
  let fieldClass = classified.get(name);
  if (fieldClass === undefined) {
    fieldClass = classifyUncached(name);
    if (classified.size >= MAX_CLASSIFIED_NAMES) classified.clear();
    classified.set(name, fieldClass);
  }
  return fieldClass;
}

/** Names classified so far: a JSON file repeats its keys in every record. */
const classified = new Map<string, FieldClass>();
const MAX_CLASSIFIED_NAMES = 10_000;

function classifyUncached(name: string): FieldClass {
  if (TAG_KEY.test(name)) {
    const keyword = lookupTag(Number.parseInt(name, 16) >>> 0)?.keyword;
    return keyword ? classifyUncached(keyword) : "none";
  }
  const flat = normaliseFieldName(name);
  if (flat.length === 0) return "none";
  return EXACT.get(flat) ?? classifyWords(fieldWords(name), flat);
}

/** Maps a field class to the registry category that learns and replaces its values; undefined for "age" and "none". */
export function categoryOfField(fieldClass: FieldClass): IdentifierCategory | undefined {
  if (fieldClass === "email") return "address";
  if (fieldClass === "age" || fieldClass === "none") return undefined;
  return fieldClass;
}

const TITLES = new Set(["dr", "prof", "mr", "mrs", "ms", "miss", "md", "phd", "msc", "dipl", "med", "dipl.-ing"]);

/**
 * Converts a written name to a DICOM PN value (PS3.5 6.2): "Jane Doe" and
 * "Doe, Jane" give "Doe^Jane", "Jane M. Doe" gives "Doe^Jane^M.". Titles
 * such as "Dr." are dropped. A value that already contains "^" is
 * returned trimmed.
 */
export function toPersonName(text: string): string {
  const trimmed = text.trim();
  if (trimmed.includes("^")) return trimmed;
  const isTitle = (word: string): boolean => TITLES.has(word.toLowerCase().replace(/\.$/, ""));
  const comma = trimmed.indexOf(",");
  if (comma >= 0) {
    const family = trimmed.slice(0, comma).split(/\s+/).filter((word) => word && !isTitle(word)).join(" ");
    const rest = trimmed.slice(comma + 1).split(/\s+/).filter((word) => word && !isTitle(word));
    return [family, rest[0] ?? "", rest.slice(1).join(" ")].join("^").replace(/\^+$/, "");
  }
  const parts = trimmed.split(/\s+/).filter((word) => word && !isTitle(word));
  if (parts.length <= 1) return parts.join("");
  const family = parts[parts.length - 1];
  return [family, parts[0], parts.slice(1, -1).join(" ")].join("^").replace(/\^+$/, "");
}
