/**
 * DICOM Specific Character Set (0008,0005) codec: decodes text values to
 * find identifiers in them and encodes replacement text back into the
 * character set that the file declares.
 */
export { CHARSET_SENSITIVE_VRS, codecForSpecificCharacterSet } from "./charset/codec.js";
export type { CharsetCodec } from "./charset/codec.js";
