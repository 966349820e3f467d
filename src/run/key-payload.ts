/**
 * The content sealed into the key file: everything an honest broker needs
 * to re-identify the output or to continue the series with the same
 * pseudonyms. This is the only place where original identifiers are kept.
 */
import type { IdentifierRegistry } from "../deid/identifiers.js";
import { encodeSecret } from "../pseudonym/secret.js";
import type { RunReport } from "./report.js";

export interface FileRecord {
  input: string;
  output: string;
  status: "written" | "quarantined";
  reason?: string;
  sopInstanceUid?: string;
}

export const KEY_PAYLOAD_FORMAT = "deidkit-key-payload";
export const KEY_PAYLOAD_VERSION = 1;

export interface KeyPayload {
  format: typeof KEY_PAYLOAD_FORMAT;
  version: number;
  /** The 32-byte secret the pseudonyms were derived from, so the series can be continued. */
  secret: string;
  /** Whether the secret came from --secret (true) or was made for this run. */
  secretSupplied: boolean;
  run: Pick<RunReport, "tool" | "version" | "startedAt" | "finishedAt" | "options">;
  patients: Array<{ originalId: string; pseudonymId: string; pseudonymName: string; shiftDays: number; mapped: boolean }>;
  identifiers: Array<{ original: string; replacement: string; category: string }>;
  uids: Array<{ original: string; replacement: string }>;
  files: FileRecord[];
}

export function buildKeyPayload(input: {
  secret: Uint8Array;
  secretSupplied: boolean;
  registry: IdentifierRegistry;
  uidMap: ReadonlyMap<string, string>;
  files: FileRecord[];
  report: RunReport;
}): KeyPayload {
  const { report } = input;
  return {
    format: KEY_PAYLOAD_FORMAT,
    version: KEY_PAYLOAD_VERSION,
    secret: encodeSecret(input.secret),
    secretSupplied: input.secretSupplied,
    run: { tool: report.tool, version: report.version, startedAt: report.startedAt, finishedAt: report.finishedAt, options: report.options },
    patients: [...input.registry.patients.values()].map((patient) => ({
      originalId: patient.key,
      pseudonymId: patient.pseudonymId,
      pseudonymName: patient.pseudonymName,
      shiftDays: patient.shiftDays,
      mapped: patient.mapped,
    })),
    identifiers: input.registry.allTerms().map((term) => ({ original: term.text, replacement: term.replacement, category: term.category })),
    uids: [...input.uidMap].map(([original, replacement]) => ({ original, replacement })),
    files: [...input.files].sort((a, b) => (a.input < b.input ? -1 : a.input > b.input ? 1 : 0)),
  };
}
