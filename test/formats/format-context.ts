// Runs one format handler's two passes in-process, the way the run's task
// runner does, with a registry that tests can seed like a DICOM pass would.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";

import { TextCleaner, uidMapper } from "../../src/deid/cleaner.js";
import { IdentifierRegistry, type Patient } from "../../src/deid/identifiers.js";
import type { FormatHandler, LearnContext, WriteContext } from "../../src/formats/types.js";
import { initSodium } from "../../src/pseudonym/keyed-hash.js";
import { TEST_SECRET } from "../helpers/tree.js";

export const SYSTEM_PYTHON = "/usr/bin/python3";

export interface FormatRun {
  registry: IdentifierRegistry;
  dir: string;
  /** Writes `content` as input file `name`, learns it, writes its copy and returns the copy's bytes and count. */
  run(name: string, content: string | Buffer, options?: RunOptions): Promise<{ output: Buffer; replacements: number }>;
  /** The patient of an original ID, as the registry derives it. */
  patient(id: string): Patient;
  cleanup(): Promise<void>;
}

export interface RunOptions {
  shiftDates?: boolean;
  /** Original Patient ID of the folder the file is in. */
  folderPatient?: string;
  /** Skip pass 1, so only identifiers seeded beforehand are known. */
  skipLearn?: boolean;
}

/** Seeds a registry as the sample tree's CT would: 12345678, DOE^JANE^M, born 1947-03-16. */
export function seedSamplePatient(registry: IdentifierRegistry): Patient {
  const patient = registry.patient("12345678");
  registry.addPatientName("DOE^JANE^M", patient);
  registry.addDate("19470316", "birth-date", patient);
  return patient;
}

export async function makeFormatRun(format: FormatHandler, seed?: (registry: IdentifierRegistry) => void): Promise<FormatRun> {
  await initSodium();
  const dir = await mkdtemp(join(tmpdir(), "deidkit-format-"));
  const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates: true });
  seed?.(registry);
  let counter = 0;
  return {
    registry,
    dir,
    patient: (id) => registry.patient(id),
    async run(name, content, options = {}) {
      const input = join(dir, `${counter}-${name}`);
      const target = join(dir, `${counter}-out-${name}`);
      counter++;
      await writeFile(input, content);
      const learnContext: LearnContext = {
        registry,
        relativePath: name,
        learnNested: () => Promise.reject(new Error("no nested files in this test")),
      };
      if (!options.skipLearn) await format.learn?.(input, learnContext);
      const writeContext: WriteContext = {
        // Copies, as the run sends the main registry's terms, so that patientFor cannot change the cleaner's.
        cleaner: new TextCleaner(registry.allTerms().map((term) => ({ ...term })), uidMapper(TEST_SECRET)),
        patientFor: (key) => registry.patient(key),
        patient: options.folderPatient === undefined ? undefined : registry.patient(options.folderPatient),
        shiftDates: options.shiftDates ?? true,
        relativePath: name,
        writeNested: () => Promise.reject(new Error("no nested files in this test")),
      };
      const result = await format.write(input, target, writeContext);
      return { output: await readFile(target), replacements: result.replacements };
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** True when /usr/bin/python3 can import `module`. */
export function pythonHas(module: string): boolean {
  try {
    execFileSync(SYSTEM_PYTHON, ["-c", `import ${module}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Runs a Python script with /usr/bin/python3 and returns its standard output. */
export function runPython(script: string, args: readonly string[] = []): string {
  return execFileSync(SYSTEM_PYTHON, ["-c", script, ...args], { encoding: "utf8" });
}
