// The XLSX handler: a workbook with identifiers planted in every part is
// learnt and written as a run would, then read back with Python's zipfile
// and openpyxl. Also the parts that quarantine a workbook, the zip caps,
// the formula rewriter and the XML tokenizer on their own.

import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { QuarantineReason } from "../../src/deid/apply.js";
import { TextCleaner, uidMapper } from "../../src/deid/cleaner.js";
import { IdentifierRegistry, type Patient } from "../../src/deid/identifiers.js";
import { DeidError } from "../../src/errors.js";
import type { LearnContext, WriteContext } from "../../src/formats/types.js";
import { FormulaRewriter, sanitizeSheetName, SheetNames } from "../../src/formats/xlsx/formula.js";
import { xlsxFormat } from "../../src/formats/xlsx/index.js";
import { cleanExternalTarget } from "../../src/formats/xlsx/package.js";
import { Scrubber } from "../../src/formats/xlsx/scrub.js";
import { isDateFormatCode, serialToDate } from "../../src/formats/xlsx/dates.js";
import { XmlTokenizer, type XmlToken } from "../../src/formats/xlsx/xml.js";
import { MAX_COMPRESSION_RATIO, MAX_ENTRIES, MAX_ENTRY_BYTES } from "../../src/formats/xlsx/zip.js";
import { initSodium } from "../../src/pseudonym/keyed-hash.js";
import { anonymizeTree, expectExitMatchesReport } from "../helpers/cli.js";
import { listFiles, makeTestTree, TEST_SECRET } from "../helpers/tree.js";
import {
  buildPlantedWorkbook,
  editMembers,
  hasOpenpyxl,
  PLANTED_IDENTIFIERS,
  readMembers,
  readWorkbook,
  writeRawZip,
  type WorkbookView,
} from "../helpers/xlsx.js";

const OPENPYXL = hasOpenpyxl();

test("openpyxl is installed where CI runs", () => {
  // The interoperability checks below need Debian's python3-openpyxl; CI must install it.
  if (process.env.CI === "true") expect(OPENPYXL).toBe(true);
});

let dir: string;
let planted: string;

beforeAll(async () => {
  await initSodium();
  dir = await mkdtemp(join(tmpdir(), "deidkit-xlsx-"));
  planted = join(dir, "planted.xlsx");
  if (OPENPYXL) buildPlantedWorkbook(planted);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  target: string;
  replacements: number;
  patient: Patient;
  registry: IdentifierRegistry;
}

/** Seeds a registry as the DICOM pass over the sample tree's CT would. */
function seededRegistry(shiftDates: boolean): { registry: IdentifierRegistry; patient: Patient } {
  const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates });
  const patient = registry.patient("12345678");
  registry.addPatientName("DOE^JANE^M", patient);
  registry.addDate("19470316", "birth-date", patient);
  registry.addDate("20190412", "date", patient);
  registry.addOtherName("SMITH^JOHN^^DR");
  registry.addOtherName("NGUYEN^LINH^^DR");
  registry.addAddress("Riverside Cancer Centre", "institution");
  return { registry, patient };
}

let counter = 0;

/** Learns and writes one workbook as the task runner does, with the sample patient as the folder's patient. */
async function runWorkbook(input: string, options: { shiftDates?: boolean; learn?: boolean } = {}): Promise<Run> {
  const shiftDates = options.shiftDates ?? true;
  const { registry, patient } = seededRegistry(shiftDates);
  const relativePath = "12345678/review.xlsx";
  const learnContext: LearnContext = {
    registry,
    relativePath,
    learnNested: () => Promise.reject(new Error("a workbook has no nested files")),
  };
  if (options.learn ?? true) await xlsxFormat.learn!(input, learnContext);
  const context: WriteContext = {
    cleaner: new TextCleaner(registry.allTerms(), uidMapper(TEST_SECRET)),
    patientFor: (id) => registry.patient(id),
    patient,
    shiftDates,
    relativePath,
    writeNested: () => Promise.reject(new Error("a workbook has no nested files")),
  };
  const target = join(dir, `out-${counter++}.xlsx`);
  const result = await xlsxFormat.write(input, target, context);
  return { target, replacements: result.replacements, patient, registry };
}

/** Runs the handler and returns the reason it quarantined the workbook; fails when it did not. */
async function quarantineOf(input: string): Promise<{ code: string; message: string; target: string }> {
  const target = join(dir, `out-${counter}.xlsx`);
  try {
    await runWorkbook(input);
  } catch (error) {
    if (error instanceof QuarantineReason) return { code: error.reasonCode, message: error.message, target };
    if (error instanceof DeidError) return { code: error.code, message: error.message, target };
    throw error;
  }
  throw new Error("the workbook was written, but it should have been quarantined");
}

function wholeWord(identifier: string): RegExp {
  const escaped = identifier.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "iu");
}

/** Identifiers found in the inflated members, as "identifier in member". */
function leaksIn(members: Map<string, Buffer>, identifiers: readonly string[]): string[] {
  const leaks: string[] = [];
  for (const [name, bytes] of members) {
    const texts = [name, bytes.toString("utf8"), bytes.toString("latin1"), bytes.toString("utf16le")];
    for (const identifier of identifiers) {
      if (texts.some((text) => wholeWord(identifier).test(text))) leaks.push(`${identifier} in ${name}`);
    }
  }
  return leaks;
}

