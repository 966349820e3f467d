/** One row of PS3.15 Table E.1-1 as shipped in `generated/table-e1-1.ts`. */
export interface ProfileRow {
  name: string;
  /** Tag as printed in the table, e.g. "(0008,0050)" or "(60xx,3000)". */
  tag: string;
  tagKind: "exact" | "repeatingGroup" | "privateOddGroup";
  /** 8 upper-case hex digits with `x` for a wildcard nibble; null for the private row. */
  tagPattern: string | null;
  keyword: string | null;
  vr: string | null;
  retired: boolean;
  basicProfile: string;
  retainSafePrivate: string | null;
  retainUIDs: string | null;
  retainDeviceIdentity: string | null;
  retainInstitutionIdentity: string | null;
  retainPatientCharacteristics: string | null;
  retainLongitudinalFullDates: string | null;
  retainLongitudinalModifiedDates: string | null;
  cleanDescriptors: string | null;
  cleanStructuredContent: string | null;
  cleanGraphics: string | null;
}

/** One row of PS3.15 Table E.3.10-1 Safe Private Attributes. */
export interface SafePrivateRow {
  /** Group, 4 upper-case hex digits. */
  group: string;
  /** Element offset within the private block, 2 upper-case hex digits. */
  elementOffset: string;
  privateCreator: string;
  vr: string | null;
}
