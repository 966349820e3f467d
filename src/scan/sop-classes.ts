/**
 * Names of the Storage SOP Classes common in radiotherapy research data,
 * from PS3.4 Annex B and PS3.6 Annex A. A scan prints these names. It
 * prints a SOP Class UID outside this list only when it is under the DICOM
 * root 1.2.840.10008, because the standard defines such UIDs.
 */
export const SOP_CLASS_NAMES: ReadonlyMap<string, string> = new Map([
  ["1.2.840.10008.5.1.4.1.1.1", "Computed Radiography Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.2", "CT Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.2.1", "Enhanced CT Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.4", "MR Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.7", "Secondary Capture Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.20", "Nuclear Medicine Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.66", "Raw Data Storage"],
  ["1.2.840.10008.5.1.4.1.1.66.1", "Spatial Registration Storage"],
  ["1.2.840.10008.5.1.4.1.1.66.3", "Deformable Spatial Registration Storage"],
  ["1.2.840.10008.5.1.4.1.1.88.11", "Basic Text SR Storage"],
  ["1.2.840.10008.5.1.4.1.1.88.22", "Enhanced SR Storage"],
  ["1.2.840.10008.5.1.4.1.1.88.33", "Comprehensive SR Storage"],
  ["1.2.840.10008.5.1.4.1.1.104.1", "Encapsulated PDF Storage"],
  ["1.2.840.10008.5.1.4.1.1.128", "Positron Emission Tomography Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.1", "RT Image Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.2", "RT Dose Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.3", "RT Structure Set Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.4", "RT Beams Treatment Record Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.5", "RT Plan Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.6", "RT Brachy Treatment Record Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.7", "RT Treatment Summary Record Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.8", "RT Ion Plan Storage"],
  ["1.2.840.10008.5.1.4.1.1.481.9", "RT Ion Beams Treatment Record Storage"],
]);

const DICOM_ROOT_UID = /^1\.2\.840\.10008(\.\d+)+$/;

/** Returns the label a scan prints for a SOP Class UID: its name, the standard UID, or a fixed word. */
export function sopClassLabel(uid: string): { uid: string | null; name: string } {
  const name = SOP_CLASS_NAMES.get(uid);
  if (name) return { uid, name };
  if (DICOM_ROOT_UID.test(uid)) return { uid, name: "other standard SOP class" };
  return { uid: null, name: uid === "" ? "missing" : "non-standard SOP class" };
}
