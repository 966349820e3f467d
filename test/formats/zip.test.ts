// The zip handler on archives built by Python's zipfile: members, names and
// nested archives de-identified, unsafe names, links, encryption and zip
// bombs rejected, and the output read back with yauzl and with zipfile.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import yauzl from "yauzl";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";

import { QuarantineReason } from "../../src/deid/apply.js";
import { DeidError } from "../../src/errors.js";
import { createZipFormat, DEFAULT_ZIP_LIMITS, unsafeNameReason, zipFormat } from "../../src/formats/zip.js";
import type { LearnContext } from "../../src/formats/types.js";
import { anonymizeTree, type AnonymizeRun } from "../helpers/cli.js";
import { parseDicomFile, TAGS, textOf } from "../helpers/dicom.js";
import { decryptKey, FIXTURES_DIR, listEntries, makeTestTree, type TestTree } from "../helpers/tree.js";

const PYTHON = "/usr/bin/python3";
const HAS_PYTHON = existsSync(PYTHON);
if (!HAS_PYTHON && process.env.CI === "true") {
  throw new Error(`${PYTHON} is missing: CI must install python3 for the zip interoperability tests`);
}

const SLICE = "12345678/C1_2019/CT/CT.1.2.826.0.1.3680043.10.1234.1.1.3.1.dcm";
const SLICE_PATH = join(FIXTURES_DIR, "sample", ...SLICE.split("/"));

/** Identifiers of patient 12345678 that the CT slice teaches the run. */
const PLANTED = ["12345678", "DOE", "JANE", "19470316", "1947-03-16", "16.03.1947", "1.2.826.0.1.3680043.10.1234"];

/** True when `bytes` contain `term` as a whole word, case-insensitively (pixel data may hold digits like 512345678). */
function containsTerm(bytes: Buffer | string, term: string): boolean {
  const text = typeof bytes === "string" ? bytes : bytes.toString("latin1");
  const escaped = term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![0-9A-Za-z])${escaped}(?![0-9A-Za-z])`, "i").test(text);
}

function plantedIn(bytes: Buffer | string): string[] {
  return PLANTED.filter((term) => containsTerm(bytes, term));
}

/**
 * Builds a zip with Python's zipfile from a list of entries. Each entry has
 * a name and one of: text, file (a path to copy), zeros (a byte count),
 * dir. Optional: external_attr, method ("stored"), encrypt (sets the
 * encryption flag in both headers of a one-entry archive). `count` adds
 * that many empty entries; `patch` replaces byte strings (hex) afterwards.
 */
const BUILD_ZIP = String.raw`
import json, sys, zipfile
spec = json.load(sys.stdin)
with zipfile.ZipFile(spec["path"], "w") as archive:
    for entry in spec.get("entries", []):
        info = zipfile.ZipInfo(entry["name"], date_time=(2019, 3, 4, 10, 20, 30))
        info.compress_type = zipfile.ZIP_STORED if entry.get("method") == "stored" else zipfile.ZIP_DEFLATED
        info.create_system = 3
        info.external_attr = entry.get("external_attr", (0o40755 if entry.get("dir") else 0o100644) << 16)
        if entry.get("dir"):
            info.external_attr |= 0x10
        info.comment = b"comment 12345678"
        if "file" in entry:
            data = open(entry["file"], "rb").read()
        elif "zeros" in entry:
            data = bytes(entry["zeros"])
        else:
            data = entry.get("text", "").encode()
        archive.writestr(info, data)
    for index in range(spec.get("count", 0)):
        archive.writestr("e%d" % index, b"")
    archive.comment = b"upload of DOE^JANE 12345678"
data = bytearray(open(spec["path"], "rb").read())
if any(entry.get("encrypt") for entry in spec.get("entries", [])):
    data[6] |= 1
    data[data.index(b"PK\x01\x02") + 8] |= 1
data = bytes(data)
for old, new in spec.get("patch", []):
    data = data.replace(bytes.fromhex(old), bytes.fromhex(new))
