// The deidkit command, case by case: arguments, exit code, what it prints
// and which files must or must not exist afterwards.

import { mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";

import { afterEach, describe, expect, test } from "vitest";

import { runDeidkit, type CliRun } from "../helpers/cli.js";
import { isPart10, listEntries, makeTestTree, readTreeFiles, type TestTree, type TreeFile } from "../helpers/tree.js";

/** Identifiers of the sample tree that no terminal output may show (decrypting the key aside). */
const PATIENT_IDENTIFIERS = ["12345678", "AB-0042", "DOE", "Jane", "MÜLLER", "Mueller", "19470316", "1.2.826.0.1.3680043.10.1234"];

interface CliCase {
  name: string;
  /** Prepares the scratch folder, before the snapshot that `writesNothing` compares with. */
  setup?: (tree: TestTree) => Promise<void>;
  args: (tree: TestTree) => string[];
  code: number;
  stdout?: RegExp[];
  stderr?: RegExp[];
  /** Paths relative to the scratch folder. */
  exists?: string[];
  absent?: string[];
  /** The scratch folder contains the same files and folders, with the same bytes, before and after. */
  writesNothing?: boolean;
  /** The command prints original identifiers on purpose (key decrypt). */
  showsIdentifiers?: boolean;
  check?: (tree: TestTree, run: CliRun) => Promise<void>;
}

const anonymizeArgs = (tree: TestTree, ...extra: string[]): string[] => [
  "anonymize",
  tree.input,
  tree.at("out"),
  "--recipient",
  tree.recipientPath,
  ...extra,
];

/** Runs a full anonymize of the tree into `out`, for the key cases. */
async function anonymizeFirst(tree: TestTree): Promise<void> {
  const run = await runDeidkit(anonymizeArgs(tree, "--secret", tree.secretPath));
  expect(run.code, run.stderr).toBe(0);
}

const SLICE = "12345678/C1_2019/CT/CT.1.2.826.0.1.3680043.10.1234.1.1.3.1.dcm";

/**
 * Adds two inputs that every run must leave out: a DICOM file cut off after
 * 400 bytes and a symbolic link to a good slice.
 */
async function addBrokenInputs(tree: TestTree): Promise<void> {
  const slice = await readFile(tree.at("input", ...SLICE.split("/")));
  await writeFile(tree.at("input", "broken.dcm"), slice.subarray(0, 400));
  await symlink(tree.at("input", ...SLICE.split("/")), tree.at("input", "link.dcm"));
}

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

const CASES: CliCase[] = [
  {
    name: "--help lists commands and examples",
    args: () => ["--help"],
    code: 0,
    stdout: [/Usage: deidkit/, /anonymize/, /keygen/, /Examples:/, /\$ deidkit anonymize /],
  },
  {
    name: "anonymize --help shows examples",
    args: () => ["anonymize", "--help"],
    code: 0,
    stdout: [/Usage: deidkit anonymize/, /--recipient/, /Examples:/, /\$ deidkit anonymize Data\/ /, /Exit codes:/],
  },
  {
    name: "anonymize without --recipient",
    args: (tree) => ["anonymize", tree.input, tree.at("out")],
    code: 2,
    stderr: [/deidkit: error: no --recipient/, /deidkit: hint: .*keygen/],
    absent: ["out", "out.deidkey", "out.report.json"],
    writesNothing: true,
  },
  {
    name: "anonymize with an identity as --recipient",
    args: (tree) => ["anonymize", tree.input, tree.at("out"), "--recipient", tree.identityPath],
    code: 2,
    stderr: [/deidkit: error: .*not a recipient/, /deidkit: hint: .*recipient\.pub/],
    absent: ["out", "out.deidkey", "out.report.json"],
    writesNothing: true,
  },
  {
    name: "anonymize with a missing --recipient file",
    args: (tree) => ["anonymize", tree.input, tree.at("out"), "--recipient", tree.at("keys", "missing.pub")],
    code: 2,
    stderr: [/deidkit: error: .*cannot read the recipient file/],
    absent: ["out", "out.deidkey", "out.report.json"],
    writesNothing: true,
  },
  {
    name: "anonymize with a missing --secret file",
    args: (tree) => anonymizeArgs(tree, "--secret", tree.at("missing.secret")),
    code: 2,
    stderr: [/deidkit: error: cannot read secret file/],
    absent: ["out"],
    writesNothing: true,
  },
  {
    name: "anonymize into an existing OUTPUT",
    setup: async (tree) => {
      await mkdir(tree.at("out"));
    },
    args: (tree) => anonymizeArgs(tree),
    code: 2,
    stderr: [/deidkit: error: OUTPUT already exists/],
    absent: ["out.deidkey", "out.report.json"],
    writesNothing: true,
  },
  {
    name: "anonymize into a missing parent folder",
    args: (tree) => ["anonymize", tree.input, tree.at("missing", "out"), "--recipient", tree.recipientPath],
    code: 2,
    stderr: [/deidkit: error: the folder for OUTPUT does not exist/],
    absent: ["missing"],
    writesNothing: true,
  },
  {
    name: "anonymize with OUTPUT inside INPUT",
    args: (tree) => ["anonymize", tree.input, tree.at("input", "derived"), "--recipient", tree.recipientPath],
    code: 2,
    stderr: [/deidkit: error: OUTPUT and INPUT overlap/],
    absent: ["input/derived", "input/derived.deidkey"],
    writesNothing: true,
  },
  {
    name: "anonymize with --key-out inside OUTPUT",
    args: (tree) => anonymizeArgs(tree, "--key-out", tree.at("out", "key.deidkey")),
    code: 2,
    stderr: [/deidkit: error: the key file would be inside INPUT or OUTPUT/],
    absent: ["out"],
    writesNothing: true,
  },
  {
    name: "anonymize with --key-out inside INPUT",
    args: (tree) => anonymizeArgs(tree, "--key-out", tree.at("input", "key.deidkey")),
    code: 2,
    stderr: [/deidkit: error: the key file would be inside INPUT or OUTPUT/],
    absent: ["out", "input/key.deidkey"],
    writesNothing: true,
  },
  {
    name: "anonymize with an existing --key-out",
    setup: async (tree) => {
      await writeFile(tree.at("old.deidkey"), "an older key\n");
    },
    args: (tree) => anonymizeArgs(tree, "--key-out", tree.at("old.deidkey")),
    code: 2,
    stderr: [/deidkit: error: the key file already exists/],
    absent: ["out"],
    writesNothing: true,
    check: async (tree) => {
      expect(await readFile(tree.at("old.deidkey"), "utf8")).toBe("an older key\n");
    },
  },
  {
    name: "anonymize with --report inside INPUT",
    args: (tree) => anonymizeArgs(tree, "--report", tree.at("input", "report.json")),
    code: 2,
    stderr: [/deidkit: error: the report would be inside INPUT/],
    absent: ["out", "out.deidkey", "input/report.json"],
    writesNothing: true,
  },
  {
    name: "anonymize with --report in a missing folder",
    args: (tree) => anonymizeArgs(tree, "--report", tree.at("missing", "report.json")),
    code: 2,
    stderr: [/deidkit: error: the folder for the report does not exist/],
    absent: ["out", "out.deidkey", "missing"],
    writesNothing: true,
  },
  {
    name: "anonymize with --report inside OUTPUT",
    args: (tree) => anonymizeArgs(tree, "--report", tree.at("out", "report.json")),
    code: 0,
    exists: ["out/report.json", "out.deidkey"],
    absent: ["out.report.json"],
  },
  {
    name: "anonymize with an unknown --option",
    args: (tree) => anonymizeArgs(tree, "--option", "retain-everything"),
    code: 2,
    stderr: [/deidkit: error: unknown option "retain-everything"/, /deidkit: hint: use one of: .*retain-uids/],
    absent: ["out"],
    writesNothing: true,
  },
  {
    name: "anonymize with an unknown --profile",
    args: (tree) => anonymizeArgs(tree, "--profile", "strict"),
    code: 2,
    stderr: [/allowed values are basic, research; got "strict"/],
    absent: ["out"],
    writesNothing: true,
  },
  {
    name: "anonymize with both date options",
    args: (tree) => anonymizeArgs(tree, "--profile", "basic", "--option", "retain-longitudinal-full-dates", "--option", "retain-longitudinal-modified-dates"),
    code: 2,
    stderr: [/exclude each other/],
    absent: ["out"],
    writesNothing: true,
  },
  {
    name: "anonymize with --jobs 0",
    args: (tree) => anonymizeArgs(tree, "--jobs", "0"),
    code: 2,
    stderr: [/--jobs must be a whole number of 1 or more/],
    absent: ["out"],
    writesNothing: true,
  },
  {
    name: "anonymize a missing INPUT",
    args: (tree) => ["anonymize", tree.at("nowhere"), tree.at("out"), "--recipient", tree.recipientPath],
    code: 2,
    stderr: [/deidkit: error: INPUT does not exist/],
    absent: ["out"],
    writesNothing: true,
  },
  {
    name: "anonymize --dry-run",
    setup: addBrokenInputs,
    args: (tree) => ["anonymize", tree.input, tree.at("out"), "--dry-run"],
    code: 1,
    stdout: [/^write {6}PAT-[0-9A-Z]{10}\/C1_2019\/CT\//m, /^quarantine file-22\.dcm \(DICOM_INVALID\)$/m, /^quarantine file-23\.dcm \(SYMLINK\)$/m],
    stderr: [/would write 21 of 23 files for 2 patients; 2 left out/],
    absent: ["out", "out.deidkey", "out.report.json"],
    writesNothing: true,
    check: async (tree, run) => {
      const lines = run.stdout.trim().split("\n");
      expect(lines).toHaveLength(23);
      expect(lines.filter((line) => line.startsWith("write "))).toHaveLength(21);
      expect(lines.filter((line) => line.startsWith("quarantine "))).toHaveLength(2);
    },
  },
  {
    name: "anonymize --dry-run --json",
    args: (tree) => ["anonymize", tree.input, tree.at("out"), "--dry-run", "--json"],
    code: 0,
    absent: ["out", "out.deidkey", "out.report.json"],
    writesNothing: true,
    check: async (_tree, run) => {
      const summary = JSON.parse(run.stdout) as Record<string, unknown>;
      expect(summary.dryRun).toBe(true);
      expect(summary.filesWritten).toBe(21);
      expect(summary.key).toBeNull();
    },
  },
  {
    name: "anonymize --json",
    args: (tree) => anonymizeArgs(tree, "--json", "--secret", tree.secretPath),
    code: 0,
    exists: ["out", "out.deidkey", "out.report.json"],
    check: async (tree, run) => {
      const summary = JSON.parse(run.stdout) as Record<string, unknown>;
      expect(summary.filesSeen).toBe(21);
      expect(summary.filesWritten).toBe(21);
      expect(summary.filesQuarantined).toBe(0);
      expect(summary.patients).toBe(2);
      expect(summary.key).toBe(tree.at("out.deidkey"));
      expect(summary.reportFile).toBe(tree.at("out.report.json"));
      expect(run.stderr).not.toMatch(/warning/);
    },
  },
  {
    name: "anonymize with files left out",
    setup: addBrokenInputs,
    args: (tree) => anonymizeArgs(tree, "--secret", tree.secretPath),
    code: 1,
    stderr: [
      /deidkit: warning: left out file-22\.dcm: DICOM_INVALID/,
      /deidkit: warning: left out file-23\.dcm: SYMLINK/,
      /wrote 21 of 23 files for 2 patients; 2 left out/,
      /deidkit: hint: the report lists each file left out/,
    ],
    exists: ["out", "out.deidkey", "out.report.json"],
    check: async (tree) => {
      const report = JSON.parse(await readFile(tree.at("out.report.json"), "utf8")) as {
        filesQuarantined: number;
        quarantined: Array<{ path: string; reason: string }>;
      };
      expect(report.filesQuarantined).toBe(2);
      const reasons = Object.fromEntries(report.quarantined.map((entry) => [entry.path, entry.reason]));
      // Files left out are named by position, because their own names may hold identifiers never learnt.
      expect(reasons).toEqual({ "file-22.dcm": "DICOM_INVALID", "file-23.dcm": "SYMLINK" });
      const written = await listEntries(tree.at("out"));
      expect(written).not.toContain("broken.dcm");
      expect(written).not.toContain("link.dcm");
      expect((await readTreeFiles(tree.at("out"))).filter((file) => isPart10(file.bytes))).toHaveLength(21);
      expect((await listEntries(tree.dir)).filter((path) => path.includes("deidkit-partial") || path.includes(".deidkit-tmp"))).toEqual([]);
    },
  },
  {
    name: "key decrypt with the right identity",
    setup: anonymizeFirst,
    args: (tree) => ["key", "decrypt", tree.at("out.deidkey"), "--identity", tree.identityPath],
    code: 0,
    showsIdentifiers: true,
    check: async (_tree, run) => {
      const decrypted = JSON.parse(run.stdout) as { payload: { patients: Array<{ originalId: string }> } };
      expect(decrypted.payload.patients.map((patient) => patient.originalId).sort()).toEqual(["12345678", "AB-0042"]);
    },
  },
  {
    name: "key decrypt as CSV",
    setup: anonymizeFirst,
    args: (tree) => ["key", "decrypt", tree.at("out.deidkey"), "--identity", tree.identityPath, "--format", "csv"],
    code: 0,
    stdout: [/^kind,original,replacement,detail$/m, /^patient,12345678,PAT-[0-9A-Z]{10},shiftDays=-\d+$/m],
    showsIdentifiers: true,
  },
  {
    name: "key decrypt with a wrong identity",
    setup: async (tree) => {
      await anonymizeFirst(tree);
      const other = await runDeidkit(["keygen", "--out", tree.at("other")]);
      expect(other.code).toBe(0);
    },
    args: (tree) => ["key", "decrypt", tree.at("out.deidkey"), "--identity", tree.at("other", "identity.key")],
    code: 3,
    stderr: [/deidkit: error: /],
    writesNothing: true,
    check: async (_tree, run) => {
      expect(run.stdout).toBe("");
    },
  },
  {
    name: "key inspect without an identity",
    setup: anonymizeFirst,
    args: (tree) => ["key", "inspect", tree.at("out.deidkey")],
    code: 0,
    stdout: [/^patients:\s+2$/m, /^files:\s+21$/m, /^uids:\s+\d+$/m, /^recipients:\s+[0-9a-f]{16}$/m],
    writesNothing: true,
  },
  {
    name: "keygen into a new folder",
    args: (tree) => ["keygen", "--out", tree.at("newkeys")],
    code: 0,
    stdout: [/^deidkit-recipient-1-/],
    exists: ["newkeys/identity.key", "newkeys/recipient.pub"],
    check: async (tree) => {
      expect(await modeOf(tree.at("newkeys", "identity.key"))).toBe(0o600);
    },
  },
  {
    name: "keygen twice into one folder",
    setup: async (tree) => {
      expect((await runDeidkit(["keygen", "--out", tree.at("newkeys")])).code).toBe(0);
    },
    args: (tree) => ["keygen", "--out", tree.at("newkeys")],
    code: 2,
    stderr: [/deidkit: error: /],
    writesNothing: true,
    check: async (tree) => {
      expect(await modeOf(tree.at("newkeys", "identity.key"))).toBe(0o600);
    },
  },
  {
    name: "secret new",
    args: (tree) => ["secret", "new", tree.at("study.secret")],
    code: 0,
    stderr: [/secret written/],
    exists: ["study.secret"],
    check: async (tree, run) => {
      expect(await modeOf(tree.at("study.secret"))).toBe(0o600);
      const content = await readFile(tree.at("study.secret"), "utf8");
      expect(content).toMatch(/^DEIDKIT-SECRET-1-[A-Za-z0-9_-]{43}\n$/);
      expect(run.stdout + run.stderr).not.toContain(content.trim());
    },
  },
  {
    name: "secret new twice on one path",
    setup: async (tree) => {
      expect((await runDeidkit(["secret", "new", tree.at("study.secret")])).code).toBe(0);
    },
    args: (tree) => ["secret", "new", tree.at("study.secret")],
    code: 2,
    stderr: [/deidkit: error: secret file already exists/],
    writesNothing: true,
  },
];

/** Reads every file of the scratch folder, so a case can assert that none changed. */
async function snapshot(tree: TestTree): Promise<{ entries: string[]; files: TreeFile[] }> {
  return { entries: await listEntries(tree.dir), files: await readTreeFiles(tree.dir) };
}

describe("deidkit command", () => {
  let tree: TestTree | undefined;

  afterEach(async () => {
    await tree?.cleanup();
    tree = undefined;
  });

  test.each(CASES)("$name", async (testCase) => {
    tree = await makeTestTree({ dicomOnly: true });
    await testCase.setup?.(tree);
    const before = await snapshot(tree);
    const run = await runDeidkit(testCase.args(tree));

    expect(run.code, run.stderr).toBe(testCase.code);
    for (const pattern of testCase.stdout ?? []) expect(run.stdout).toMatch(pattern);
    for (const pattern of testCase.stderr ?? []) expect(run.stderr).toMatch(pattern);
    for (const path of testCase.exists ?? []) expect(await listEntries(tree.dir)).toContain((await isFolder(tree.at(path))) ? `${path}/` : path);
    const entries = await listEntries(tree.dir);
    for (const path of testCase.absent ?? []) {
      expect(entries).not.toContain(path);
      expect(entries).not.toContain(`${path}/`);
    }
    if (testCase.writesNothing) {
      const after = await snapshot(tree);
      expect(after.entries).toEqual(before.entries);
      after.files.forEach((file, index) => expect(file.bytes.equals(before.files[index].bytes), file.relativePath).toBe(true));
    }
    if (!testCase.showsIdentifiers) {
      for (const identifier of PATIENT_IDENTIFIERS) {
        const pattern = new RegExp(`(?<![\\p{L}\\p{N}])${identifier.replace(/\./g, "\\.")}(?![\\p{L}\\p{N}])`, "iu");
        expect(run.stdout, `stdout shows ${identifier}`).not.toMatch(pattern);
        expect(run.stderr, `stderr shows ${identifier}`).not.toMatch(pattern);
      }
    }
    await testCase.check?.(tree, run);
  });
});

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