const DAY_MS = 86_400_000;

function shifted(isoDate: string, days: number): string {
  return new Date(Date.parse(`${isoDate}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

/** "Content type" rules every OPC consumer (Excel included) applies. */
function contentTypeOf(members: Map<string, Buffer>, name: string): string | undefined {
  const types = members.get("[Content_Types].xml")!.toString("utf8");
  const override = new RegExp(`<Override PartName="/${name.replace(/[.[\]]/g, "\\$&")}" ContentType="([^"]+)"`, "i").exec(types);
  if (override) return override[1];
  const extension = name.slice(name.lastIndexOf(".") + 1);
  return new RegExp(`<Default Extension="${extension}" ContentType="([^"]+)"`, "i").exec(types)?.[1];
}

describe.skipIf(!OPENPYXL)("planted workbook", () => {
  let run: Run;
  let input: Map<string, Buffer>;
  let output: Map<string, Buffer>;
  let before: WorkbookView;
  let after: WorkbookView;

  beforeAll(async () => {
    run = await runWorkbook(planted);
    input = readMembers(planted);
    output = readMembers(run.target);
    before = readWorkbook(planted);
    after = readWorkbook(run.target);
  });

  test("input holds every planted identifier", () => {
    const found = new Set(leaksIn(input, PLANTED_IDENTIFIERS).map((leak) => leak.split(" in ")[0]));
    expect([...found].sort()).toEqual([...PLANTED_IDENTIFIERS].sort());
  });

  test("output holds no planted identifier", () => {
    expect(leaksIn(output, PLANTED_IDENTIFIERS)).toEqual([]);
  });

  test("output keeps sheets and dimensions", () => {
    expect(after.sheets.map((sheet) => sheet.dimensions)).toEqual(before.sheets.map((sheet) => sheet.dimensions));
    expect(after.sheets.map((sheet) => sheet.title)).toEqual([run.patient.pseudonymId, "Summary", "Raw"]);
  });

  test("identifier columns get pseudonyms and shifted dates", () => {
    const { pseudonymId, shiftDays } = run.patient;
    const rows = after.sheets[0].rows;
    expect(rows[0]).toEqual(before.sheets[0].rows[0]);
    expect(rows[1].slice(0, 7)).toEqual([
      pseudonymId,
      pseudonymId,
      "[DATE]",
      `date:${shifted("2019-04-12", shiftDays)}T00:00:00`,
      "[NAME]",
      60,
      `Seen by ${pseudonymId} on ${shifted("2019-04-12", shiftDays)}`,
    ]);
    expect(rows[2].slice(0, 7)).toEqual([pseudonymId, pseudonymId, "[DATE]", shifted("2019-04-12", shiftDays), "[NAME]", 2, `Reviewed with ${pseudonymId} today`]);
    expect(rows[3]).toEqual(before.sheets[0].rows[3]);
  });

  test("formulas follow the renamed sheet", () => {
    const { pseudonymId } = run.patient;
    const rows = after.sheets[0].rows;
    expect(rows[1][7]).toBe(`="Patient "&B2&" ${pseudonymId}"`);
    expect(rows[1][8]).toBe(`='${pseudonymId}'!F2*2`);
    expect(rows[2][8]).toBe("=SUM(F2:F3)");
    expect(after.definedNames).toEqual([["PatientRows", `'${pseudonymId}'!$A$1:$I$3`]]);
    const chart = output.get("xl/charts/chart1.xml")!.toString("utf8");
    expect(chart).toContain(`<f>'${pseudonymId}'!$F$2:$F$3</f>`);
    expect(chart).toContain(`Doses for ${pseudonymId}`);
    const app = output.get("docProps/app.xml")!.toString("utf8");
    expect(app).toContain(`<vt:lpstr>${pseudonymId}</vt:lpstr><vt:lpstr>Summary</vt:lpstr>`);
  });

  test("hand-written sheet: numbers, inline and formula strings", () => {
    const { pseudonymId, shiftDays } = run.patient;
    const compact = shifted("2019-04-12", shiftDays).replace(/-/g, "");
    const [year, month, day] = shifted("2019-04-12", shiftDays).split("-");
    expect(after.sheets[2].rows).toEqual([
      ["MRN", "name", "treatment_date", "comment", "when"],
      [pseudonymId, pseudonymId, Number(compact), '="MRN "&A2', `date:${shifted("2019-04-12", shiftDays)}T09:00:00`],
      [pseudonymId, "[DATE]", `${day}.${month}.${year}`, pseudonymId, true],
    ]);
    const sheet = output.get("xl/worksheets/sheet3.xml")!.toString("utf8");
    expect(sheet).toContain(`<c r="D2" t="str"><f>"MRN "&amp;A2</f><v>MRN ${pseudonymId}</v></c>`);
  });

  test("course column gets course pseudonyms", () => {
    const rows = after.sheets[1].rows;
    expect(rows[0]).toEqual(["course", "dose"]);
    expect(rows[1][0]).toMatch(/^C-[0-9A-Z]{8}$/);
    expect(rows[2][0]).toMatch(/^C-[0-9A-Z]{8}$/);
    expect(rows[1][0]).not.toBe(rows[2][0]);
    expect(rows.map((row) => row[1])).toEqual(["dose", 60, 50]);
  });

  test("rich text split inside a name is cleaned whole", () => {
    const strings = output.get("xl/sharedStrings.xml")!.toString("utf8");
    expect(strings).toContain(`<si><r><rPr><b/></rPr><t xml:space="preserve">Reviewed with ${run.patient.pseudonymId} today</t></r><r><t></t></r></si>`);
  });

  test("shared strings used only by identifier cells are emptied", () => {
    const strings = output.get("xl/sharedStrings.xml")!.toString("utf8");
    const count = (text: string): number => text.match(/<si>/g)?.length ?? 0;
    expect(count(strings)).toBe(count(input.get("xl/sharedStrings.xml")!.toString("utf8")));
    expect(strings).toContain("<si><t>patient_id</t></si>");
    expect(strings).not.toContain("DOE^JANE^M");
  });

  test("notes, threaded comments and people lose their names", () => {
    const { pseudonymId } = run.patient;
    const comments = output.get("xl/comments/comment1.xml")!.toString("utf8");
    expect(comments).toContain("<author>[NAME]</author>");
    expect(comments).toContain(`[NAME]:\nCheck ${pseudonymId} with ${pseudonymId}`);
    const threaded = output.get("xl/threadedComments/threadedComment1.xml")!.toString("utf8");
    expect(threaded).toContain(`<text>@[NAME] please check ${pseudonymId}, MRN ${pseudonymId}</text>`);
    expect(threaded).not.toContain("<mentions>");
    expect(threaded).toContain(`dT="${shifted("2019-04-12", run.patient.shiftDays)}T10:00:00.00"`);
    const persons = output.get("xl/persons/person.xml")!.toString("utf8");
    expect(persons).toContain('<person displayName="[NAME]" id="{11111111-1111-1111-1111-111111111111}"/>');
  });

  test("document properties are blanked or cleaned", () => {
    expect(after.creator).toBeNull();
    expect(after.title).toBe(`Plan review ${run.patient.pseudonymId}`);
    const app = output.get("docProps/app.xml")!.toString("utf8");
    expect(app).toContain("<Manager></Manager><Company></Company>");
    const custom = output.get("docProps/custom.xml")!.toString("utf8");
    expect(custom).toContain(`name="MRN"><vt:lpwstr>${run.patient.pseudonymId}</vt:lpwstr>`);
    expect(custom).toContain(`<vt:filetime>${shifted("2019-04-12", run.patient.shiftDays)}T09:00:00Z</vt:filetime>`);
    const workbook = output.get("xl/workbook.xml")!.toString("utf8");
    expect(workbook).toContain("<fileSharing/>");
  });

  test("sheet text outside cells is cleaned", () => {
    const { pseudonymId } = run.patient;
    const sheet = output.get("xl/worksheets/sheet1.xml")!.toString("utf8");
    expect(sheet).toContain(`<oddHeader>&amp;CPatient ${pseudonymId}</oddHeader>`);
    expect(sheet).toContain(`<formula1>"${pseudonymId},Other"</formula1>`);
    expect(sheet).toContain(`prompt="Enter ID like ${pseudonymId}"`);
    const relationships = output.get("xl/worksheets/_rels/sheet1.xml.rels")!.toString("utf8");
    expect(relationships).toContain(`Target="${pseudonymId}_plan.xlsx"`);
    expect(relationships).toContain(`Target="#'${pseudonymId}'!A1"`);
  });

  test("pictures become blank images of the same type", () => {
    expect(output.get("xl/media/image1.png")!.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(output.get("xl/media/image1.png")!.length).toBe(70);
    expect(output.get("xl/media/image1.png")!.equals(input.get("xl/media/image1.png")!)).toBe(false);
  });

  test("thumbnail is left out with its relationship", () => {
    expect(input.has("docProps/thumbnail.jpeg")).toBe(true);
    expect(output.has("docProps/thumbnail.jpeg")).toBe(false);
    expect(output.get("_rels/.rels")!.toString("utf8")).not.toContain("thumbnail");
  });

  test("printer settings are left out with their references", () => {
    expect(input.has("xl/printerSettings/printerSettings1.bin")).toBe(true);
    expect(output.has("xl/printerSettings/printerSettings1.bin")).toBe(false);
    expect(output.get("xl/worksheets/_rels/sheet1.xml.rels")!.toString("utf8")).not.toContain("rIdPrinter");
    expect(output.get("xl/worksheets/sheet1.xml")!.toString("utf8")).toContain('<pageSetup xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" orientation="portrait"/>');
  });

  test("parts without identifiers are copied byte for byte", () => {
    for (const name of ["xl/theme/theme1.xml", "xl/styles.xml", "xl/tables/table1.xml", "xl/drawings/drawing1.xml", "xl/calcChain.xml"].filter((item) => input.has(item))) {
      expect(output.get(name)!.equals(input.get(name)!), name).toBe(true);
    }
  });

  test("content types and relationships stay consistent", () => {
    const names = [...output.keys()];
    for (const name of names) {
      if (name !== "[Content_Types].xml") expect(contentTypeOf(output, name), name).toBeDefined();
    }
    const types = output.get("[Content_Types].xml")!.toString("utf8");
    for (const match of types.matchAll(/<Override PartName="\/([^"]+)"/g)) expect(names, match[1]).toContain(match[1]);
    for (const name of names.filter((item) => item.endsWith(".rels"))) {
      const source = name.replace(/_rels\/([^/]*)\.rels$/, "$1");
      const folder = source.includes("/") ? source.slice(0, source.lastIndexOf("/") + 1) : "";
      for (const match of output.get(name)!.toString("utf8").matchAll(/<Relationship [^>]*>/g)) {
        if (/TargetMode="External"/.test(match[0])) continue;
        const target = /Target="([^"]+)"/.exec(match[0])![1];
        const resolved = target.startsWith("/") ? target.slice(1) : new URL(target, `file:///${folder}`).pathname.slice(1);
        expect(names, `${name} -> ${target}`).toContain(resolved);
      }
    }
    expect(names.filter((name) => !name.startsWith("xl/printerSettings/")).sort()).toEqual(names.sort());
  });

  test("members are dated 1980-01-01", async () => {
    const bytes = await readFile(run.target);
    // Local file headers: signature, version, flags, method, then DOS time and date (1980-01-01 is date 0x0021).
    for (let offset = bytes.indexOf("PK\x03\x04", 0, "latin1"); offset >= 0; offset = bytes.indexOf("PK\x03\x04", offset + 4, "latin1")) {
      expect(bytes.readUInt16LE(offset + 12)).toBe(0x0021);
    }
  });

  test("a second write gives the same bytes", async () => {
    const again = await runWorkbook(planted);
    expect((await readFile(again.target)).equals(await readFile(run.target))).toBe(true);
  });

  test("replacements are counted", () => {
    expect(run.replacements).toBeGreaterThan(40);
  });
});