open(spec["path"], "wb").write(data)
`;

/** Lists every member of a zip, recursing into nested .zip members, as JSON with base64 content. */
const READ_ZIP = String.raw`
import base64, io, json, sys, zipfile
def walk(data, prefix, out):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if archive.testzip() is not None:
            raise SystemExit("bad CRC")
        for info in archive.infolist():
            content = archive.read(info)
            out.append({"path": prefix + info.filename, "name": info.filename, "date": list(info.date_time),
                        "method": info.compress_type, "mode": info.external_attr >> 16, "comment": info.comment.decode("latin1"),
                        "data": base64.b64encode(content).decode()})
            if info.filename.endswith(".zip"):
                walk(content, prefix + info.filename + "/", out)
    return out
members = walk(open(sys.argv[1], "rb").read(), "", [])
json.dump({"members": members, "comment": zipfile.ZipFile(sys.argv[1]).comment.decode("latin1")}, sys.stdout)
`;

interface ZipSpecEntry {
  name: string;
  text?: string;
  file?: string;
  zeros?: number;
  dir?: boolean;
  encrypt?: boolean;
  external_attr?: number;
  method?: "stored";
}

function runPython(script: string, args: string[], input?: string): string {
  const result = spawnSync(PYTHON, ["-c", script, ...args], { input, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`python failed: ${result.stderr}`);
  return result.stdout;
}

function buildZip(path: string, entries: ZipSpecEntry[], extra: { count?: number; patch?: Array<[string, string]> } = {}): string {
  runPython(BUILD_ZIP, [], JSON.stringify({ path, entries, ...extra }));
  return path;
}

interface PythonMember {
  path: string;
  name: string;
  date: number[];
  method: number;
  mode: number;
  comment: string;
  data: string;
}

function readZipWithPython(path: string): { members: PythonMember[]; comment: string } {
  return JSON.parse(runPython(READ_ZIP, [path])) as { members: PythonMember[]; comment: string };
}

interface YauzlMember {
  path: string;
  bytes: Buffer;
  date: Date;
}

/** Reads every member with yauzl, recursing into nested .zip members. */
async function readZipWithYauzl(buffer: Buffer, prefix = ""): Promise<YauzlMember[]> {
  const zipfile = await yauzl.fromBufferPromise(buffer, { lazyEntries: true, strictFileNames: true });
  const members: YauzlMember[] = [];
  for await (const entry of zipfile.eachEntry()) {
    const chunks: Buffer[] = [];
    for await (const chunk of await zipfile.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    members.push({ path: prefix + entry.fileName, bytes, date: entry.getLastModDate({ timezone: "UTC" }) });
    if (entry.fileName.endsWith(".zip")) members.push(...(await readZipWithYauzl(bytes, `${prefix}${entry.fileName}/`)));
  }
  return members;
}

interface ReportEntry {
  path: string;
  reason: string;
  message: string;
}

async function quarantinedOf(run: AnonymizeRun): Promise<ReportEntry[]> {
  return (JSON.parse(await readFile(run.reportPath, "utf8")) as { quarantined: ReportEntry[] }).quarantined;
}

// Every temporary folder of this file, the handler's included, goes under one private root.
let privateTmp: string;
const originalTmpdir = process.env.TMPDIR;

beforeAll(async () => {
  privateTmp = await mkdtemp(join(tmpdir(), "deidkit-zip-test-"));
  process.env.TMPDIR = privateTmp;
});

afterAll(async () => {
  if (originalTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = originalTmpdir;
  await rm(privateTmp, { recursive: true, force: true });
});

/** Folders the handler left behind in the temporary root. */
async function leftoverScratch(): Promise<string[]> {
  return (await readdir(privateTmp)).filter((name) => name.startsWith("deidkit-zip-") && !name.startsWith("deidkit-zip-test"));
}

describe("unsafeNameReason", () => {
  test.each([
    ["../evil", 'a ".." component'],
    ["a/../../evil", 'a ".." component'],
    ["/abs", "an absolute path"],
    ["C:\\x", "a backslash"],
    ["C:/x", "a drive letter"],
    ["a\\..\\b", "a backslash"],
    ["a\u0000b", "a control character"],
    ["a\nb", "a control character"],
    ["a//b", 'an empty or "." component'],
    ["./a", 'an empty or "." component'],
    ["", "an empty name"],
  ])("rejects %j", (name, reason) => {
    expect(unsafeNameReason(name)).toBe(reason);
  });

  test.each(["a/b.txt", "folder/", "a..b/c", "Ü/ö.dcm", "name:with:colons"])("accepts %j", (name) => {
    expect(unsafeNameReason(name)).toBeUndefined();
  });
});

describe("zip matches", () => {
  const pk = Buffer.from("PK\u0003\u0004rest", "latin1");
  test("by extension", () => {
    expect(zipFormat.matches("up/load.ZIP", Buffer.alloc(0))).toBe(true);
  });
  test("by content without extension", () => {
    expect(zipFormat.matches("up/upload", pk)).toBe(true);
  });
  test("not other zip-based formats", () => {
    expect(zipFormat.matches("up/table.xlsx", pk)).toBe(false);
    expect(zipFormat.matches("up/report.docx", pk)).toBe(false);
  });
  test("not other content without extension", () => {
    expect(zipFormat.matches("up/upload", Buffer.from("DICM"))).toBe(false);
  });
});

describe.skipIf(!HAS_PYTHON)("zip archives through anonymize", () => {
  let tree: TestTree;

  afterEach(async () => {
    await tree?.cleanup();
    expect(await leftoverScratch()).toEqual([]);
  });

  async function makeTree(): Promise<TestTree> {
    tree = await makeTestTree({ include: [SLICE] });
    return tree;
  }

  async function buildUpload(dir: string): Promise<string> {
    const inner = buildZip(join(dir, "inner.zip"), [
      { name: "report_DOE.txt", text: "Patient DOE^JANE 12345678 born 19470316\n" },
    ]);
    return buildZip(join(tree.input, "upload_12345678.zip"), [
      { name: "12345678_DOE/", dir: true },
      { name: "12345678_DOE/notes.txt", text: "Doe, Jane (12345678) born 1947-03-16, plan 1.2.826.0.1.3680043.10.1234.1.1\n" },
      { name: "12345678_DOE/CT_DOE_JANE.dcm", file: SLICE_PATH },
      { name: "12345678_DOE/stored.txt", text: "JANE DOE", method: "stored" },
      { name: "nested/inner_12345678.zip", file: inner },
      { name: "__MACOSX/12345678_DOE/._notes.txt", text: "\u0000\u0005\u0016\u0007 DOE" },
    ]);
  }

  test("members, names and nested archive de-identified", async () => {
    await makeTree();
    const scratch = tree.at("build");
    await mkdir(scratch);
    await buildUpload(scratch);
    const run = await anonymizeTree(tree, "out");
    expect(run.code, run.stderr).toBe(0);
    expect(await quarantinedOf(run)).toEqual([]);

    const outputs = (await listEntries(run.output)).filter((path) => path.endsWith(".zip"));
    expect(outputs).toHaveLength(1);
    expect(plantedIn(outputs[0])).toEqual([]);
    const outputPath = join(run.output, outputs[0]);

    const python = readZipWithPython(outputPath);
    const names = python.members.map((member) => member.path);
    expect(names).toHaveLength(6);
    expect(names.filter((name) => name.includes("__MACOSX"))).toEqual([]);
    for (const member of python.members) {
      expect(plantedIn(member.path), member.path).toEqual([]);
      expect(plantedIn(Buffer.from(member.data, "base64")), member.path).toEqual([]);
      expect(member.date, member.path).toEqual([1980, 1, 1, 0, 0, 0]);
      expect(member.comment).toBe("");
    }
    expect(python.comment).toBe("");

    const folders = python.members.filter((member) => member.name.endsWith("/"));
    expect(folders).toHaveLength(1);
    expect(folders[0].mode).toBe(0o40755);
    const files = python.members.filter((member) => !member.name.endsWith("/"));
    for (const member of files) {
      expect(member.method, member.path).toBe(8);
      expect(member.mode, member.path).toBe(0o100644);
    }

    const yauzlMembers = await readZipWithYauzl(await readFile(outputPath));
    expect(yauzlMembers.map((member) => member.path)).toEqual(names);
    for (const member of yauzlMembers) {
      expect(plantedIn(member.bytes), member.path).toEqual([]);
      expect(member.date.toISOString()).toBe("1980-01-01T00:00:00.000Z");
    }

    // The pseudonym the run gave the patient replaces the ID everywhere.
    const pseudonym = (await listEntries(run.output)).find((path) => path.startsWith("PAT-"))!.split("/")[0];
    const notes = yauzlMembers.find((member) => member.path.endsWith("/notes.txt"))!;
    expect(notes.bytes.toString()).toContain(`(${pseudonym})`);
    const report = yauzlMembers.find((member) => member.path.includes("/report_"))!;
    expect(report.path).toBe(`nested/inner_${pseudonym}.zip/report_${pseudonym}.txt`);
    expect(report.bytes.toString()).toContain(pseudonym);

    const dicom = yauzlMembers.find((member) => member.path.endsWith(".dcm"))!;
    const dicomPath = join(scratch, "member.dcm");
    await writeFile(dicomPath, dicom.bytes);
    expect(textOf(parseDicomFile(dicomPath), TAGS.PatientID)).toBe(pseudonym);
  });

  test("same secret gives identical archive bytes", async () => {
    await makeTree();
    const scratch = tree.at("build");
    await mkdir(scratch);
    await buildUpload(scratch);
    const first = await anonymizeTree(tree, "first");
    const second = await anonymizeTree(tree, "second");
    const zipOf = async (run: AnonymizeRun): Promise<Buffer> => {
      const path = (await listEntries(run.output)).find((entry) => entry.endsWith(".zip"))!;
      return readFile(join(run.output, path));
    };
    expect((await zipOf(first)).equals(await zipOf(second))).toBe(true);
  });

  test("unsafe names and special entries quarantine the archive", async () => {
    await makeTree();
    const cases: Array<[string, ZipSpecEntry[], string, Array<[string, string]>?]> = [
      ["dotdot.zip", [{ name: "../evil", text: "x" }], "ZIP_UNSAFE_ENTRY_NAME"],
      ["deep.zip", [{ name: "a/../../evil", text: "x" }], "ZIP_UNSAFE_ENTRY_NAME"],
      ["absolute.zip", [{ name: "/abs", text: "x" }], "ZIP_UNSAFE_ENTRY_NAME"],
      ["drive.zip", [{ name: "C:\\x", text: "x" }], "ZIP_UNSAFE_ENTRY_NAME"],
      ["backslash.zip", [{ name: "a\\..\\b", text: "x" }], "ZIP_UNSAFE_ENTRY_NAME"],
      // zipfile cuts names at NUL, so the NUL is patched into both headers afterwards.
      ["nul.zip", [{ name: "nulXname", text: "x" }], "ZIP_UNSAFE_ENTRY_NAME", [["6e756c586e616d65", "6e756c006e616d65"]]],
      ["symlink.zip", [{ name: "link", text: "/etc/passwd", external_attr: 0o120777 * 0x10000 }], "ZIP_SPECIAL_ENTRY"],
      ["fifo.zip", [{ name: "pipe", text: "", external_attr: 0o010644 * 0x10000 }], "ZIP_SPECIAL_ENTRY"],
      ["twice.zip", [{ name: "a.txt", text: "1" }, { name: "a.txt", text: "2" }], "ZIP_DUPLICATE_ENTRY"],
    ];
    for (const [name, entries, , patch] of cases) buildZip(join(tree.input, name), entries, { patch });
    const before = await listEntries(tree.dir);
    const run = await anonymizeTree(tree, "out");
    expect(run.code, run.stderr).toBe(1);

    // The report names files left out by position, so the key maps them back to their input paths.
    const { files } = await decryptKey(run.keyPath, tree.identityPath);
    for (const [name, , reason] of cases) {
      const record = files.find((file) => file.input === name);
      expect(record?.status, name).toBe("quarantined");
      expect(record?.reason, name).toBe(reason);
    }
    // Only the slice was written, and nothing appeared anywhere else in the scratch folder or temporary root.
    const written = await listEntries(run.output);
    expect(written.filter((path) => !path.endsWith("/"))).toHaveLength(1);
    const after = (await listEntries(tree.dir)).filter((path) => !path.startsWith("out"));
    expect(after).toEqual(before);
    expect((await readdir(privateTmp)).filter((entry) => /evil|abs|^x$|^b$/.test(entry))).toEqual([]);
    expect(run.stderr).not.toMatch(/evil|passwd/);
  });

  test("encrypted entry quarantines the archive", async () => {
    await makeTree();
    buildZip(join(tree.input, "locked.zip"), [{ name: "secret.txt", text: "DOE", encrypt: true }]);
    const run = await anonymizeTree(tree, "out");
    expect(run.code, run.stderr).toBe(1);
    expect((await quarantinedOf(run)).map((entry) => entry.reason)).toEqual(["ZIP_ENCRYPTED"]);
  });

  test("member without rules quarantines the archive by position", async () => {
    await makeTree();
    buildZip(join(tree.input, "upload.zip"), [
      { name: "ok.txt", text: "fine" },
      { name: "scan_DOE.png", text: "\u0089PNG not really" },
    ]);
    const run = await anonymizeTree(tree, "out");
    expect(run.code, run.stderr).toBe(1);
    const [entry] = await quarantinedOf(run);
    expect(entry.reason).toBe("UNSUPPORTED_FORMAT");
    // Pass 1 fails before all identifiers are known, so the member is named by its position.
    expect(entry.message).toMatch(/^archive member 2 cannot be de-identified: /);
    expect(plantedIn(run.stderr)).toEqual([]);
  });

  test("member rejected when written quarantines the archive by cleaned name", async () => {
    await makeTree();
    const burned = tree.at("burned.dcm");
    const script = "import sys, pydicom\nds = pydicom.dcmread(sys.argv[1])\nds.BurnedInAnnotation = 'YES'\nds.save_as(sys.argv[2])\n";
    runPython(script, [SLICE_PATH, burned]);
    buildZip(join(tree.input, "upload.zip"), [
      { name: "ok.txt", text: "fine" },
      { name: "DOE_JANE/burned_12345678.dcm", file: burned },
    ]);
    const run = await anonymizeTree(tree, "out");
    expect(run.code, run.stderr).toBe(1);
    const [entry] = await quarantinedOf(run);
    expect(entry.reason).toBe("BURNED_IN_ANNOTATION");
    expect(entry.message).toMatch(/^archive member PAT-[A-Z0-9]+\/burned_PAT-[A-Z0-9]+\.dcm cannot be de-identified: /);
    expect(plantedIn(entry.message)).toEqual([]);
    expect(plantedIn(run.stderr)).toEqual([]);
    expect((await listEntries(run.output)).filter((path) => path.endsWith(".zip"))).toEqual([]);
  });

  test("archives nested deeper than maxDepth are rejected", async () => {
    await makeTree();
    const scratch = tree.at("build");
    await mkdir(scratch);
    let inner = buildZip(join(scratch, "level4.zip"), [{ name: "deep.txt", text: "deep" }]);
    for (const level of [3, 2]) inner = buildZip(join(scratch, `level${level}.zip`), [{ name: `level${level + 1}.zip`, file: inner }]);
    buildZip(join(tree.input, "level1.zip"), [{ name: "level2.zip", file: inner }]);
    const run = await anonymizeTree(tree, "out");
    const [entry] = await quarantinedOf(run);
    expect(entry.reason).toBe("LIMIT_EXCEEDED");
    expect(entry.message).toContain(`maxDepth cap of ${DEFAULT_ZIP_LIMITS.maxDepth}`);
  });

  test("highly compressed large member is stopped before inflating", async () => {
    await makeTree();
    // 100 MiB of zeros deflate to about 100 KiB: a ratio near 1000.
    buildZip(join(tree.input, "bomb.zip"), [{ name: "zeros.txt", zeros: 100 * 1024 * 1024 }]);
    const run = await anonymizeTree(tree, "out");
    const [entry] = await quarantinedOf(run);
    expect(entry.reason).toBe("LIMIT_EXCEEDED");
    expect(entry.message).toContain("maxCompressionRatio cap of 200");
  });

  test("too many entries are stopped before reading them", async () => {
    await makeTree();
    buildZip(join(tree.input, "many.zip"), [], { count: DEFAULT_ZIP_LIMITS.maxEntries + 1 });
    const run = await anonymizeTree(tree, "out");
    const [entry] = await quarantinedOf(run);
    expect(entry.reason).toBe("LIMIT_EXCEEDED");
    expect(entry.message).toContain(`maxEntries cap of ${DEFAULT_ZIP_LIMITS.maxEntries}`);
  });
});

describe.skipIf(!HAS_PYTHON)("zip caps on the handler", () => {
  let dir: string;
  let learnt: string[];
  const context = (): LearnContext => ({
    registry: undefined as never,
    relativePath: "upload.zip",
    learnNested: async (_path, relativePath) => {
      learnt.push(relativePath);
    },
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(privateTmp, "caps-"));
  });
  afterEach(async () => {
    learnt = [];
    expect(await leftoverScratch()).toEqual([]);
  });

  async function learnError(limits: Partial<typeof DEFAULT_ZIP_LIMITS>, path: string): Promise<unknown> {
    learnt = [];
    try {
      await createZipFormat({ ...DEFAULT_ZIP_LIMITS, ...limits }).learn!(path, context());
    } catch (error) {
      return error;
    }
    return undefined;
  }

  test("total uncompressed size over maxTotalBytes", async () => {
    const path = buildZip(join(dir, "total.zip"), [
      { name: "a.txt", text: "a".repeat(600) },
      { name: "b.txt", text: "b".repeat(600) },
    ]);
    const error = await learnError({ maxTotalBytes: 1000 }, path);
    expect(error).toBeInstanceOf(DeidError);
    expect((error as DeidError).code).toBe("LIMIT_EXCEEDED");
    expect((error as DeidError).message).toContain("maxTotalBytes cap of 1000");
    expect(learnt).toEqual([]);
  });

  test("one member over maxEntryBytes", async () => {
    const path = buildZip(join(dir, "entry.zip"), [{ name: "a.txt", text: "a".repeat(2000) }]);
    const error = await learnError({ maxEntryBytes: 1000 }, path);
    expect((error as DeidError).code).toBe("LIMIT_EXCEEDED");
    expect((error as DeidError).message).toContain("maxEntryBytes cap of 1000");
  });

  test("size declared smaller than the data", async () => {
    // The central directory and local header claim 16 bytes for 4096 bytes of zeros.
    const size4096 = "00100000";
    const size16 = "10000000";
    const path = buildZip(join(dir, "lying.zip"), [{ name: "z.txt", zeros: 4096 }], {
      patch: [[`${size4096}0500`, `${size16}0500`]],
    });
    const error = await learnError({}, path);
    expect(error).toBeInstanceOf(QuarantineReason);
    expect((error as QuarantineReason).reasonCode).toBe("ZIP_INVALID");
    expect(learnt).toEqual([]);
  });

  test("learns every member under its archive path", async () => {
    const path = buildZip(join(dir, "plain.zip"), [
      { name: "d/", dir: true },
      { name: "d/a.txt", text: "a" },
      { name: ".DS_Store", text: "x" },
    ]);
    expect(await learnError({}, path)).toBeUndefined();
    expect(learnt).toEqual(["upload.zip/d/a.txt"]);
  });
});
