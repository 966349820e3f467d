/**
 * The first pass: learns the identifiers in a data set, at every nesting
 * level, so that the second pass can clean them out of free text and names.
 */
import { codecForSpecificCharacterSet, type CharsetCodec } from "../dicom/charset.js";
import { vrOf, type Element, type Item } from "../dicom/dataset.js";
import { lookupTag } from "../dicom/dictionary.js";
import { isPrivateTag, TAG } from "../dicom/tags.js";
import type { OptionName } from "../profile/profile.js";
import type { IdentifierRegistry, Patient } from "./identifiers.js";
import { decodeText, loadStringValue, splitValues } from "./values.js";

/** Attributes whose values identify the patient directly, by keyword (PS3.6). */
const PATIENT_NAME_KEYWORDS = new Set(["PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "ResponsiblePerson"]);
const PATIENT_ID_KEYWORDS = new Set(["PatientID", "OtherPatientIDs", "MedicalRecordLocator", "AdmissionID", "ServiceEpisodeID", "PatientInsurancePlanCodeSequence"]);
const OTHER_ID_KEYWORDS = new Set([
  "AccessionNumber", "StudyID", "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID",
  "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest", "ClinicalTrialSubjectID",
  "ClinicalTrialSubjectReadingID", "IssuerOfPatientID", "PatientAccountNumber",
]);
const ADDRESS_KEYWORDS = new Set(["PatientAddress", "RegionOfResidence", "CountryOfResidence", "PersonAddress", "ResponsibleOrganization"]);
const PHONE_KEYWORDS = new Set(["PatientTelephoneNumbers", "PersonTelephoneNumbers", "PersonTelecomInformation", "PatientTelecomInformation"]);
const INSTITUTION_KEYWORDS = new Set(["InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"]);
const DEVICE_KEYWORDS = new Set(["StationName", "DeviceSerialNumber", "DetectorID", "DeviceUID", "GantryID"]);

function rawText(dataset: Item, tag: number): string {
  const element = dataset.elements.find((candidate) => candidate.tag === tag);
  return element?.bytes ? element.bytes.toString("latin1").replace(/[\0 ]+$/, "").trim() : "";
}

/**
 * Returns the key that identifies the patient of a data set: the original
 * Patient ID, trimmed. Without one, Patient's Name and Birth Date stand in
 * ("name:" prefix), so that different patients without IDs stay apart;
 * without any of them the key is "".
 */
export function patientKeyOf(dataset: Item): string {
  const id = rawText(dataset, TAG.PatientID);
  if (id) return id;
  const name = rawText(dataset, TAG.PatientName);
  const birthDate = rawText(dataset, TAG.PatientBirthDate);
  return name || birthDate ? `name:${name}|${birthDate}` : "";
}

class Collector {
  constructor(
    private readonly registry: IdentifierRegistry,
    private readonly patient: Patient,
    private readonly options: ReadonlySet<OptionName>,
  ) {}

  private values(element: Element, codec: CharsetCodec): string[] {
    if (!element.bytes || element.bytes.length === 0) return [];
    return splitValues(decodeText(element.bytes, vrOf(element), codec), vrOf(element)).filter((value) => value.trim().length);
  }

  collectItem(item: Item, inherited: CharsetCodec): void {
    const specificCharacterSet = item.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
    const codec = specificCharacterSet?.bytes ? codecForSpecificCharacterSet(specificCharacterSet.bytes.toString("latin1")) : inherited;
    for (const element of item.elements) {
      if (element.items) {
        for (const child of element.items) this.collectItem(child, codec);
        continue;
      }
      if (isPrivateTag(element.tag)) continue;
      const add = this.adderFor(element);
      if (!add) continue;
      loadStringValue(element);
      if (!element.bytes) continue;
      for (const value of this.values(element, codec)) add(value);
    }
  }

  /** Returns how to register each value of `element`, or undefined when it carries no identifier, so that its value is not decoded. */
  private adderFor(element: Element): ((value: string) => void) | undefined {
    const keyword = lookupTag(element.tag)?.keyword ?? "";
    const vr = vrOf(element);
    const registry = this.registry;
    const patient = this.patient;
    if (element.tag === TAG.PatientBirthDate) return (value) => registry.addDate(value, "birth-date", patient);
    if (PATIENT_NAME_KEYWORDS.has(keyword)) return (value) => registry.addPatientName(value, patient);
    if (vr === "PN") return (value) => registry.addOtherName(value);
    if (PATIENT_ID_KEYWORDS.has(keyword)) return (value) => registry.addIdForms(value, "patient-id", patient.pseudonymId);
    if (OTHER_ID_KEYWORDS.has(keyword)) return (value) => registry.addIdForms(value, "other-id");
    if (ADDRESS_KEYWORDS.has(keyword)) return (value) => registry.addAddress(value, "address");
    if (PHONE_KEYWORDS.has(keyword)) return (value) => registry.addTerm(value, "phone");
    if (INSTITUTION_KEYWORDS.has(keyword) && !this.options.has("retain-institution-identity")) return (value) => registry.addAddress(value, "institution");
    if (DEVICE_KEYWORDS.has(keyword) && !this.options.has("retain-device-identity")) return (value) => registry.addTerm(value, "device");
    if (vr === "DA") return (value) => registry.addDate(value, "date", patient);
    if (vr === "DT") return (value) => registry.addDate(value.slice(0, 8), "date", patient);
    return undefined;
  }
}

/** Registers the patient of a data set and every identifier it holds; returns the patient. */
export function collectIdentifiers(
  dataset: Item,
  registry: IdentifierRegistry,
  options: ReadonlySet<OptionName>,
): Patient {
  const patient = registry.patient(patientKeyOf(dataset));
  const specificCharacterSet = dataset.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
  const codec = codecForSpecificCharacterSet(specificCharacterSet?.bytes?.toString("latin1"));
  new Collector(registry, patient, options).collectItem(dataset, codec);
  return patient;
}
