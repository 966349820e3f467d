/**
 * The run report: what was done, counted, and which files were left out and
 * why. It names files only by their de-identified output paths, so it holds
 * no identifier and may travel with the data.
 */
import { emptyCounts, type ActionCounts } from "../deid/apply.js";
import { TOOL_NAME, TOOL_VERSION } from "../version.js";

export interface QuarantineEntry {
  /** De-identified relative path the file would have had. */
  path: string;
  /** Stable reason code, e.g. UNSUPPORTED_FORMAT, DICOM_INVALID, SYMLINK. */
  reason: string;
  message: string;
}

export interface RunReport {
  tool: string;
  version: string;
  startedAt: string;
  finishedAt: string;
  dryRun: boolean;
  profile: string;
  options: string[];
  filesSeen: number;
  filesWritten: number;
  filesQuarantined: number;
  patients: number;
  uidsReplaced: number;
  actions: ActionCounts;
  quarantined: QuarantineEntry[];
  /** Output paths of files copied unchanged because they matched --pass-through; their content was not checked. */
  passedThrough: string[];
}

export function addCounts(list: readonly ActionCounts[]): ActionCounts {
  const total = emptyCounts();
  for (const counts of list) {
    for (const key of Object.keys(total) as (keyof ActionCounts)[]) total[key] += counts[key];
  }
  return total;
}

export function buildReport(input: {
  startedAt: Date;
  finishedAt: Date;
  options: string[];
  filesSeen: number;
  filesWritten: number;
  quarantined: QuarantineEntry[];
  counts: ActionCounts;
  patients: number;
  uids: number;
  dryRun: boolean;
  passedThrough: string[];
}): RunReport {
  return {
    tool: TOOL_NAME,
    version: TOOL_VERSION,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    dryRun: input.dryRun,
    profile: "PS3.15 2026c Basic Application Level Confidentiality Profile",
    options: input.options,
    filesSeen: input.filesSeen,
    filesWritten: input.filesWritten,
    filesQuarantined: input.quarantined.length,
    patients: input.patients,
    uidsReplaced: input.uids,
    actions: input.counts,
    quarantined: input.quarantined,
    passedThrough: input.passedThrough,
  };
}
