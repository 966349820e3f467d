/**
 * `verify`: a residual-PHI scan of a de-identified output. With the key's
 * identifiers it searches every place of every file for each original
 * identifier. Without them it checks the DICOM rules it can check alone
 * (see rules.ts). Findings never contain the identifier itself.
 */

import { withTemporaryScratch } from "../run/unpublished.js";
import { walkTree } from "../tree/walk.js";
import { IdentifierMatcher, type KeyIdentifier } from "./matcher.js";
import { checkDicomRules } from "./rules.js";
import { fileViewsUnder } from "./views.js";

export type Severity = "error" | "warning";

export interface Finding {
  /** Path of the file relative to the verified folder. In key mode each identifier in it is replaced by "[#N]". */
  file: string;
  /** Location in the file: "path", "bytes", a DICOM tag path, an archive member. */
  place: string;
  category: string;
  severity: Severity;
  /** Index of the identifier in the key's list (key mode only), so the key holder can look it up. */
  identifier?: number;
  message?: string;
}

export interface VerifyResult {
  filesChecked: number;
  findings: Finding[];
  errors: number;
  warnings: number;
}

/**
 * Dates are shifted, so a shifted date can equal another patient's original
 * date by chance; such matches are warnings. Every other category is an error.
 */
const WARNING_CATEGORIES = new Set(["date"]);

export interface VerifyOptions {
  /** Original identifiers from the decrypted key; without them only the rules are checked. */
  identifiers?: readonly KeyIdentifier[];
  onProgress?: (done: number, total: number) => void;
}

export async function verifyTree(root: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  // Archive members are extracted here while they are searched; an interrupt removes the folder.
  return withTemporaryScratch("verify", (scratch) => verifyIn(root, options, scratch));
}

async function verifyIn(root: string, options: VerifyOptions, scratch: string): Promise<VerifyResult> {
  const entries = await walkTree(root);
  const matcher = options.identifiers ? new IdentifierMatcher(options.identifiers) : undefined;
  const findings: Finding[] = [];
  let done = 0;
  for (const entry of entries) {
    options.onProgress?.(done++, entries.length);
    if (entry.kind !== "file") {
      findings.push({ file: entry.relativePath, place: "path", category: entry.kind, severity: "error", message: "not a regular file" });
      continue;
    }
    const seen = new Set<string>();
    const add = (finding: Finding): void => {
      const key = `${finding.place}|${finding.category}|${finding.identifier ?? finding.message}`;
      if (seen.has(key)) return;
      seen.add(key);
      findings.push(finding);
    };
    if (matcher) {
      for (const match of matcher.find(entry.relativePath)) {
        add({ file: entry.relativePath, place: "path", category: match.category, identifier: match.identifier, severity: severityOf(match.category) });
      }
      try {
        for await (const view of fileViewsUnder(scratch, entry.path, entry.relativePath)) {
          for (const match of matcher.find(view.text)) {
            add({ file: entry.relativePath, place: view.place, category: match.category, identifier: match.identifier, severity: severityOf(match.category) });
          }
        }
      } catch (error) {
        add({ file: entry.relativePath, place: "file", category: "unreadable", severity: "error", message: `could not be searched: ${(error as Error).name}` });
      }
    }
    for (const finding of await checkDicomRules(entry.path)) add({ file: entry.relativePath, ...finding });
  }
  options.onProgress?.(entries.length, entries.length);
  // A file, folder or archive member named after an identifier must not be printed as found.
  if (matcher) {
    for (const finding of findings) {
      finding.file = matcher.redact(finding.file);
      finding.place = matcher.redact(finding.place);
    }
  }
  const errors = findings.filter((finding) => finding.severity === "error").length;
  return { filesChecked: entries.length, findings, errors, warnings: findings.length - errors };
}

function severityOf(category: string): Severity {
  return WARNING_CATEGORIES.has(category) ? "warning" : "error";
}

/** Returns the identifiers of a decrypted key payload (see run/key-payload.ts) in a stable order. */
export function identifiersFromKey(payload: Record<string, unknown>): KeyIdentifier[] {
  const list: KeyIdentifier[] = [];
  const patients = (payload.patients ?? []) as Array<{ originalId: string }>;
  for (const patient of patients) if (patient.originalId) list.push({ text: patient.originalId, category: "patient-id" });
  const identifiers = (payload.identifiers ?? []) as Array<{ original: string; category: string }>;
  for (const identifier of identifiers) list.push({ text: identifier.original, category: identifier.category });
  const uids = (payload.uids ?? []) as Array<{ original: string }>;
  for (const uid of uids) list.push({ text: uid.original, category: "uid" });
  return list;
}
