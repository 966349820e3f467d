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
      loadStringValue(element);
      if (!element.bytes) continue;
      this.collectElement(element, codec);
    }
  }

  private collectElement(element: Element, codec: CharsetCodec): void {
    const keyword = lookupTag(element.tag)?.keyword ?? "";
    const values = this.values(element, codec);
    if (values.length === 0) return;
    const registry = this.registry;
    if (element.tag === TAG.PatientBirthDate) {
      for (const value of values) registry.addDate(value, "birth-date", this.patient);
    } else if (PATIENT_NAME_KEYWORDS.has(keyword)) {
      for (const value of values) registry.addPatientName(value, this.patient);
    } else if (vrOf(element) === "PN") {
      for (const value of values) registry.addOtherName(value);
    } else if (PATIENT_ID_KEYWORDS.has(keyword)) {
      for (const value of values) registry.addIdForms(value, "patient-id", this.patient.pseudonymId);
    } else if (OTHER_ID_KEYWORDS.has(keyword)) {
      for (const value of values) registry.addIdForms(value, "other-id");
    } else if (ADDRESS_KEYWORDS.has(keyword)) {
      for (const value of values) registry.addAddress(value, "address");
    } else if (PHONE_KEYWORDS.has(keyword)) {
      for (const value of values) registry.addTerm(value, "phone");
    } else if (INSTITUTION_KEYWORDS.has(keyword) && !this.options.has("retain-institution-identity")) {
      for (const value of values) registry.addAddress(value, "institution");
    } else if (DEVICE_KEYWORDS.has(keyword) && !this.options.has("retain-device-identity")) {
      for (const value of values) registry.addTerm(value, "device");
    } else if (vrOf(element) === "DA") {
      for (const value of values) registry.addDate(value, "date", this.patient);
    } else if (vrOf(element) === "DT") {
      for (const value of values) registry.addDate(value.slice(0, 8), "date", this.patient);
    }
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
