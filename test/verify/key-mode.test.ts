// Anonymizes the sample tree with the fixed test secret, plants one
// original identifier in a copy of the output after anonymization, and
// checks that `verify --key --identity` finds it with the file, place and
// category, exits 1, and never prints the identifier.

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { identifiersFromKey } from "../../src/verify/verify.js";
import { anonymizeTree, runDeidkit, type AnonymizeRun, type CliRun } from "../helpers/cli.js";
import { decryptKey, makeTestTree, type TestTree } from "../helpers/tree.js";
import { copyOutput, editDicom, findFile, runPython, wholeWord } from "./verify-helpers.js";

interface Finding {
  file: string;
  place: string;
  category: string;
  severity: string;
  identifier?: number;
}

interface VerifyJson {
  mode: string;
  findings: Finding[];
  errors: number;
}

interface PlantCase {
  name: string;
  identifier: string;
  category: string;
  /** Plants the identifier in the output copy at `root`; returns the path that verify should name. */
  plant(root: string): Promise<string>;
  /** The place verify should report. */
  place: string | RegExp;
}

/** The copy of patient 12345678's first CT slice and AB-0042's first CT slice, found by their folders. */
const DOE_CT = /^PAT-[0-9A-Z]{10}\/C1_2019\/CT\/CT\..*\.dcm$/;
const MUELLER_CT = /^PAT-[0-9A-Z]{10}\/Course_2\/CT\/CT\..*\.dcm$/;

function zipScript(members: string): string {
  return `import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as archive:\n${members}\n`;
}

