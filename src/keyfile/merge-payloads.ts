/**
 * Merging the decrypted payloads of several anonymize runs (or shards of one
 * series) into one payload for `deidkit key merge`.
 *
 * Patients are matched by original ID, identifiers and UIDs by their
 * original text. The merge never picks a winner: every disagreement is
 * counted by category, and the caller writes nothing unless there is none.
 * Conflict counts and categories never contain an identifier.
 */
import { UsageError } from "../errors.js";
import { KEY_PAYLOAD_FORMAT, KEY_PAYLOAD_VERSION, type FileRecord, type KeyPayload } from "../run/key-payload.js";

type RunInfo = KeyPayload["run"];
type PatientRecord = KeyPayload["patients"][number];
type IdentifierRecord = KeyPayload["identifiers"][number];
type UidRecord = KeyPayload["uids"][number];

/** A file record of a merged payload: `run` is its run's index in `runs`. */
export interface MergedFileRecord extends FileRecord {
  run: number;
}

/** A payload written by `key merge`: a KeyPayload whose files name their run. */
export interface MergedKeyPayload extends Omit<KeyPayload, "files"> {
  /** Every run merged, in the order given; a merged input contributes all of its runs. */
  runs: RunInfo[];
  files: MergedFileRecord[];
}

/** Stable names of the conflict categories `key merge` reports. */
export type ConflictCategory =
  | "secret"
  | "patient pseudonym ID"
  | "patient pseudonym name"
  | "patient date shift"
  | "pseudonym ID shared by two patients"
  | "identifier replacement"
  | "identifier category"
  | "UID replacement"
  | "replacement UID shared by two UIDs";

export interface MergeResult {
  payload: MergedKeyPayload;
  /** Number of conflicts per category; empty when the merge is clean. */
  conflicts: Map<ConflictCategory, number>;
}

/** One input: its decrypted payload and the path it was read from (for messages only). */
export interface MergeInput {
  path: string;
  payload: Record<string, unknown>;
}

function isRecordArray(value: unknown): value is Array<Record<string, unknown>> {
  return Array.isArray(value) && value.every((item) => typeof item === "object" && item !== null && !Array.isArray(item));
}

/** Checks that a decrypted payload has the shape anonymize writes, without quoting any of its values. */
function checkPayload(input: MergeInput): KeyPayload & { runs?: RunInfo[] } {
  const payload = input.payload;
  const problem = (what: string): UsageError =>
    new UsageError(`${input.path}: ${what}, so it is not a key written by deidkit anonymize or key merge`, {
      path: input.path,
      hint: "merge only key files written by deidkit anonymize or deidkit key merge",
    });
  if (payload.format !== KEY_PAYLOAD_FORMAT) throw problem("the payload has another format name");
  if (payload.version !== KEY_PAYLOAD_VERSION) throw problem(`the payload version is not ${KEY_PAYLOAD_VERSION}`);
  if (typeof payload.secret !== "string") throw problem("the payload has no secret");
  for (const member of ["patients", "identifiers", "uids", "files"]) {
    if (!isRecordArray(payload[member])) throw problem(`the payload member "${member}" is not a list of objects`);
  }
  if (payload.runs !== undefined && !isRecordArray(payload.runs)) throw problem(`the payload member "runs" is not a list of objects`);
  return payload as unknown as KeyPayload & { runs?: RunInfo[] };
}

class ConflictCounter {
  readonly counts = new Map<ConflictCategory, number>();

  add(category: ConflictCategory): void {
    this.counts.set(category, (this.counts.get(category) ?? 0) + 1);
  }
}

