/**
 * The scan report: counts by identifier category, file type and DICOM
 * property, and the files that would be left out. Documented field by
 * field in docs/cli.md ("scan"); change a field only with a new `version`.
 */
import type { IdentifierCategory } from "../deid/identifiers.js";
import { TOOL_NAME, TOOL_VERSION } from "../version.js";
import type { EntryFacts } from "./inspect.js";
import type { PlannedEntry } from "./scan.js";
import { sopClassLabel } from "./sop-classes.js";

/** The categories of the identifier registry, in the order reports list them. */
export const IDENTIFIER_CATEGORIES: readonly IdentifierCategory[] = [
  "patient-name",
  "patient-id",
  "birth-date",
  "date",
  "staff-name",
  "address",
  "phone",
  "institution",
  "device",
  "other-id",
  "course-id",
];

export interface FlaggedFiles {
  files: number;
  /** Names of the flagged files (de-identified path, or left-out name). */
  paths: string[];
}

export interface ScanFile {
  path: string;
  type: string;
  action: "write" | "leave-out";
  reason: string | null;
  identifiers: IdentifierCategory[];
  contentSearched: boolean;
}

export interface ScanReport {
  format: "deidkit-scan";
  version: 1;
  tool: string;
  options: string[];
  summary: {
    entries: number;
    wouldWrite: number;
    wouldLeaveOut: number;
    notSearched: number;
    patients: number;
  };
  identifiers: Array<{ category: IdentifierCategory; terms: number; files: number }>;
  fileTypes: Array<{ type: string; files: number; leftOut: number }>;
  dicom: {
    files: number;
    unparsed: number;
    studies: number;
    series: number;
    modalities: Array<{ modality: string; files: number }>;
    sopClasses: Array<{ uid: string | null; name: string; files: number }>;
    characterSets: Array<{ characterSet: string; files: number }>;
    privateCreators: Array<{ creator: string; files: number; elements: number }>;
    flags: {
      privateTags: { files: number };
      burnedInAnnotation: FlaggedFiles;
      withoutPatientId: FlaggedFiles;
      unknownCharacterSet: FlaggedFiles;
    };
  };
  leftOut: Array<{ path: string; reason: string }>;
  files: ScanFile[];
}

export interface ReportInput {
  options: string[];
  patients: number;
  termCounts: ReadonlyMap<IdentifierCategory, number>;
  entries: ReadonlyArray<{ planned: PlannedEntry; facts: EntryFacts }>;
  /** True when a label read from a file contains no learnt identifier. */
  isSafeLabel(label: string): boolean;
}

/** Label printed in place of a value read from a file that fails its pattern or contains a learnt identifier. */
const WITHHELD = "(withheld)";
const MODALITY = /^[A-Z0-9_ ]{1,16}$/;
const CREATOR = /^[\x20-\x7e]{1,64}$/;

/** Counts distinct files per label, and an optional second number per label. */
class Tally {
  private readonly files = new Map<string, number>();
  private readonly extra = new Map<string, number>();

  add(label: string, extra = 0): void {
    this.files.set(label, (this.files.get(label) ?? 0) + 1);
    this.extra.set(label, (this.extra.get(label) ?? 0) + extra);
  }

  rows(): Array<{ label: string; files: number; extra: number }> {
    return [...this.files.keys()].sort().map((label) => ({ label, files: this.files.get(label)!, extra: this.extra.get(label)! }));
  }
}

function flagged(paths: string[]): FlaggedFiles {
  return { files: paths.length, paths };
}