describe.skipIf(!OPENPYXL)("dates without the shift option", () => {
  test("dates become the date placeholder", async () => {
    const run = await runWorkbook(planted, { shiftDates: false });
    const view = readWorkbook(run.target);
    expect(view.sheets[0].rows[1].slice(2, 4)).toEqual(["[DATE]", "[DATE]"]);
    expect(view.sheets[0].rows[2].slice(2, 4)).toEqual(["[DATE]", "[DATE]"]);
    expect(view.sheets[2].rows[1][2]).toBe("[DATE]");
    expect(view.sheets[2].rows[1][4]).toBe("[DATE]");
    const members = readMembers(run.target);
    expect(members.get("docProps/core.xml")!.toString("utf8")).not.toContain("created");
    expect(leaksIn(members, PLANTED_IDENTIFIERS)).toEqual([]);
  });
});

describe.skipIf(!OPENPYXL)("header row search", () => {
  test("table header wins over a title row", async () => {
    const input = join(dir, "title.xlsx");
    const inline = (reference: string, text: string): string => `<c r="${reference}" t="inlineStr"><is><t>${text}</t></is></c>`;
    const sheet =
      '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>' +
      `<row r="1">${inline("A1", "Review date: 2019-04-12")}</row>` +
      `<row r="3">${inline("A3", "patient_id")}${inline("B3", "patient_name")}</row>` +
      `<row r="4">${inline("A4", "ZX-991")}${inline("B4", "Roe, Richard")}</row>` +
      "</sheetData></worksheet>";
    editMembers(planted, input, { set: { "xl/worksheets/sheet3.xml": sheet } });
    const run = await runWorkbook(input);
    const other = run.registry.patient("ZX-991");
    expect(readWorkbook(run.target).sheets[2].rows).toEqual([
      [`Review date: ${shifted("2019-04-12", run.patient.shiftDays)}`, null],
      [null, null],
      ["patient_id", "patient_name"],
      [other.pseudonymId, other.pseudonymName],
    ]);
    expect(leaksIn(readMembers(run.target), ["ZX-991", "Roe", "Richard"])).toEqual([]);
  });
});

