/**
 * `reidentify --value`: one pseudonym, UID or short text back to its
 * originals.
 */
import { replaceDateText } from "../formats/date-text.js";
import type { KeyPatient, ReverseKey } from "./key-index.js";

export interface ValueResult {
  /** The text with every original the key records put back. */
  text: string;
  /** What could not be restored, and why; never contains a value. */
  notes: string[];
}

/** The patients whose pseudonyms appear in `text`, as whole words. */
function patientsIn(text: string, key: ReverseKey): KeyPatient[] {
  const found = new Map<string, KeyPatient>();
  for (const word of text.match(/[\p{L}\p{N}_-]+/gu) ?? []) {
    const patient = key.patientOf(word);
    if (patient) found.set(patient.pseudonymId, patient);
  }
  return [...found.values()];
}

/**
 * Restores one value. A whole pseudonym gives the original Patient ID (or
 * the name, for a patient whose files carried no ID), a whole UID its
 * original. Other text has pseudonyms, course IDs and UIDs replaced, and
 * its dates shifted back when it names exactly one patient, because the
 * shift belongs to the patient.
 */
export function reidentifyValue(value: string, key: ReverseKey): ValueResult {
  const trimmed = value.trim();
  const patient = key.patientOf(trimmed);
  if (patient) {
    if (patient.originalId) return { text: patient.originalId, notes: [] };
    if (patient.originalName) return { text: patient.originalName, notes: ["the patient's files carried no Patient ID; this is the Patient's Name"] };
    return { text: trimmed, notes: ["the patient's files carried neither Patient ID nor Patient's Name, so there is nothing to restore"] };
  }
  const uid = key.originalUid(trimmed);
  if (uid) return { text: uid, notes: [] };

  const patients = patientsIn(value, key);
  if (!key.shiftDates) {
    const text = key.cleaner.clean(value).text;
    return { text, notes: ["the run did not shift dates (it removed or kept them), so no date was changed"] };
  }
  if (patients.length === 1) {
    // Dates are shifted back by arithmetic first, so the key's learnt date forms must not apply again.
    const unshifted = replaceDateText(value, -patients[0].shiftDays).text;
    return { text: key.cleanerWithoutDates.clean(unshifted).text, notes: [] };
  }
  const text = key.cleanerWithoutDates.clean(value).text;
  const reason = patients.length === 0 ? "names no patient of the key" : "names more than one patient";
  const notes = /\d{4}/.test(value) ? [`dates were left as they are: the text ${reason}, and a date is shifted back by its patient's shift`] : [];
  if (text === value && notes.length === 0) notes.push("the key records no pseudonym or UID in this text");
  return { text, notes };
}
