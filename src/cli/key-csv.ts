/** Flattens a decrypted key payload into CSV rows: kind, original, replacement, detail. */
import type { KeyPayload } from "../run/key-payload.js";

function cell(value: string | number | boolean | undefined): string {
  const text = value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function keyPayloadToCsv(payload: unknown): string {
  const key = payload as KeyPayload;
  const rows: Array<Array<string | number | boolean | undefined>> = [["kind", "original", "replacement", "detail"]];
  // The secret lets a later run continue the series: save it in a file and pass --secret.
  if (key.secret) rows.push(["secret", "", key.secret, key.secretSupplied ? "supplied" : "generated"]);
  for (const patient of key.patients ?? []) {
    rows.push(["patient", patient.originalId, patient.pseudonymId, `shiftDays=${patient.shiftDays}${patient.mapped ? ";mapped" : ""}`]);
  }
  for (const identifier of key.identifiers ?? []) rows.push(["identifier", identifier.original, identifier.replacement, identifier.category]);
  for (const uid of key.uids ?? []) rows.push(["uid", uid.original, uid.replacement, ""]);
  for (const file of key.files ?? []) rows.push(["file", file.input, file.output, file.status + (file.reason ? `:${file.reason}` : "")]);
  return `${rows.map((row) => row.map(cell).join(",")).join("\n")}\n`;
}