describe.skipIf(!OPENPYXL)("pictures in other formats", () => {
  test("an EMF picture is left out", async () => {
    const members = readMembers(planted);
    const input = join(dir, "emf.xlsx");
    editMembers(planted, input, {
      remove: ["xl/media/image1.png"],
      set: {
        "xl/media/image2.emf": Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.from("Jane Doe", "utf16le")]),
        "xl/drawings/_rels/drawing1.xml.rels": members.get("xl/drawings/_rels/drawing1.xml.rels")!.toString("utf8").replace("image1.png", "image2.emf"),
        "[Content_Types].xml": members.get("[Content_Types].xml")!.toString("utf8").replace("</Types>", '<Default Extension="emf" ContentType="image/x-emf"/></Types>'),
      },
    });
    const run = await runWorkbook(input);
    const output = readMembers(run.target);
    expect(output.has("xl/media/image2.emf")).toBe(false);
    expect(output.get("xl/drawings/_rels/drawing1.xml.rels")!.toString("utf8")).not.toContain("image2.emf");
    const drawing = output.get("xl/drawings/drawing1.xml")!.toString("utf8");
    expect(drawing).toContain("<a:blip ");
    expect(drawing).not.toContain("r:embed");
    expect(leaksIn(output, PLANTED_IDENTIFIERS)).toEqual([]);
    expect(readWorkbook(run.target).sheets.map((sheet) => sheet.title)).toEqual([run.patient.pseudonymId, "Summary", "Raw"]);
  });
});

