/**
 * `scan`: an inventory of the identifiers in an input tree before it is
 * shared. It runs anonymize's first pass (TaskRunner.learn) to learn the
 * identifiers and to find the files that would be left out, then searches
 * every file for the learnt identifiers and reads the DICOM headers for
 * risk flags. The result contains counts, reason codes and de-identified
 * names only, never an identifier.
 */
import { stat } from "node:fs/promises";

import { UsageError } from "../errors.js";
import { TextCleaner, uidMapper } from "../deid/cleaner.js";
import { IdentifierRegistry, type IdentifierCategory } from "../deid/identifiers.js";
import { DEFAULT_READ_LIMITS, type ReadLimits } from "../dicom/reader.js";
import { compileProfile, type OptionName } from "../profile/profile.js";
import { initSodium, randomSecret } from "../pseudonym/keyed-hash.js";
import { counting, runLocally, WorkerPool, workersAvailable } from "../run/pool.js";
import { withTemporaryScratch } from "../run/unpublished.js";
import { TaskRunner, type LearnResult, type RunSetup } from "../run/tasks.js";
import { FormatSet } from "../formats/index.js";
import { PathMapper } from "../tree/paths.js";
import { walkTree, type TreeEntry } from "../tree/walk.js";
import { IdentifierMatcher } from "../verify/matcher.js";
import { inspectEntry, type EntryFacts } from "./inspect.js";
import { leftOutName, publishedFolders } from "../tree/left-out-names.js";
import { buildReport, type ScanReport } from "./report.js";

export interface ScanOptions {
  input: string;
  /** PS3.15 options of the profile; they decide which values count as identifiers. */
  options: readonly OptionName[];
  /** Secret for the pseudonyms in de-identified names; without it a random one is used. */
  secret?: Uint8Array;
  /** Files learnt at once, over worker threads when more than 1. */
  jobs?: number;
  /** Glob patterns of files anonymize would copy unchanged (--pass-through). */
  passThrough?: readonly string[];
  limits?: Partial<ReadLimits>;
  maxInflatedBytes?: number;
  onProgress?: (phase: "learn" | "search", done: number, total: number) => void;
}

/** A tree entry after the learn pass: how anonymize would treat it and under which name. */
export interface PlannedEntry {
  entry: TreeEntry;
  /** "dicom", a format name, "unsupported", "symlink", "special" or "unreadable". */
  type: string;
  /** De-identified path when written, the left-out name otherwise. */
  name: string;
  /** Reason code when anonymize would leave the file out. */
  reason?: string;
}

const MIN_FILES_FOR_WORKERS = 16;

async function checkInput(input: string): Promise<void> {
  let info;
  try {
    info = await stat(input);
  } catch {
    throw new UsageError("INPUT does not exist or cannot be read", { hint: "pass the folder to scan as INPUT" });
  }
  if (!info.isDirectory()) {
    throw new UsageError("INPUT is not a folder", { hint: "pass the folder that contains the files to scan" });
  }
}

async function learnAll(
  files: readonly TreeEntry[],
  setup: RunSetup,
  jobs: number,
  onDone: (done: number) => void,
): Promise<LearnResult[]> {
  const usePool = jobs > 1 && files.length >= MIN_FILES_FOR_WORKERS && workersAvailable();
  if (usePool) {
    const pool = new WorkerPool(Math.min(jobs, files.length), setup);
    try {
      const tasks = files.map((entry) => ({ kind: "learn" as const, path: entry.path, relativePath: entry.relativePath }));
      return await pool.run<LearnResult>(tasks, counting(onDone));
    } finally {
      await pool.close();
    }
  }
  const runner = new TaskRunner(setup);
  return runLocally(files, (entry) => runner.learn(entry.path, entry.relativePath), counting(onDone));
}