const CASES: PlantCase[] = [
  {
    name: "DICOM person name",
    identifier: "DOE^JANE^M",
    category: "patient-name",
    place: "(0008,0090)",
    async plant(root) {
      const file = await findFile(root, DOE_CT);
      editDicom(join(root, file), 'ds.ReferringPhysicianName = "DOE^JANE^M"');
      return file;
    },
  },
  {
    name: "nested sequence item",
    identifier: "12345678",
    category: "patient-id",
    place: "(0010,1002)[0]/(0010,0020)",
    async plant(root) {
      const file = await findFile(root, DOE_CT);
      editDicom(join(root, file), 'item = Dataset()\nitem.PatientID = "12345678"\nds.OtherPatientIDsSequence = Sequence([item])');
      return file;
    },
  },
  {
    name: "private tag",
    identifier: "AB-0042",
    category: "patient-id",
    place: "(0041,1001)",
    async plant(root) {
      const file = await findFile(root, MUELLER_CT);
      editDicom(join(root, file), 'block = ds.private_block(0x0041, "DEIDKIT TEST", create=True)\nblock.add_new(0x01, "LO", "AB-0042")');
      return file;
    },
  },
  {
    name: "ISO_IR 100 Latin-1 name",
    identifier: "MÜLLER^JÖRG",
    category: "patient-name",
    place: "(0010,0010)",
    async plant(root) {
      const file = await findFile(root, MUELLER_CT);
      editDicom(join(root, file), 'assert ds.SpecificCharacterSet == "ISO_IR 100"\nds.PatientName = "MÜLLER^JÖRG"');
      // pydicom encodes the name in Latin-1, as the declared character set requires: Ü is the single byte 0xDC.
      const bytes = await readFile(join(root, file));
      expect(bytes.includes(Buffer.from("M\xdcLLER^J\xd6RG", "latin1"))).toBe(true);
      return file;
    },
  },
  {
    name: "UTF-8 text file",
    identifier: "Jörg Müller",
    category: "patient-name",
    place: "bytes",
    async plant(root) {
      await writeFile(join(root, "summary.txt"), "Reviewed: Jörg Müller\n", "utf8");
      return "summary.txt";
    },
  },
  {
    name: "UTF-16LE text file",
    identifier: "Jörg Müller",
    category: "patient-name",
    place: "bytes",
    async plant(root) {
      // One byte before the text puts its characters at odd offsets.
      await writeFile(join(root, "summary-16le.txt"), Buffer.concat([Buffer.from([0x20]), Buffer.from("Reviewed: Jörg Müller\n", "utf16le")]));
      return "summary-16le.txt";
    },
  },
  {
    name: "UTF-16BE text file",
    identifier: "H-7781-2203",
    category: "patient-id",
    place: "bytes",
    async plant(root) {
      await writeFile(join(root, "ids-16be.txt"), Buffer.from("old id H-7781-2203\n", "utf16le").swap16());
      return "ids-16be.txt";
    },
  },
  {
    name: "file name",
    identifier: "Doe_Jane",
    category: "patient-name",
    place: "path",
    async plant(root) {
      await writeFile(join(root, "Doe_Jane.txt"), "no identifier inside\n");
      return "[#N].txt";
    },
  },
  {
    name: "folder name",
    identifier: "12345678",
    category: "patient-id",
    place: "path",
    async plant(root) {
      await mkdir(join(root, "12345678"));
      await writeFile(join(root, "12345678", "readme.txt"), "no identifier inside\n");
      return "[#N]/readme.txt";
    },
  },
  {
    name: "gzip file",
    identifier: "H-7781-2203",
    category: "patient-id",
    place: "gunzip > bytes",
    async plant(root) {
      await writeFile(join(root, "log.txt.gz"), gzipSync(Buffer.from("old id H-7781-2203\n")));
      return "log.txt.gz";
    },
  },
  {
    name: "zip member",
    identifier: "AB-0042",
    category: "patient-id",
    place: "member info.txt > bytes",
    async plant(root) {
      runPython(zipScript('    archive.writestr("info.txt", "patient AB-0042\\n")'), [join(root, "bundle.zip")]);
      return "bundle.zip";
    },
  },
  {
    name: "zip member name",
    identifier: "Doe_Jane",
    category: "patient-name",
    place: /^member \[#\d+\]\.txt > name$/,
    async plant(root) {
      runPython(zipScript('    archive.writestr("Doe_Jane.txt", "no identifier inside\\n")'), [join(root, "bundle.zip")]);
      return "bundle.zip";
    },
  },
  {
    name: "XLSX shared string",
    identifier: "Doe, Jane",
    category: "patient-name",
    place: "member xl/sharedStrings.xml > bytes",
    async plant(root) {
      // openpyxl 3.0 writes inline strings, so the cell is moved into a shared string table afterwards.
      const script = `import sys, io, zipfile, openpyxl
workbook = openpyxl.Workbook()
workbook.active["A1"] = "Doe, Jane"
buffer = io.BytesIO()
workbook.save(buffer)
source = zipfile.ZipFile(buffer)
sst = '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>Doe, Jane</t></si></sst>'
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as target:
    for name in source.namelist():
        data = source.read(name).decode("utf-8")
        if name == "xl/worksheets/sheet1.xml":
            data = data.replace('t="inlineStr"><is><t>Doe, Jane</t></is>', 't="s"><v>0</v>')
            assert 't="s"' in data
        elif name == "[Content_Types].xml":
            data = data.replace("</Types>", '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
        elif name == "xl/_rels/workbook.xml.rels":
            data = data.replace("</Relationships>", '<Relationship Id="rIdSst" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>')
        target.writestr(name, data)
    target.writestr("xl/sharedStrings.xml", sst)
assert openpyxl.load_workbook(sys.argv[1]).active["A1"].value == "Doe, Jane"
`;
      runPython(script, [join(root, "review.xlsx")]);
      return "review.xlsx";
    },
  },
];

describe("verify --key on planted identifiers", () => {
  let tree: TestTree;
  let run: AnonymizeRun;
  let keyTexts: string[];

  const verifyArgs = (folder: string, json: boolean): string[] => [
    "verify",
    folder,
    "--key",
    run.keyPath,
    "--identity",
    tree.identityPath,
    ...(json ? ["--json"] : []),
  ];

  beforeAll(async () => {
    tree = await makeTestTree();
    run = await anonymizeTree(tree, "output");
    expect(run.code, run.stderr).toBe(0);
    const payload = await decryptKey(run.keyPath, tree.identityPath);
    keyTexts = identifiersFromKey(payload as unknown as Record<string, unknown>).map((identifier) => identifier.text);
  }, 60_000);

  afterAll(async () => {
    await tree.cleanup();
  });

  test("clean output verifies clean", async () => {
    const result = await runDeidkit(verifyArgs(run.output, true));
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as VerifyJson;
    expect(report.mode).toBe("key");
    expect(report.errors).toBe(0);
  });

  test.each(CASES)("finds identifier in $name", async (plantCase) => {
    const folder = tree.at(`case-${CASES.indexOf(plantCase)}`);
    await copyOutput(run.output, folder);
    const expectedFile = await plantCase.plant(folder);

    const json: CliRun = await runDeidkit(verifyArgs(folder, true));
    const text: CliRun = await runDeidkit(verifyArgs(folder, false));
    expect(json.code, json.stderr).toBe(1);
    expect(text.code, text.stderr).toBe(1);

    const report = JSON.parse(json.stdout) as VerifyJson;
    const found = report.findings.filter((finding) => finding.category === plantCase.category && finding.identifier !== undefined);
    const fileMatches = (file: string): boolean =>
      expectedFile.includes("[#N]") ? new RegExp(`^${expectedFile.replace(/[.[\]]/g, "\\$&").replace("#N", "#\\d+")}$`).test(file) : file === expectedFile;
    const placeMatches = (place: string): boolean => (typeof plantCase.place === "string" ? place === plantCase.place : plantCase.place.test(place));
    const finding = found.find((candidate) => fileMatches(candidate.file) && placeMatches(candidate.place));
    expect(finding, JSON.stringify(found)).toBeDefined();
    expect(finding!.severity).toBe("error");
    // The index names the planted identifier in the key's list.
    expect(keyTexts[finding!.identifier!].toLowerCase()).toBe(plantCase.identifier.toLowerCase());

    for (const output of [json.stdout, json.stderr, text.stdout, text.stderr]) {
      expect(wholeWord(plantCase.identifier).test(output)).toBe(false);
    }
    expect(text.stdout).toContain(plantCase.category);
  });

  test("a planted folder name is not printed", async () => {
    const folder = tree.at("case-folder-text");
    await copyOutput(run.output, folder);
    await mkdir(join(folder, "Doe_Jane"));
    await writeFile(join(folder, "Doe_Jane", "AB-0042.txt"), "nothing\n");
    const result = await runDeidkit(verifyArgs(folder, false));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/\[#\d+\]\/\[#\d+\]\.txt {2}path {2}patient-(name|id)/);
    expect(result.stdout).not.toMatch(/Doe_Jane|AB-0042/i);
  });
});