describe.skipIf(!OPENPYXL)("external workbook links", () => {
  test("link path, sheet names and cache are cleaned", async () => {
    const members = readMembers(planted);
    const input = join(dir, "linked.xlsx");
    const relationships = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    editMembers(planted, input, {
      set: {
        "xl/externalLinks/externalLink1.xml":
          `<externalLink xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="${relationships}">` +
          '<externalBook r:id="rId1"><sheetNames><sheetName val="Jane Doe"/></sheetNames>' +
          "<definedNames><definedName name=\"Other\" refersTo=\"='Jane Doe'!$A$1\"/></definedNames>" +
          '<sheetDataSet><sheetData sheetId="0"><row r="1"><cell r="A1" t="str"><v>12345678</v></cell></row></sheetData></sheetDataSet>' +
          "</externalBook></externalLink>",
        "xl/externalLinks/_rels/externalLink1.xml.rels":
          '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
          `<Relationship Id="rId1" Type="${relationships}/externalLinkPath" Target="file:///C:/Users/jdoe/Patients/Jane_Doe.xlsx" TargetMode="External"/>` +
          "</Relationships>",
        "xl/_rels/workbook.xml.rels": members
          .get("xl/_rels/workbook.xml.rels")!
          .toString("utf8")
          .replace("</Relationships>", `<Relationship Id="rIdLink" Type="${relationships}/externalLink" Target="externalLinks/externalLink1.xml"/></Relationships>`),
        "xl/workbook.xml": members
          .get("xl/workbook.xml")!
          .toString("utf8")
          .replace("<definedNames>", `<externalReferences><externalReference xmlns:r="${relationships}" r:id="rIdLink"/></externalReferences><definedNames><definedName name="Linked">'[1]Jane Doe'!$A$1</definedName>`),
        "[Content_Types].xml": members
          .get("[Content_Types].xml")!
          .toString("utf8")
          .replace(
            "</Types>",
            '<Override PartName="/xl/externalLinks/externalLink1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml"/></Types>',
          ),
      },
    });
    const run = await runWorkbook(input);
    const output = readMembers(run.target);
    const { pseudonymId } = run.patient;
    expect(leaksIn(output, PLANTED_IDENTIFIERS)).toEqual([]);
    const link = output.get("xl/externalLinks/externalLink1.xml")!.toString("utf8");
    expect(link).toContain(`<sheetName val="${pseudonymId}"/>`);
    expect(link).toContain(`refersTo="='${pseudonymId}'!$A$1"`);
    expect(link).not.toContain("sheetDataSet");
    const relationshipsPart = output.get("xl/externalLinks/_rels/externalLink1.xml.rels")!.toString("utf8");
    expect(relationshipsPart).toContain(`Target="${pseudonymId}.xlsx"`);
    expect(readWorkbook(run.target).definedNames).toContainEqual(["Linked", `'[1]${pseudonymId}'!$A$1`]);
  });
});

