/** Transfer syntaxes deidkit reads and writes (PS3.5 section 10 and Annex A). */

export interface TransferSyntax {
  uid: string;
  littleEndian: boolean;
  explicitVr: boolean;
  /** Deflated Explicit VR Little Endian: the data set after the file meta is raw-deflated. */
  deflated: boolean;
  /** Pixel data is encapsulated in fragments; deidkit copies them untouched. */
  encapsulated: boolean;
}

export const IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2";
export const EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1";
export const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99";
export const EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2";

const NATIVE: Record<string, Omit<TransferSyntax, "uid">> = {
  [IMPLICIT_VR_LITTLE_ENDIAN]: { littleEndian: true, explicitVr: false, deflated: false, encapsulated: false },
  [EXPLICIT_VR_LITTLE_ENDIAN]: { littleEndian: true, explicitVr: true, deflated: false, encapsulated: false },
  [DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]: { littleEndian: true, explicitVr: true, deflated: true, encapsulated: false },
  [EXPLICIT_VR_BIG_ENDIAN]: { littleEndian: false, explicitVr: true, deflated: false, encapsulated: false },
  // Encapsulated Uncompressed Explicit VR Little Endian (PS3.5 A.4.11).
  "1.2.840.10008.1.2.1.98": { littleEndian: true, explicitVr: true, deflated: false, encapsulated: true },
};

/**
 * Every other transfer syntax of the DICOM root 1.2.840.10008.1.2.4 (JPEG,
 * JPEG-LS, JPEG 2000, HTJ2K, MPEG, HEVC, JPEG XL), 1.2.840.10008.1.2.5 (RLE)
 * and 1.2.840.10008.1.2.8 (SMPTE ST 2110) encodes the data set as explicit VR
 * little endian with encapsulated pixel data (PS3.5 A.4).
 */
const ENCAPSULATED_PREFIXES = ["1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.7.", "1.2.840.10008.1.2.8."];

/** Returns the encoding of a transfer syntax UID, or undefined when deidkit does not know it. */
export function lookupTransferSyntax(uid: string): TransferSyntax | undefined {
  const native = NATIVE[uid];
  if (native) return { uid, ...native };
  if (ENCAPSULATED_PREFIXES.some((prefix) => uid === prefix || uid.startsWith(prefix))) {
    return { uid, littleEndian: true, explicitVr: true, deflated: false, encapsulated: true };
  }
  return undefined;
}