function buildDicomSection(input: ReportInput): ScanReport["dicom"] {
  const safe = (value: string, pattern: RegExp): string => (pattern.test(value) && input.isSafeLabel(value) ? value : WITHHELD);
  const modalities = new Tally();
  const sopClasses = new Map<string, { uid: string | null; name: string; files: number }>();
  const characterSets = new Tally();
  const creators = new Map<string, { files: number; elements: number }>();
  const studies = new Set<string>();
  const series = new Set<string>();
  const burnedIn: string[] = [];
  const withoutPatientId: string[] = [];
  const unknownCharacterSet: string[] = [];
  let files = 0;
  let unparsed = 0;
  let withPrivate = 0;

  for (const { planned, facts } of input.entries) {
    if (facts.type !== "dicom") continue;
    files++;
    const dicom = facts.dicom;
    if (!dicom) {
      unparsed++;
      continue;
    }

    modalities.add(dicom.modality === "" ? "(missing)" : safe(dicom.modality, MODALITY));
    const sop = sopClassLabel(dicom.sopClassUid);
    const sopKey = `${sop.uid}|${sop.name}`;
    const sopRow = sopClasses.get(sopKey) ?? { ...sop, files: 0 };
    sopRow.files++;
    sopClasses.set(sopKey, sopRow);
    if (dicom.characterSet === undefined) unknownCharacterSet.push(planned.name);
    characterSets.add(dicom.characterSet === undefined ? "(unknown)" : dicom.characterSet || "(default repertoire)");
    if (dicom.studyUid) studies.add(dicom.studyUid);
    if (dicom.seriesUid) series.add(dicom.seriesUid);
    if (dicom.burnedInAnnotation) burnedIn.push(planned.name);
    if (!dicom.hasPatientId) withoutPatientId.push(planned.name);

    if (dicom.privateElements.size > 0) withPrivate++;
    const seen = new Set<string>();
    for (const [creator, count] of dicom.privateElements) {
      const label = creator === "" ? "(no private creator)" : safe(creator, CREATOR);
      const row = creators.get(label) ?? { files: 0, elements: 0 };
      if (!seen.has(label)) row.files++;
      seen.add(label);
      row.elements += count;
      creators.set(label, row);
    }
  }

  return {
    files,
    unparsed,
    studies: studies.size,
    series: series.size,
    modalities: modalities.rows().map((row) => ({ modality: row.label, files: row.files })),
    sopClasses: [...sopClasses.values()].sort((a, b) => a.name.localeCompare(b.name)),
    characterSets: characterSets.rows().map((row) => ({ characterSet: row.label, files: row.files })),
    privateCreators: [...creators.keys()].sort().map((creator) => ({ creator, ...creators.get(creator)! })),
    flags: {
      privateTags: { files: withPrivate },
      burnedInAnnotation: flagged(burnedIn),
      withoutPatientId: flagged(withoutPatientId),
      unknownCharacterSet: flagged(unknownCharacterSet),
    },
  };
}

/** Builds the report from the planned entries and what inspecting them found. */
export function buildReport(input: ReportInput): ScanReport {
  const files: ScanFile[] = input.entries.map(({ planned, facts }) => ({
    path: planned.name,
    type: planned.type,
    action: planned.reason ? "leave-out" : "write",
    reason: planned.reason ?? null,
    identifiers: IDENTIFIER_CATEGORIES.filter((category) => facts.categories.has(category)),
    contentSearched: facts.contentSearched,
  }));
  const types = new Map<string, { files: number; leftOut: number }>();
  for (const file of files) {
    const row = types.get(file.type) ?? { files: 0, leftOut: 0 };
    row.files++;
    if (file.action === "leave-out") row.leftOut++;
    types.set(file.type, row);
  }
  const leftOut = files.filter((file) => file.action === "leave-out").map((file) => ({ path: file.path, reason: file.reason! }));
  return {
    format: "deidkit-scan",
    version: 1,
    tool: `${TOOL_NAME} ${TOOL_VERSION}`,
    options: input.options,
    summary: {
      entries: files.length,
      wouldWrite: files.length - leftOut.length,
      wouldLeaveOut: leftOut.length,
      notSearched: files.filter((file) => !file.contentSearched).length,
      patients: input.patients,
    },
    identifiers: IDENTIFIER_CATEGORIES.map((category) => ({
      category,
      terms: input.termCounts.get(category) ?? 0,
      files: files.filter((file) => file.identifiers.includes(category)).length,
    })),
    fileTypes: [...types.keys()].sort().map((type) => ({ type, ...types.get(type)! })),
    dicom: buildDicomSection(input),
    leftOut,
    files,
  };
}
