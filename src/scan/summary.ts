/** The plain-text rendering of a scan report, for the terminal. */
import { describeReason } from "./reasons.js";
import type { ScanReport } from "./report.js";

function table(rows: ReadonlyArray<readonly string[]>, indent = "  "): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows.map((row) => `${indent}${row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index]))).join("  ")}`.trimEnd());
}

function flagLine(label: string, flag: { files: number; paths: string[] }): string[] {
  return [`  ${label}: ${flag.files}`, ...flag.paths.map((path) => `    ${path}`)];
}

/** Renders the report as lines of text; every value shown is a count, a code, a fixed label or a de-identified name. */
export function renderSummary(report: ScanReport): string[] {
  const { summary, dicom } = report;
  const lines = [
    `entries: ${summary.entries} (${summary.wouldWrite} would be written, ${summary.wouldLeaveOut} left out, ${summary.notSearched} not searched to the end)`,
    `patients: ${summary.patients}`,
    `profile options: ${report.options.join(", ") || "(none)"}`,
    "",
    "identifiers (distinct terms, files they occur in):",
    ...table(report.identifiers.map((row) => [row.category, String(row.terms), String(row.files)])),
    "",
    "file types (files, left out):",
    ...table(report.fileTypes.map((row) => [row.type, String(row.files), String(row.leftOut)])),
    "",
    `DICOM: ${dicom.files} files (${dicom.unparsed} unparsed), ${dicom.studies} studies, ${dicom.series} series`,
    "  modalities:",
    ...table(dicom.modalities.map((row) => [row.modality, String(row.files)]), "    "),
    "  SOP classes:",
    ...table(dicom.sopClasses.map((row) => [row.name, row.uid ?? "", String(row.files)]), "    "),
    "  character sets:",
    ...table(dicom.characterSets.map((row) => [row.characterSet, String(row.files)]), "    "),
    `  private creators (files, elements):${dicom.privateCreators.length ? "" : " none"}`,
    ...table(dicom.privateCreators.map((row) => [row.creator, String(row.files), String(row.elements)]), "    "),
    "",
    "risk flags:",
    `  files with private elements: ${dicom.flags.privateTags.files}`,
    ...flagLine("Burned In Annotation YES", dicom.flags.burnedInAnnotation),
    ...flagLine("no Patient ID", dicom.flags.withoutPatientId),
    ...flagLine("unknown character set", dicom.flags.unknownCharacterSet),
    "",
    `left out: ${report.leftOut.length}`,
    ...table(report.leftOut.map((row) => [row.path, row.reason, describeReason(row.reason)])),
  ];
  return lines;
}
