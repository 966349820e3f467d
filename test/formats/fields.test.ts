import { describe, expect, test } from "vitest";

import {
  classifyField,
  datesIn,
  fieldWords,
  isDateText,
  normaliseFieldName,
  replaceDateText,
  replaceDateValue,
  toPersonName,
  type FieldClass,
} from "../../src/formats/fields.js";

describe("classifyField", () => {
  const cases: Array<[string, FieldClass]> = [
    // Patient IDs, however pipelines spell them.
    ["patient_id", "patient-id"],
    ["PatientID", "patient-id"],
    ["patientId", "patient-id"],
    ["Patient ID", "patient-id"],
    ["PATIENT_ID", "patient-id"],
    ["MRN", "patient-id"],
    ["pat_id", "patient-id"],
    ["subject_id", "patient-id"],
    ["participant_id", "patient-id"],
    ["source_patient_id", "patient-id"],
    ["sourcepatientid", "patient-id"],
    ["patient_number", "patient-id"],
    ["OtherPatientIDs", "patient-id"],
    ["00100020", "patient-id"],
    // Names.
    ["patient_name", "patient-name"],
    ["PatientName", "patient-name"],
    ["Patient Name", "patient-name"],
    ["first_name", "patient-name"],
    ["lastName", "patient-name"],
    ["surname", "patient-name"],
    ["00100010", "patient-name"],
    // Birth dates.
    ["birth_date", "birth-date"],
    ["dob", "birth-date"],
    ["DOB", "birth-date"],
    ["patient_birth_date", "birth-date"],
    ["PatientBirthDate", "birth-date"],
    ["date_of_birth", "birth-date"],
    ["patientDOB", "birth-date"],
    ["birth_dt", "birth-date"],
    // Courses.
    ["course_id", "course-id"],
    ["course_key", "course-id"],
    ["CourseID", "course-id"],
    ["course", "course-id"],
    // Staff.
    ["reviewer_name", "staff-name"],
    ["reviewer", "staff-name"],
    ["reviewername", "staff-name"],
    ["physicians_of_record", "staff-name"],
    ["PhysiciansOfRecord", "staff-name"],
    ["referring_physician", "staff-name"],
    ["ReferringPhysicianName", "staff-name"],
    ["operators_name", "staff-name"],
    ["OperatorsName", "staff-name"],
    ["physician", "staff-name"],
    ["PerformingPhysicianName", "staff-name"],
    ["reviewed_by", "staff-name"],
    ["createdBy", "staff-name"],
    ["approvedby", "staff-name"],
    ["reviewer_id", "other-id"],
    // Dates.
    ["plan_date", "date"],
    ["review_date", "date"],
    ["PlanDate", "date"],
    ["StudyDate", "date"],
    ["AcquisitionDateTime", "date"],
    ["acquisition_datetime", "date"],
    ["timestamp", "date"],
    ["created_at", "date"],
    ["reviewedOn", "date"],
    ["start_dt", "date"],
    ["date", "date"],
    ["plandate", "date"],
    ["reviewer_signature_date", "date"],
    // Other identifiers and contact details.
    ["AccessionNumber", "other-id"],
    ["accession", "other-id"],
    ["StudyID", "other-id"],
    ["IssuerOfPatientID", "other-id"],
    ["InstitutionName", "institution"],
    ["InstitutionAddress", "institution"],
    ["InstitutionalDepartmentName", "institution"],
    ["hospital", "institution"],
    ["PatientAddress", "address"],
    ["home_address", "address"],
    ["zip_code", "address"],
    ["phone_number", "phone"],
    ["PatientTelephoneNumbers", "phone"],
    ["email", "email"],
    ["e-mail", "email"],
    ["contact_email", "email"],
    ["StationName", "device"],
    ["DeviceSerialNumber", "device"],
    ["ip_address", "device"],
    // Kept.
    ["age", "age"],
    ["PatientAge", "age"],
    ["age_at_diagnosis", "age"],
    // Not identifiers.
    ["update_rate", "none"],
    ["date_format", "none"],
    ["updated", "none"],
    ["candidate", "none"],
    ["dt", "none"],
    ["sort_by", "none"],
    ["structure_name", "none"],
    ["name", "none"],
    ["id", "none"],
    ["image", "none"],
    ["stage", "none"],
    ["dosage", "none"],
    ["birth_weight", "none"],
    ["TypeOfPatientID", "none"],
    ["StudyInstanceUID", "none"],
    ["SeriesInstanceUID", "none"],
    ["AcquisitionTime", "none"],
    ["PatientSex", "none"],
    ["PatientWeight", "none"],
    ["SeriesDescription", "none"],
    ["Manufacturer", "none"],
    ["dose_gy", "none"],
    ["", "none"],
    ["00280010", "none"],
  ];
  test.each(cases)("%s is %s", (name, expected) => {
    expect(classifyField(name)).toBe(expected);
  });
});

describe("field names", () => {
  test("normaliseFieldName drops separators", () => {
    expect(normaliseFieldName("Patient ID")).toBe("patientid");
    expect(normaliseFieldName("patient_id")).toBe("patientid");
    expect(normaliseFieldName("\uFEFFpatient-id")).toBe("patientid");
  });

  test("fieldWords splits camelCase and acronyms", () => {
    expect(fieldWords("AcquisitionDateTime")).toEqual(["acquisition", "date", "time"]);
    expect(fieldWords("PatientID")).toEqual(["patient", "id"]);
    expect(fieldWords("OtherPatientIDs")).toEqual(["other", "patient", "ids"]);
    expect(fieldWords("patientDOB")).toEqual(["patient", "dob"]);
    expect(fieldWords("plan_date2")).toEqual(["plan", "date", "2"]);
  });
});

