export const TOOL_NAME = "deidkit";
export const TOOL_VERSION = "0.1.0";

/** deidkit's Implementation Class UID (PS3.7 D.3.3.2), a 2.25 UUID-derived UID fixed for the product. */
export const IMPLEMENTATION_CLASS_UID = "2.25.324637800336934257545694057477155975649";

/** Implementation Version Name (SH, at most 16 characters). */
export const IMPLEMENTATION_VERSION_NAME = `DEIDKIT_${TOOL_VERSION.replace(/\./g, "_")}`;