describe.skipIf(!OPENPYXL)("quarantine", () => {
  const WORKBOOK_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml";

  async function variant(name: string, edits: Parameters<typeof editMembers>[2]): Promise<string> {
    const path = join(dir, name);
    editMembers(planted, path, edits);
    return path;
  }

  function withContentType(partName: string, contentType: string): string {
    const types = readMembers(planted).get("[Content_Types].xml")!.toString("utf8");
    return types.replace("</Types>", `<Override PartName="/${partName}" ContentType="${contentType}"/></Types>`);
  }

  const cases: Array<{ name: string; code: string; edits: () => Parameters<typeof editMembers>[2] }> = [
    {
      name: "a VBA project",
      code: "XLSX_UNKNOWN_PART",
      edits: () => ({
        set: {
          "xl/vbaProject.bin": Buffer.from("Attribute VB_Name = \"Jane Doe\""),
          "[Content_Types].xml": withContentType("xl/vbaProject.bin", "application/vnd.ms-office.vbaProject"),
        },
      }),
    },
    {
      name: "a pivot cache",
      code: "XLSX_UNKNOWN_PART",
      edits: () => ({
        set: {
          "xl/pivotCache/pivotCacheRecords1.xml": "<pivotCacheRecords><r><s v=\"12345678\"/></r></pivotCacheRecords>",
          "[Content_Types].xml": withContentType(
            "xl/pivotCache/pivotCacheRecords1.xml",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.pivotCacheRecords+xml",
          ),
        },
      }),
    },
    {
      name: "a picture in a cell",
      code: "XLSX_UNKNOWN_PART",
      edits: () => ({
        set: {
          "xl/richData/rdrichvalue.xml": "<rvData><rv s=\"0\"><v>0</v></rv></rvData>",
          "[Content_Types].xml": withContentType("xl/richData/rdrichvalue.xml", "application/vnd.ms-excel.rdrichvalue+xml"),
        },
      }),
    },
    {
      name: "a member without a content type",
      code: "XLSX_UNKNOWN_PART",
      edits: () => ({ set: { "notes/readme.txt": "Jane Doe" } }),
    },
    {
      name: "a document type declaration",
      code: "XLSX_INVALID",
      edits: () => ({ set: { "docProps/app.xml": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "Jane">]><Properties>&a;</Properties>' } }),
    },
    {
      name: "an unknown entity",
      code: "XLSX_INVALID",
      edits: () => ({ set: { "docProps/app.xml": "<Properties><Company>&nbsp;</Company></Properties>" } }),
    },
    {
      name: "unbalanced tags",
      code: "XLSX_INVALID",
      edits: () => ({ set: { "docProps/app.xml": "<Properties><Company></Manager></Properties>" } }),
    },
    {
      name: "a UTF-16 part",
      code: "XLSX_INVALID",
      edits: () => ({ set: { "docProps/app.xml": Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from("<Properties/>", "utf16le")]) } }),
    },
    {
      name: "no content types part",
      code: "XLSX_INVALID",
      edits: () => ({ remove: ["[Content_Types].xml"] }),
    },
    {
      name: "a shared string index past the table",
      code: "XLSX_INVALID",
      edits: () => ({
        set: {
          "xl/worksheets/sheet2.xml": readMembers(planted).get("xl/worksheets/sheet2.xml")!.toString("utf8").replace(/<v>\d+<\/v>/, "<v>9999</v>"),
        },
      }),
    },
    {
      name: "an identifier in a part name",
      code: "XLSX_IDENTIFIER_IN_STRUCTURE",
      edits: () => ({ set: { "xl/media/Jane_Doe.png": readMembers(planted).get("xl/media/image1.png")! } }),
    },
    {
      name: "a patient ID as a number in a formula",
      code: "XLSX_IDENTIFIER_IN_STRUCTURE",
      edits: () => ({
        set: {
          "xl/worksheets/sheet3.xml": readMembers(planted).get("xl/worksheets/sheet3.xml")!.toString("utf8").replace("<f>\"MRN \"&amp;A2</f>", "<f>IF(A2=12345678,1,0)</f>"),
        },
      }),
    },
    {
      name: "an identifier in a defined name",
      code: "XLSX_IDENTIFIER_IN_STRUCTURE",
      edits: () => ({
        set: { "xl/workbook.xml": readMembers(planted).get("xl/workbook.xml")!.toString("utf8").replace('name="PatientRows"', 'name="Doe_Jane"') },
      }),
    },
  ];

  test.each(cases)("$name gives $code", async ({ name, code, edits }) => {
    const input = await variant(`${name.replace(/\W+/g, "-")}.xlsx`, edits());
    const result = await quarantineOf(input);
    expect(result.code).toBe(code);
    for (const identifier of PLANTED_IDENTIFIERS) expect(result.message).not.toMatch(wholeWord(identifier));
    expect(existsSync(result.target)).toBe(false);
  });

  test("layout number equal to an ID", async () => {
    const sheet = readMembers(planted).get("xl/worksheets/sheet2.xml")!.toString("utf8");
    expect(sheet).toContain('defaultRowHeight="15"');
    const input = await variant("layout-number.xlsx", { set: { "xl/worksheets/sheet2.xml": sheet.replace('defaultRowHeight="15"', 'defaultRowHeight="12345678"') } });
    const run = await runWorkbook(input);
    expect(readMembers(run.target).get("xl/worksheets/sheet2.xml")!.toString("utf8")).toContain('defaultRowHeight="12345678"');
  });

  test("an encrypted workbook gives XLSX_ENCRYPTED", async () => {
    const input = join(dir, "encrypted.xlsx");
    await writeFile(input, Buffer.concat([Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), Buffer.alloc(504)]));
    expect((await quarantineOf(input)).code).toBe("XLSX_ENCRYPTED");
  });

  test("a file that is no zip gives XLSX_INVALID", async () => {
    const input = join(dir, "text.xlsx");
    await writeFile(input, "patient_id,name\n12345678,Jane Doe\n");
    expect((await quarantineOf(input)).code).toBe("XLSX_INVALID");
  });

  test("a zip without a workbook gives XLSX_INVALID", async () => {
    const input = join(dir, "no-workbook.xlsx");
    await writeRawZip(input, [
      { name: "[Content_Types].xml", data: Buffer.from(`<Types><Override PartName="/a.xml" ContentType="${WORKBOOK_CONTENT_TYPE.replace("sheet.main", "styles")}"/></Types>`) },
      { name: "a.xml", data: Buffer.from("<styleSheet/>") },
    ]);
    expect((await quarantineOf(input)).code).toBe("XLSX_INVALID");
  });

  test("an existing target is not overwritten", async () => {
    const { registry, patient } = seededRegistry(true);
    const target = join(dir, "exists.xlsx");
    await writeFile(target, "keep me");
    const context: WriteContext = {
      cleaner: new TextCleaner(registry.allTerms(), uidMapper(TEST_SECRET)),
      patientFor: (id) => registry.patient(id),
      patient,
      shiftDates: true,
      relativePath: "review.xlsx",
      writeNested: () => Promise.reject(new Error("unused")),
    };
    await expect(xlsxFormat.write(planted, target, context)).rejects.toMatchObject({ code: "EEXIST" });
    expect(await readFile(target, "utf8")).toBe("keep me");
  });
});

