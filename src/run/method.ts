/**
 * The attributes that record what de-identification was done (PS3.3
 * C.7.1.1 Patient Module: Patient Identity Removed, De-identification
 * Method and its Code Sequence; and Longitudinal
 * Temporal Information Modified, whose module varies by IOD).
 */
import type { CharsetCodec } from "../dicom/charset.js";
import { putElement, type Element, type Item } from "../dicom/dataset.js";
import { TAG } from "../dicom/tags.js";
import { encodeText } from "../deid/values.js";
import type { OptionName } from "../profile/profile.js";
import { TOOL_NAME, TOOL_VERSION } from "../version.js";

/** Coded values of PS3.16 CID 7050 De-identification Method, by option. */
const OPTION_CODES: Readonly<Record<OptionName, [string, string]>> = {
  "clean-graphics": ["113103", "Clean Graphics Option"],
  "clean-structured-content": ["113104", "Clean Structured Content Option"],
  "clean-descriptors": ["113105", "Clean Descriptors Option"],
  "retain-longitudinal-full-dates": ["113106", "Retain Longitudinal Temporal Information Full Dates Option"],
  "retain-longitudinal-modified-dates": ["113107", "Retain Longitudinal Temporal Information Modified Dates Option"],
  "retain-patient-characteristics": ["113108", "Retain Patient Characteristics Option"],
  "retain-device-identity": ["113109", "Retain Device Identity Option"],
  "retain-uids": ["113110", "Retain UIDs Option"],
  "retain-safe-private": ["113111", "Retain Safe Private Option"],
  "retain-institution-identity": ["113112", "Retain Institution Identity Option"],
};

const BASIC_PROFILE_CODE: [string, string] = ["113100", "Basic Application Confidentiality Profile"];

function textElement(tag: number, vr: string, values: string[], codec: CharsetCodec): Element {
  return { tag, vr, undefinedLength: false, bytes: encodeText(values, vr, codec) };
}

function codeItem(code: [string, string], codec: CharsetCodec, syntax: Item["syntax"]): Item {
  return {
    undefinedLength: false,
    syntax,
    elements: [
      textElement(TAG.CodeValue, "SH", [code[0]], codec),
      textElement(TAG.CodingSchemeDesignator, "SH", ["DCM"], codec),
      textElement(TAG.CodeMeaning, "LO", [code[1]], codec),
    ],
  };
}

export function longitudinalTemporalValue(options: ReadonlySet<OptionName>): string {
  if (options.has("retain-longitudinal-full-dates")) return "UNMODIFIED";
  if (options.has("retain-longitudinal-modified-dates")) return "MODIFIED";
  return "REMOVED";
}

/** Adds or replaces the de-identification method attributes of a top-level data set. */
export function recordMethod(dataset: Item, options: ReadonlySet<OptionName>, codec: CharsetCodec): void {
  const selected = (Object.keys(OPTION_CODES) as OptionName[]).filter((option) => options.has(option));
  const description = [`${TOOL_NAME} ${TOOL_VERSION}`, "PS3.15 2026c Basic Profile", ...selected];
  const codes = [BASIC_PROFILE_CODE, ...selected.map((option) => OPTION_CODES[option])];
  const explicit = dataset.syntax.explicitVr;
  putElement(dataset, textElement(TAG.PatientIdentityRemoved, "CS", ["YES"], codec));
  putElement(dataset, textElement(TAG.DeidentificationMethod, "LO", description, codec));
  putElement(dataset, {
    tag: TAG.DeidentificationMethodCodeSequence,
    vr: "SQ",
    undefinedLength: !explicit,
    items: codes.map((code) => codeItem(code, codec, dataset.syntax)),
  });
  putElement(dataset, textElement(TAG.LongitudinalTemporalInformationModified, "CS", [longitudinalTemporalValue(options)], codec));
}
