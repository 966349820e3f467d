// Scans the sample tree plus a folder of problem files (a truncated DICOM
// file, a symbolic link, an unsupported file, burned-in text, an unknown
// character set, no Patient ID) and checks the counts, the names of the
// files left out, the HTML file, and that no output contains an identifier.

import { execFileSync } from "node:child_process";
import { copyFile, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { runDeidkit, type CliRun } from "../helpers/cli.js";
import { makeTestTree, readPlanted, type Planted, type TestTree } from "../helpers/tree.js";

const CT = "12345678/C1_2019/CT/CT.1.2.826.0.1.3680043.10.1234.1.1.3.1.dcm";

/** Writes DICOM variants of the CT slice with pydicom, a writer independent of deidkit. */
function writeVariants(source: string, folder: string): void {
  const script = `
import sys, pydicom
source, folder = sys.argv[1], sys.argv[2]
ds = pydicom.dcmread(source)
ds.BurnedInAnnotation = "YES"
ds.save_as(folder + "/burned.dcm")
ds = pydicom.dcmread(source)
ds.SpecificCharacterSet = "ISO_IR 999"
ds.save_as(folder + "/charset.dcm")
ds = pydicom.dcmread(source)
del ds.PatientID
ds.save_as(folder + "/no-id.dcm")
`;
  execFileSync("/usr/bin/python3", ["-c", script, source, folder]);
}

/** Same matching as test/leaks/sample-tree.test.ts: whole words, ignoring case. */
function wholeWord(identifier: string): RegExp {
  const escaped = identifier.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "iu");
}

function plantedLeaks(planted: Planted, text: string): string[] {
  const all = Object.values(planted.identifiers).flat();
  return all.filter((identifier) => !planted.decoys.includes(identifier) && wholeWord(identifier).test(text));
}

interface Report {
  summary: Record<string, number>;
  identifiers: Array<{ category: string; terms: number; files: number }>;
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
    flags: Record<string, { files: number; paths?: string[] }>;
  };
  leftOut: Array<{ path: string; reason: string }>;
  files: Array<{ path: string; type: string; action: string; reason: string | null; identifiers: string[] }>;
}