function mergePatients(lists: PatientRecord[][], conflicts: ConflictCounter): PatientRecord[] {
  const byOriginal = new Map<string, PatientRecord>();
  const byPseudonym = new Map<string, string>();
  for (const list of lists) {
    for (const patient of list) {
      const existing = byOriginal.get(patient.originalId);
      if (existing === undefined) {
        const holder = byPseudonym.get(patient.pseudonymId);
        if (holder !== undefined && holder !== patient.originalId) conflicts.add("pseudonym ID shared by two patients");
        byPseudonym.set(patient.pseudonymId, patient.originalId);
        byOriginal.set(patient.originalId, { ...patient });
        continue;
      }
      if (existing.pseudonymId !== patient.pseudonymId) conflicts.add("patient pseudonym ID");
      if (existing.pseudonymName !== patient.pseudonymName) conflicts.add("patient pseudonym name");
      if (existing.shiftDays !== patient.shiftDays) conflicts.add("patient date shift");
      // A pseudonym that came from --map in any run must stay mapped, so --continue carries it over.
      existing.mapped = existing.mapped || patient.mapped;
    }
  }
  return [...byOriginal.values()];
}

function mergeIdentifiers(lists: IdentifierRecord[][], conflicts: ConflictCounter): IdentifierRecord[] {
  const byOriginal = new Map<string, IdentifierRecord>();
  for (const list of lists) {
    for (const identifier of list) {
      const existing = byOriginal.get(identifier.original);
      if (existing === undefined) {
        byOriginal.set(identifier.original, { ...identifier });
        continue;
      }
      if (existing.replacement !== identifier.replacement) conflicts.add("identifier replacement");
      if (existing.category !== identifier.category) conflicts.add("identifier category");
    }
  }
  return [...byOriginal.values()];
}

function mergeUids(lists: UidRecord[][], conflicts: ConflictCounter): UidRecord[] {
  const byOriginal = new Map<string, UidRecord>();
  const byReplacement = new Map<string, string>();
  for (const list of lists) {
    for (const uid of list) {
      const existing = byOriginal.get(uid.original);
      if (existing === undefined) {
        const holder = byReplacement.get(uid.replacement);
        if (holder !== undefined && holder !== uid.original) conflicts.add("replacement UID shared by two UIDs");
        byReplacement.set(uid.replacement, uid.original);
        byOriginal.set(uid.original, { ...uid });
        continue;
      }
      if (existing.replacement !== uid.replacement) conflicts.add("UID replacement");
    }
  }
  return [...byOriginal.values()];
}

/**
 * Merges decrypted key payloads in the order given. Throws a usage error for
 * a payload that anonymize did not write. The result's payload is complete
 * even when there are conflicts, but it must not be written then.
 */
export function mergeKeyPayloads(inputs: readonly MergeInput[]): MergeResult {
  if (inputs.length < 2) {
    throw new UsageError("key merge needs at least two key files", { hint: "pass two or more key files before --out" });
  }
  const payloads = inputs.map(checkPayload);
  const conflicts = new ConflictCounter();
  const secrets = new Set(payloads.map((payload) => payload.secret));
  // Each input whose secret differs from the first one counts once.
  for (const payload of payloads.slice(1)) if (payload.secret !== payloads[0]!.secret) conflicts.add("secret");

  const runs: RunInfo[] = [];
  const files: MergedFileRecord[] = [];
  for (const payload of payloads) {
    const offset = runs.length;
    const inputRuns = payload.runs ?? [payload.run];
    runs.push(...inputRuns);
    for (const file of payload.files as Array<FileRecord & { run?: number }>) {
      // A file of an already merged key keeps its run; a file of a plain run key belongs to that run.
      const run = payload.runs !== undefined && typeof file.run === "number" ? offset + file.run : offset;
      files.push({ ...file, run });
    }
  }

  const payload: MergedKeyPayload = {
    format: KEY_PAYLOAD_FORMAT,
    version: KEY_PAYLOAD_VERSION,
    secret: secrets.size === 1 ? payloads[0]!.secret : "",
    secretSupplied: payloads.some((item) => item.secretSupplied === true),
    // The first run stands for the series, so readers that know only `run` still find a tool, version and options.
    run: runs[0]!,
    runs,
    patients: mergePatients(payloads.map((item) => item.patients), conflicts),
    identifiers: mergeIdentifiers(payloads.map((item) => item.identifiers), conflicts),
    uids: mergeUids(payloads.map((item) => item.uids), conflicts),
    files,
  };
  return { payload, conflicts: conflicts.counts };
}
