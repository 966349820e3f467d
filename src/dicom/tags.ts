/** Tags are held as unsigned 32-bit numbers: group in the high 16 bits. */
export type Tag = number;

export function makeTag(group: number, element: number): Tag {
  return ((group << 16) | element) >>> 0;
}

export function tagGroup(tag: Tag): number {
  return tag >>> 16;
}

export function tagElement(tag: Tag): number {
  return tag & 0xffff;
}

/** Formats a tag as `(GGGG,EEEE)`, the notation of PS3.6. */
export function formatTag(tag: Tag): string {
  const hex = tag.toString(16).toUpperCase().padStart(8, "0");
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

/** Formats a tag as the 8 upper-case hex digits used by the generated tables. */
export function tagKey(tag: Tag): string {
  return tag.toString(16).toUpperCase().padStart(8, "0");
}

export function isPrivateTag(tag: Tag): boolean {
  return (tagGroup(tag) & 1) === 1;
}

/** Private Creator elements reserve blocks: (gggg,0010) to (gggg,00FF), gggg odd. */
export function isPrivateCreatorTag(tag: Tag): boolean {
  const element = tagElement(tag);
  return isPrivateTag(tag) && element >= 0x10 && element <= 0xff;
}

/** Returns the tag of the Private Creator that reserves the block of a private data element. */
export function privateCreatorTagFor(tag: Tag): Tag | undefined {
  const element = tagElement(tag);
  if (!isPrivateTag(tag) || element < 0x1000) return undefined;
  return makeTag(tagGroup(tag), element >>> 8);
}

export const TAG = {
  FileMetaInformationGroupLength: 0x00020000,
  FileMetaInformationVersion: 0x00020001,
  MediaStorageSOPClassUID: 0x00020002,
  MediaStorageSOPInstanceUID: 0x00020003,
  TransferSyntaxUID: 0x00020010,
  ImplementationClassUID: 0x00020012,
  ImplementationVersionName: 0x00020013,
  SpecificCharacterSet: 0x00080005,
  SOPClassUID: 0x00080016,
  SOPInstanceUID: 0x00080018,
  StudyDate: 0x00080020,
  Modality: 0x00080060,
  PatientName: 0x00100010,
  PatientID: 0x00100020,
  PatientBirthDate: 0x00100030,
  PatientAge: 0x00101010,
  PatientIdentityRemoved: 0x00120062,
  DeidentificationMethod: 0x00120063,
  DeidentificationMethodCodeSequence: 0x00120064,
  LongitudinalTemporalInformationModified: 0x00280303,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
  CodeValue: 0x00080100,
  CodingSchemeDesignator: 0x00080102,
  CodeMeaning: 0x00080104,
  PixelData: 0x7fe00010,
  Item: 0xfffee000,
  ItemDelimitationItem: 0xfffee00d,
  SequenceDelimitationItem: 0xfffee0dd,
} as const;