describe("scan of the sample tree with problem files", () => {
  let tree: TestTree;
  let planted: Planted;
  let text: CliRun;
  let json: CliRun;
  let report: Report;

  beforeAll(async () => {
    planted = await readPlanted();
    tree = await makeTestTree();
    const extra = join(tree.input, "extra");
    await mkdir(extra);
    const ct = await readFile(join(tree.input, CT));
    await writeFile(join(extra, "broken.dcm"), ct.subarray(0, 700));
    await writeFile(join(extra, "picture.png"), Buffer.from("89504e470d0a1a0a0000000d49484452", "hex"));
    await symlink("../README.txt", join(extra, "link.txt"));
    writeVariants(join(tree.input, CT), extra);
    text = await runDeidkit(["scan", tree.input, "--secret", tree.secretPath]);
    json = await runDeidkit(["scan", tree.input, "--json", "--secret", tree.secretPath]);
    report = JSON.parse(json.stdout) as Report;
  }, 60_000);

  afterAll(async () => {
    await tree.cleanup();
  });

  test("exits 0 although it found identifiers", () => {
    expect(text.code, text.stderr).toBe(0);
    expect(json.code, json.stderr).toBe(0);
  });

  test("summary counts entries and patients", () => {
    expect(report.summary.entries).toBe(31);
    expect(report.summary.wouldLeaveOut).toBe(5);
    expect(report.summary.wouldWrite).toBe(26);
    // Two patients with IDs, and the copy without a Patient ID keyed by name and birth date.
    expect(report.summary.patients).toBe(3);
  });

  test("file types count each entry once", () => {
    expect(report.fileTypes).toEqual([
      { type: "dicom", files: 25, leftOut: 3 },
      { type: "symlink", files: 1, leftOut: 1 },
      { type: "text", files: 4, leftOut: 0 },
      { type: "unsupported", files: 1, leftOut: 1 },
    ]);
  });

  test("left-out files are named by position", () => {
    expect(report.leftOut).toEqual([
      { path: "extra/file-26.dcm", reason: "DICOM_INVALID" },
      { path: "extra/file-27.dcm", reason: "BURNED_IN_ANNOTATION" },
      { path: "extra/file-28.dcm", reason: "DICOM_UNSUPPORTED" },
      { path: "extra/file-29.txt", reason: "SYMLINK" },
      { path: "extra/file-31.png", reason: "UNSUPPORTED_FORMAT" },
    ]);
  });

  test("written files carry their de-identified path", () => {
    const paths = report.files.filter((file) => file.action === "write").map((file) => file.path);
    expect(paths).toContain("extra/no-id.dcm");
    expect(paths.filter((path) => /^PAT-[0-9A-Z]{10}\//.test(path))).toHaveLength(24);
  });

  test("identifier categories have terms and files", () => {
    const byCategory = new Map(report.identifiers.map((row) => [row.category, row]));
    expect([...byCategory.keys()]).toEqual([
      "patient-name", "patient-id", "birth-date", "date", "staff-name", "address",
      "phone", "institution", "device", "other-id", "course-id",
    ]);
    // The IDs 12345678, H-7781-2203, AB-0042 and 88410022.
    expect(byCategory.get("patient-id")!.terms).toBe(4);
    // The burned-in copy is left out, but its content still contains the ID.
    const idFiles = report.files.filter((file) => file.identifiers.includes("patient-id")).map((file) => file.path);
    expect(idFiles).toContain("extra/file-27.dcm");
    expect(idFiles).not.toContain("extra/file-31.png");
    expect(byCategory.get("patient-name")!.files).toBeGreaterThanOrEqual(24);
    expect(byCategory.get("course-id")).toEqual({ category: "course-id", terms: 0, files: 0 });
  });

  test("the notes files are searched, not only learnt", () => {
    const notes = report.files.filter((file) => file.path.endsWith("notes.txt"));
    expect(notes).toHaveLength(3);
    for (const file of notes) {
      expect(file.identifiers, file.path).toContain("patient-name");
      expect(file.identifiers, file.path).toContain("phone");
    }
  });

  test("DICOM section counts modalities and SOP classes", () => {
    expect(report.dicom.files).toBe(25);
    expect(report.dicom.unparsed).toBe(1);
    expect(report.dicom.studies).toBe(3);
    expect(report.dicom.series).toBe(12);
    expect(report.dicom.modalities).toEqual([
      { modality: "CT", files: 15 },
      { modality: "RTDOSE", files: 3 },
      { modality: "RTPLAN", files: 3 },
      { modality: "RTSTRUCT", files: 3 },
    ]);
    expect(report.dicom.sopClasses).toContainEqual({ uid: "1.2.840.10008.5.1.4.1.1.2", name: "CT Image Storage", files: 15 });
    expect(report.dicom.sopClasses).toContainEqual({ uid: "1.2.840.10008.5.1.4.1.1.481.3", name: "RT Structure Set Storage", files: 3 });
  });

  test("DICOM section counts character sets and creators", () => {
    expect(report.dicom.characterSets).toEqual([
      { characterSet: "(default repertoire)", files: 16 },
      { characterSet: "(unknown)", files: 1 },
      { characterSet: "ISO_IR 100", files: 5 },
      { characterSet: "ISO_IR 192", files: 2 },
    ]);
    expect(report.dicom.privateCreators).toHaveLength(1);
    expect(report.dicom.privateCreators[0]).toMatchObject({ creator: "ACME RT 1.0", files: 24 });
    expect(report.dicom.flags.privateTags.files).toBe(24);
  });

  test("risk flags name the flagged files", () => {
    expect(report.dicom.flags.burnedInAnnotation).toEqual({ files: 1, paths: ["extra/file-27.dcm"] });
    expect(report.dicom.flags.withoutPatientId).toEqual({ files: 1, paths: ["extra/no-id.dcm"] });
    expect(report.dicom.flags.unknownCharacterSet).toEqual({ files: 1, paths: ["extra/file-28.dcm"] });
  });

  test("anonymize --dry-run gives left-out files the same names", async () => {
    const dryRun = await runDeidkit(["anonymize", tree.input, tree.at("dry"), "--dry-run", "--secret", tree.secretPath]);
    const planned = [...dryRun.stdout.matchAll(/^quarantine (\S+) \((\w+)\)$/gm)].map((match) => ({ path: match[1], reason: match[2] }));
    // The learn pass accepts burned-in files; anonymize leaves them out in its write pass.
    const scanned = report.leftOut.filter((row) => row.reason !== "BURNED_IN_ANNOTATION");
    expect(planned).toEqual(scanned);
  });

  test("text output lists counts and left-out files", () => {
    expect(text.stdout).toMatch(/^patients: 3$/m);
    expect(text.stdout).toMatch(/^ {2}extra\/file-29\.txt +SYMLINK/m);
    expect(text.stdout).toMatch(/^ {4}ACME RT 1\.0 +24 +\d+$/m);
  });

  test("no output contains a planted identifier", () => {
    expect(plantedLeaks(planted, text.stdout)).toEqual([]);
    expect(plantedLeaks(planted, text.stderr)).toEqual([]);
    expect(plantedLeaks(planted, json.stdout)).toEqual([]);
    expect(plantedLeaks(planted, json.stderr)).toEqual([]);
  });

  test("the leak check finds a planted identifier", () => {
    expect(plantedLeaks(planted, "file 12345678/CT.dcm")).toEqual(["12345678"]);
    expect(plantedLeaks(planted, "ExposureInuAs 512345678")).toEqual([]);
  });

  describe("--html", () => {
    let htmlPath: string;
    let first: CliRun;
    let html: string;

    beforeAll(async () => {
      htmlPath = tree.at("scan.html");
      first = await runDeidkit(["scan", tree.input, "--html", htmlPath]);
      html = await readFile(htmlPath, "utf8");
    }, 60_000);

    test("writes one self-contained page", () => {
      expect(first.code, first.stderr).toBe(0);
      expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
      expect(html).toContain("<table>");
      expect(html).toContain("extra/file-26.dcm");
      expect(html).not.toMatch(/<script|<link|src=|https?:/i);
    });

    test("writes mode 0644", async () => {
      expect((await stat(htmlPath)).mode & 0o777).toBe(0o644);
    });

    test("contains no planted identifier", () => {
      expect(plantedLeaks(planted, html)).toEqual([]);
      expect(plantedLeaks(planted, first.stdout + first.stderr)).toEqual([]);
    });

    test("refuses to overwrite", async () => {
      const second = await runDeidkit(["scan", tree.input, "--html", htmlPath]);
      expect(second.code).toBe(2);
      expect(second.stderr).toContain("--html file already exists");
      expect(await readFile(htmlPath, "utf8")).toBe(html);
    });

    test("refuses a path inside INPUT", async () => {
      const inside = await runDeidkit(["scan", tree.input, "--html", join(tree.input, "scan.html")]);
      expect(inside.code).toBe(2);
      await expect(stat(join(tree.input, "scan.html"))).rejects.toThrow();
    });
  });
});

describe("scan usage errors", () => {
  test("missing INPUT exits 2", async () => {
    const run = await runDeidkit(["scan", "/nonexistent/deidkit-scan-input"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("INPUT does not exist");
  });

  test("unknown profile exits 2", async () => {
    const run = await runDeidkit(["scan", ".", "--profile", "nonsense"]);
    expect(run.code).toBe(2);
  });

  test("a file as INPUT exits 2", async () => {
    const tree = await makeTestTree({ include: ["README.txt"] });
    try {
      await copyFile(join(tree.input, "README.txt"), tree.at("file.txt"));
      const run = await runDeidkit(["scan", tree.at("file.txt")]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("INPUT is not a folder");
    } finally {
      await tree.cleanup();
    }
  });
});