/** Scans the tree at `options.input`; throws UsageError when it is not a readable folder. */
export async function scanTree(options: ScanOptions): Promise<ScanReport> {
  await checkInput(options.input);
  await initSodium();
  const profile = compileProfile(options.options);
  const overrides = Object.entries(options.limits ?? {}).filter(([, value]) => value !== undefined);
  const limits: ReadLimits = { ...DEFAULT_READ_LIMITS, ...Object.fromEntries(overrides) };
  const setup: RunSetup = {
    options: [...profile.options],
    secret: options.secret ?? randomSecret(),
    crosswalk: [],
    shiftDates: profile.options.has("retain-longitudinal-modified-dates"),
    passOptions: { limits, maxInflatedBytes: options.maxInflatedBytes ?? 4 * 1024 ** 3 },
    passThrough: [...(options.passThrough ?? [])],
  };

  // Archive members and NIfTI extensions are extracted here, with their
  // identifiers; an interrupt removes the folder (see run/unpublished.ts).
  return withTemporaryScratch("scan", async (scratch) => {
    setup.scratchParent = scratch;
    const entries = await walkTree(options.input);
    const regularFiles = entries.filter((entry) => entry.kind === "file");
    const learnt = await learnAll(regularFiles, setup, options.jobs ?? 1, (done) => options.onProgress?.("learn", done, regularFiles.length));
    const resultOf = new Map<TreeEntry, LearnResult>();
    regularFiles.forEach((entry, index) => resultOf.set(entry, learnt[index]));

    // Replaying the journals in tree order gives the registry anonymize would build.
    const registry = new IdentifierRegistry(setup.secret, { shiftDates: setup.shiftDates });
    for (const entry of regularFiles) {
      const result = resultOf.get(entry)!;
      if (result.ok) registry.replay(result.journal);
    }
    const terms = registry.allTerms();
    const matcher = new IdentifierMatcher(terms.map((term) => ({ text: term.text, category: term.category })));
    const context = { matcher, formats: new FormatSet(setup.passThrough), passOptions: setup.passOptions, scratchParent: scratch };
    const inspected: EntryFacts[] = [];
    for (const [index, entry] of entries.entries()) {
      options.onProgress?.("search", index, entries.length);
      const result = resultOf.get(entry);
      inspected.push(await inspectEntry(entry, result?.ok ? result.kind : undefined, context));
    }
    options.onProgress?.("search", entries.length, entries.length);

    const reasons = entries.map((entry, index) => leaveOutReason(entry, resultOf.get(entry), inspected[index]));
    const paths = new PathMapper(new TextCleaner(terms, uidMapper(setup.secret)));
    const outputPaths = entries.map((entry) => paths.map(entry.relativePath));
    const published = publishedFolders(outputPaths.filter((_, index) => reasons[index] === undefined));
    const planned = entries.map((entry, index) => {
      const reason = reasons[index];
      const name = reason ? leftOutName(outputPaths[index], index, published) : outputPaths[index];
      return { planned: { entry, type: inspected[index].type, name, reason }, facts: inspected[index] };
    });

    return buildReport({
      options: [...profile.options],
      patients: registry.patients.size,
      termCounts: countTerms(terms.map((term) => term.category)),
      entries: planned,
      isSafeLabel: (label) => matcher.find(label).length === 0,
    });
  });
}

/**
 * Returns the reason anonymize would leave the entry out: the learn pass's
 * reason, or one that its write pass would find in a DICOM header that the
 * learn pass accepts (burned-in text, missing SOP UIDs).
 */
function leaveOutReason(entry: TreeEntry, result: LearnResult | undefined, facts: EntryFacts): string | undefined {
  if (entry.kind === "symlink") return "SYMLINK";
  if (entry.kind === "special") return "SPECIAL_FILE";
  if (entry.kind === "unreadable") return "UNREADABLE";
  if (result && !result.ok) return result.reason;
  if (facts.dicom?.burnedInAnnotation) return "BURNED_IN_ANNOTATION";
  if (facts.dicom && (!facts.dicom.sopClassUid || !facts.dicom.hasSopInstanceUid)) return "MISSING_SOP_UIDS";
  return undefined;
}

function countTerms(categories: readonly IdentifierCategory[]): Map<IdentifierCategory, number> {
  const counts = new Map<IdentifierCategory, number>();
  for (const category of categories) counts.set(category, (counts.get(category) ?? 0) + 1);
  return counts;
}
