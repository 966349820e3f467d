/**
 * The HTML rendering of a scan report: one self-contained page (inline
 * style, no scripts, no external resources) and its exclusive write.
 */
import { randomBytes } from "node:crypto";
import { chmod, copyFile, constants, link, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

import { DeidError } from "../errors.js";
import { describeReason } from "./reasons.js";
import type { ScanReport } from "./report.js";

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 70rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.flag { color: #a00; font-weight: bold; } code { font-size: 0.9em; }
`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

type Cell = string | number;

function htmlTable(headers: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  if (rows.length === 0) return "<p>None.</p>";
  const head = `<tr>${headers.map((header) => `<th>${escapeHtml(header)}</th>`).join("")}</tr>`;
  const body = rows
    .map((row) => `<tr>${row.map((cell) => (typeof cell === "number" ? `<td class="n">${cell}</td>` : `<td>${escapeHtml(cell)}</td>`)).join("")}</tr>`)
    .join("\n");
  return `<table>\n${head}\n${body}\n</table>`;
}

function flagSection(title: string, flag: { files: number; paths: string[] }): string {
  const count = flag.files > 0 ? `<span class="flag">${flag.files}</span>` : "0";
  const list = flag.paths.map((path) => `<li><code>${escapeHtml(path)}</code></li>`).join("");
  return `<h3>${escapeHtml(title)}: ${count}</h3>${list ? `<ul>${list}</ul>` : ""}`;
}

/** Renders the report as a complete HTML document. */
export function renderHtml(report: ScanReport): string {
  const { summary, dicom } = report;
  const sections = [
    `<h1>deidkit scan</h1>`,
    `<p>${escapeHtml(report.tool)}; profile options: ${escapeHtml(report.options.join(", ") || "(none)")}. ` +
      `Counts and de-identified names only: no identifier is shown.</p>`,
    htmlTable(
      ["entries", "would be written", "left out", "not searched to the end", "patients"],
      [[summary.entries, summary.wouldWrite, summary.wouldLeaveOut, summary.notSearched, summary.patients]],
    ),
    `<h2>Identifiers by category</h2>`,
    `<p>Terms are the distinct texts the run would search for (each written form of a name or date counts once).</p>`,
    htmlTable(["category", "distinct terms", "files"], report.identifiers.map((row) => [row.category, row.terms, row.files])),
    `<h2>File types</h2>`,
    htmlTable(["type", "files", "left out"], report.fileTypes.map((row) => [row.type, row.files, row.leftOut])),
    `<h2>DICOM</h2>`,
    htmlTable(["files", "unparsed", "studies", "series"], [[dicom.files, dicom.unparsed, dicom.studies, dicom.series]]),
    `<h3>Modalities</h3>`,
    htmlTable(["modality", "files"], dicom.modalities.map((row) => [row.modality, row.files])),
    `<h3>SOP classes</h3>`,
    htmlTable(["SOP class", "UID", "files"], dicom.sopClasses.map((row) => [row.name, row.uid ?? "", row.files])),
    `<h3>Character sets</h3>`,
    htmlTable(["Specific Character Set", "files"], dicom.characterSets.map((row) => [row.characterSet, row.files])),
    `<h3>Private creators</h3>`,
    htmlTable(["private creator", "files", "private elements"], dicom.privateCreators.map((row) => [row.creator, row.files, row.elements])),
    `<h2>Risk flags</h2>`,
    `<h3>Files with private elements: ${dicom.flags.privateTags.files}</h3>`,
    flagSection("Burned In Annotation YES", dicom.flags.burnedInAnnotation),
    flagSection("No Patient ID", dicom.flags.withoutPatientId),
    flagSection("Unknown character set", dicom.flags.unknownCharacterSet),
    `<h2>Files that would be left out</h2>`,
    htmlTable(["file", "reason", "meaning"], report.leftOut.map((row) => [row.path, row.reason, describeReason(row.reason)])),
    `<h2>All files</h2>`,
    htmlTable(
      ["file", "type", "action", "identifier categories found"],
      report.files.map((file) => [file.path, file.type, file.reason ? `leave out (${file.reason})` : "write", file.identifiers.join(", ")]),
    ),
  ];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>deidkit scan</title>
<style>${STYLE}</style>
</head>
<body>
${sections.join("\n")}
</body>
</html>
`;
}

/**
 * Writes `html` to `path`, which must not exist: the text goes to a
 * temporary file in the same folder, which is then hard-linked to `path`,
 * so the file appears complete or not at all and is never overwritten.
 */
export async function writeHtmlExclusive(path: string, html: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.deidkit-tmp-${randomBytes(4).toString("hex")}`);
  await writeFile(temp, html, { flag: "wx", mode: 0o644 });
  try {
    await chmod(temp, 0o644);
    try {
      await link(temp, path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST") throw outputExists();
      // File systems without hard links: an exclusive copy still never overwrites.
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EXDEV") throw error;
      try {
        await copyFile(temp, path, constants.COPYFILE_EXCL);
      } catch (copyError) {
        if ((copyError as NodeJS.ErrnoException).code === "EEXIST") throw outputExists();
        throw copyError;
      }
    }
  } finally {
    await rm(temp, { force: true });
  }
}

function outputExists(): DeidError {
  return new DeidError("OUTPUT_EXISTS", "the --html file already exists", {
    hint: "remove it or pass another path; deidkit never overwrites a report",
  });
}