describe("zip caps", () => {
  test("too many members", async () => {
    const input = join(dir, "many.xlsx");
    const members = Array.from({ length: MAX_ENTRIES + 1 }, (_, index) => ({ name: `m/${index}.xml`, data: Buffer.from("<a/>"), stored: true }));
    await writeRawZip(input, members);
    const result = await quarantineOf(input);
    expect(result.code).toBe("LIMIT_EXCEEDED");
    expect(result.message).toContain(String(MAX_ENTRIES));
  });

  test("a member that inflates past the cap", async () => {
    const input = join(dir, "big-member.xlsx");
    await writeRawZip(input, [{ name: "xl/worksheets/sheet1.xml", data: Buffer.alloc(1024), declaredSize: MAX_ENTRY_BYTES + 1 }]);
    const result = await quarantineOf(input);
    expect(result.code).toBe("LIMIT_EXCEEDED");
    expect(result.message).toContain(String(MAX_ENTRY_BYTES));
  });

  test("a package that inflates past the ratio", async () => {
    const input = join(dir, "ratio.xlsx");
    await writeRawZip(input, [{ name: "xl/worksheets/sheet1.xml", data: Buffer.alloc(1024), declaredSize: 512 * 1024 * 1024 }]);
    const result = await quarantineOf(input);
    expect(result.code).toBe("LIMIT_EXCEEDED");
    expect(result.message).toContain(String(MAX_COMPRESSION_RATIO));
  });

  test("a member whose size is false in the directory", async () => {
    const input = join(dir, "lying.xlsx");
    const contentTypes = `<Types><Default Extension="xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>`;
    await writeRawZip(input, [
      { name: "[Content_Types].xml", data: Buffer.from(contentTypes) },
      { name: "xl/workbook.xml", data: Buffer.from(`<workbook>${"<a/>".repeat(10_000)}</workbook>`), declaredSize: 100 },
    ]);
    expect((await quarantineOf(input)).code).toBe("XLSX_INVALID");
  });
});

describe("formula rewriter", () => {
  function rewriter(names: string[]): { formulas: FormulaRewriter; sheets: SheetNames } {
    const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates: true });
    const patient = registry.patient("12345678");
    registry.addPatientName("DOE^JANE^M", patient);
    registry.addDate("20190412", "date", patient);
    const scrubber = new Scrubber(new TextCleaner(registry.allTerms(), uidMapper(TEST_SECRET)));
    const sheets = new SheetNames(names, scrubber);
    return { formulas: new FormulaRewriter(scrubber, sheets), sheets };
  }

  test.each([
    ["'Jane Doe'!A1", "'P'!A1"],
    ["'jane doe'!A1+Summary!B2", "'P'!A1+Summary!B2"],
    ["SUM('Jane Doe:Summary'!A1)", "SUM('P:Summary'!A1)"],
    ['"Doe, Jane"&A1', '"P"&A1'],
    ['"say ""Jane Doe"""', '"say ""P"""'],
    ["'[1]Jane Doe'!A1", "'[1]P'!A1"],
    ["[1]Sheet1!A1", "[1]Sheet1!A1"],
    ["A1>20190412", "A1>D"],
    ["Table1[[#This Row],[dose]]*2", "Table1[[#This Row],[dose]]*2"],
  ])("%s", (formula, expected) => {
    const { formulas, sheets } = rewriter(["Jane Doe", "Summary"]);
    const pseudonym = sheets.rename("Jane Doe");
    const shiftedDate = formulas.rewrite("20190412");
    expect(pseudonym).toMatch(/^PAT-/);
    expect(formulas.rewrite(formula)).toBe(expected.replace(/\bP\b/g, pseudonym).replace("D", shiftedDate));
  });

  test("bare identifier quarantines", () => {
    const { formulas } = rewriter(["Sheet1"]);
    expect(() => formulas.rewrite("IF(A1=12345678,1,0)")).toThrow(QuarantineReason);
    expect(() => formulas.rewrite("Doe_Jane*2")).toThrow(QuarantineReason);
  });

  test("sheet names stay valid and unique", () => {
    expect(sanitizeSheetName("[NAME]: notes/2019?")).toBe("(NAME)_ notes_2019_");
    expect(sanitizeSheetName("'quoted'")).toBe("_quoted_");
    expect(sanitizeSheetName("x".repeat(40))).toHaveLength(31);
    const { sheets } = rewriter(["Jane Doe", "DOE^JANE", "History"]);
    const renamed = ["Jane Doe", "DOE^JANE"].map((name) => sheets.rename(name));
    expect(renamed[1]).toBe(`${renamed[0]} (2)`);
    expect(sheets.rename("History")).toBe("History");
  });
});

