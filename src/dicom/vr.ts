/** Value Representations and their encoding rules (PS3.5 section 6.2 and 7.1.2). */

/** VRs whose explicit encoding has 2 reserved bytes and a 32-bit length (PS3.5 Table 7.1-1). */
const LONG_LENGTH_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);

const ALL_VRS = new Set([
  "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
  "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV",
]);

/** VRs holding character strings. */
export const STRING_VRS = new Set(["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"]);

/** Maximum value length in bytes for each string VR with a fixed limit (PS3.5 Table 6.2-1), per value. */
export const MAX_VALUE_LENGTH: Readonly<Record<string, number>> = {
  AE: 16, AS: 4, CS: 16, DA: 8, DS: 16, DT: 26, IS: 12, LO: 64, LT: 10240, PN: 64 * 3 + 2,
  SH: 16, ST: 1024, TM: 14, UI: 64,
};

export function isKnownVr(vr: string): boolean {
  return ALL_VRS.has(vr);
}

export function hasLongLength(vr: string): boolean {
  return LONG_LENGTH_VRS.has(vr);
}

export function isStringVr(vr: string): boolean {
  return STRING_VRS.has(vr);
}

/** UI values are padded with NUL, other strings with a space (PS3.5 section 6.2). */
export function paddingByte(vr: string): number {
  if (vr === "UI") return 0x00;
  if (STRING_VRS.has(vr)) return 0x20;
  return 0x00;
}