describe("replaceDateText", () => {
  const shiftCases: Array<[string, number, string]> = [
    ["2019-03-15", -10, "2019-03-05"],
    ["2019-03-05", -10, "2019-02-23"],
    ["2019-3-5", 1, "2019-3-6"],
    ["2019/03/15", 1, "2019/03/16"],
    ["2019-03-15T10:30:00", -1, "2019-03-14T10:30:00"],
    ["2019-03-15T10:30:00.123Z", -1, "2019-03-14T10:30:00.123Z"],
    ["2019-03-15T10:30:00+01:00", 366, "2020-03-15T10:30:00+01:00"],
    ["2019-03-15 10:30", -1, "2019-03-14 10:30"],
    ["20190315", -1, "20190314"],
    ["20190315103000.5+0100", -1, "20190314103000.5+0100"],
    ["15.03.2019", -1, "14.03.2019"],
    ["5.3.2019", -1, "4.3.2019"],
    ["03/15/2019", -1, "03/14/2019"],
    ["15/03/2019", 1, "16/03/2019"],
    ["15-03-2019", 1, "16-03-2019"],
    ["15 March 2019", 17, "01 April 2019"],
    ["15 MAR 2019", 17, "01 APR 2019"],
    ["15-Mar-2019", -15, "28-Feb-2019"],
    ["March 15, 2019", 20, "April 4, 2019"],
    ["15. März 2019", 31, "15. April 2019"],
    ["2020-02-28", 1, "2020-02-29"],
    ["1999-12-31", 1, "2000-01-01"],
  ];
  test.each(shiftCases)("shifts %s by %i days", (text, days, expected) => {
    expect(replaceDateText(text, days)).toEqual({ text: expected, replaced: 1 });
  });

  test("shifts every date in a sentence and keeps the rest", () => {
    const result = replaceDateText("planned 2019-03-15, reviewed 16.03.2019 by X", -2);
    expect(result.text).toBe("planned 2019-03-13, reviewed 14.03.2019 by X");
    expect(result.replaced).toBe(2);
  });

  test("replaces dates with their times by a placeholder", () => {
    const result = replaceDateText("from 2019-03-15T10:30:00Z to 15.03.2019 10:45", undefined);
    expect(result.text).toBe("from [DATE] to [DATE]");
    expect(result.replaced).toBe(2);
  });

  test("leaves non-dates alone", () => {
    for (const text of ["2019-13-45", "20191345", "1.2.840.10008.20190315", "v1.2.3", "12345678", "2019-02-30", "99/99/2019", "1.2.2019.5"]) {
      expect(replaceDateText(text, -5), text).toEqual({ text, replaced: 0 });
    }
  });
});

describe("replaceDateValue", () => {
  test("shifts Unix times in seconds and milliseconds", () => {
    expect(replaceDateValue("1552608000", -1).text).toBe("1552521600");
    expect(replaceDateValue("1552608000123", -1).text).toBe("1552521600123");
    expect(replaceDateValue("1552608000.25", 1).text).toBe("1552694400.25");
  });

  test("replaces unreadable dates that have digits", () => {
    expect(replaceDateValue("03/2019", -1)).toEqual({ text: "[DATE]", replaced: 1 });
    expect(replaceDateValue("2019", -1)).toEqual({ text: "[DATE]", replaced: 1 });
    expect(replaceDateValue("1552608000", undefined)).toEqual({ text: "[DATE]", replaced: 1 });
  });

  test("keeps values without digits", () => {
    expect(replaceDateValue("unknown", -1)).toEqual({ text: "unknown", replaced: 0 });
    expect(replaceDateValue("", -1)).toEqual({ text: "", replaced: 0 });
  });
});

describe("date helpers", () => {
  test("datesIn reads each form", () => {
    expect(datesIn("1947-03-16 and 16.03.1947 and 19470316")).toEqual([
      { year: 1947, month: 3, day: 16 },
      { year: 1947, month: 3, day: 16 },
      { year: 1947, month: 3, day: 16 },
    ]);
  });

  test("isDateText matches whole dates only", () => {
    expect(isDateText("2019-03-15")).toBe(true);
    expect(isDateText(" 2019-03-15T10:00:00Z ")).toBe(true);
    expect(isDateText("15.03.2019")).toBe(true);
    expect(isDateText("20190315")).toBe(false);
    expect(isDateText("planned 2019-03-15")).toBe(false);
    expect(isDateText("2019-03-15/2019-03-16")).toBe(false);
  });
});

describe("toPersonName", () => {
  const cases: Array<[string, string]> = [
    ["Jane Doe", "Doe^Jane"],
    ["Doe, Jane", "Doe^Jane"],
    ["Doe, Jane M", "Doe^Jane^M"],
    ["Jane M. Doe", "Doe^Jane^M."],
    ["Dr. Jane Doe", "Doe^Jane"],
    ["DOE^JANE^M", "DOE^JANE^M"],
    ["Doe", "Doe"],
    ["  Jane   Doe  ", "Doe^Jane"],
  ];
  test.each(cases)("%s gives %s", (text, expected) => {
    expect(toPersonName(text)).toBe(expected);
  });
});