describe("XML tokenizer", () => {
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n<a x="1 &amp; 2" y=\'q"\'><b>Jane &lt;Doe&gt; &#x41;&#66;</b><![CDATA[<raw>]]><!-- c --><c/></a>';

  function tokenize(pieces: string[]): XmlToken[] {
    const tokenizer = new XmlTokenizer();
    return [...pieces.flatMap((piece) => tokenizer.push(piece)), ...tokenizer.finish()];
  }

  test("pieces of any size give the same tokens", () => {
    const whole = tokenize([xml]);
    expect(whole.map((token) => token.raw).join("")).toBe(xml);
    expect(tokenize([...xml])).toEqual(whole);
    expect(tokenize([xml.slice(0, 50), xml.slice(50, 51), xml.slice(51)])).toEqual(whole);
  });

  test("attributes are decoded", () => {
    const open = tokenize([xml]).find((token) => token.kind === "open");
    expect(open).toMatchObject({ name: "a", attributes: [{ name: "x", value: "1 & 2" }, { name: "y", value: 'q"' }] });
  });

  test.each([
    ["<a><b></a>", "XLSX_INVALID"],
    ["<a>&bogus;</a>", "XLSX_INVALID"],
    ["<a>Tom & Jerry</a>", "XLSX_INVALID"],
    ["<a/><b/>", "XLSX_INVALID"],
    ["<!DOCTYPE a><a/>", "XLSX_INVALID"],
    ["<a x='1' x='2'/>", "XLSX_INVALID"],
    ["<a", "XLSX_INVALID"],
  ])("%s is rejected", (text, code) => {
    expect(() => tokenize([text])).toThrow(expect.objectContaining({ reasonCode: code }));
  });
});

describe("helpers", () => {
  test("date number formats", () => {
    expect(isDateFormatCode("yyyy-mm-dd")).toBe(true);
    expect(isDateFormatCode('[$-409]d-mmm-yy;@')).toBe(true);
    expect(isDateFormatCode("[h]:mm:ss")).toBe(false);
    expect(isDateFormatCode("0.00E+00")).toBe(false);
    expect(isDateFormatCode('"Day "0')).toBe(false);
  });

  test("serial dates in both date systems", () => {
    expect(serialToDate(43567, false)).toEqual({ year: 2019, month: 4, day: 12 });
    expect(serialToDate(43567 - 1462, true)).toEqual({ year: 2019, month: 4, day: 12 });
    expect(serialToDate(60, false)).toBeUndefined();
  });

  test("external targets keep only a cleaned file name", () => {
    const clean = (text: string): string => text.replace(/Jane_Doe/g, "P");
    expect(cleanExternalTarget("file:///C:/Users/jdoe/Jane_Doe.xlsx", clean)).toBe("P.xlsx");
    expect(cleanExternalTarget("\\\\server\\share\\jdoe\\plan.xlsx", clean)).toBe("plan.xlsx");
    expect(cleanExternalTarget("../jdoe/plan.xlsx", clean)).toBe("plan.xlsx");
    expect(cleanExternalTarget("mailto:jdoe@riverside.example", clean)).toBe("mailto:");
    expect(cleanExternalTarget("https://example.org/Jane_Doe?x=1", clean)).toBe("https://example.org/P?x=1");
    expect(cleanExternalTarget("https://example.org/a", clean)).toBe("https://example.org/a");
  });
});

describe.skipIf(!OPENPYXL)("whole run", () => {
  test("anonymize a tree with a CT and a workbook", async () => {
    const tree = await makeTestTree({ include: ["12345678/C1_2019/CT/CT.1.2.826.0.1.3680043.10.1234.1.1.3.1.dcm"] });
    try {
      await mkdir(join(tree.input, "12345678"), { recursive: true });
      await copyFile(planted, join(tree.input, "12345678", "review.xlsx"));
      const run = await anonymizeTree(tree, "output");
      expect(await expectExitMatchesReport(run)).toBe(0);
      const files = await listFiles(run.output);
      const workbooks = files.filter((file) => file.endsWith(".xlsx"));
      expect(workbooks).toHaveLength(1);
      const output = join(run.output, ...workbooks[0].split("/"));
      expect(leaksIn(readMembers(output), PLANTED_IDENTIFIERS)).toEqual([]);
      const view = readWorkbook(output);
      expect(view.sheets.map((sheet) => sheet.dimensions)).toEqual(readWorkbook(planted).sheets.map((sheet) => sheet.dimensions));
      expect(view.sheets[0].title).toMatch(/^PAT-/);
      for (const text of [run.stdout, run.stderr, await readFile(run.reportPath, "utf8")]) {
        for (const identifier of PLANTED_IDENTIFIERS) expect(text).not.toMatch(wholeWord(identifier));
      }
    } finally {
      await tree.cleanup();
    }
  });
});
