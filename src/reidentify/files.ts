/**
 * Restores one file of any kind: DICOM with reidentify/dicom.ts, other
 * formats with the format handlers of anonymize, given a context in which
 * each pseudonym stands for a patient whose "pseudonym" is the original.
 * The handlers then write the originals where they wrote pseudonyms, and
 * shift structured dates back by the negated shift.
 */
import { closeSync, readSync } from "node:fs";
import { chmod } from "node:fs/promises";

import { looksLikeDicom } from "../dicom/reader.js";
import { openRegularFile } from "../dicom/source.js";
import { QuarantineReason } from "../deid/apply.js";
import { PLACEHOLDER, type Patient } from "../deid/identifiers.js";
import { FormatSet } from "../formats/index.js";
import type { WriteContext } from "../formats/types.js";
import type { DicomPassOptions } from "../run/dicom-file.js";
import { restoreDicomFile } from "./dicom.js";
import type { ReverseKey } from "./key-index.js";

const HEAD_BYTES = 256;

function readHead(path: string): Buffer {
  const fd = openRegularFile(path);
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const count = readSync(fd, buffer, 0, HEAD_BYTES, 0);
    return buffer.subarray(0, count);
  } finally {
    closeSync(fd);
  }
}

export interface RestoredFile {
  /** "dicom" or the name of the format handler that restored the file. */
  kind: string;
  /** Number of values restored. */
  restored: number;
}

export class FileRestorer {
  private readonly formats = new FormatSet();
  /** Values in patient ID fields that are no pseudonym of the key, so they were kept. */
  unknownPatientIds = 0;

  constructor(
    private readonly key: ReverseKey,
    private readonly passOptions: DicomPassOptions,
  ) {}

  /**
   * Writes the restored copy of `path` to `targetPath` with mode 0600.
   * `relativePath` is the file's path in the de-identified tree, which
   * selects the format handler. Throws QuarantineReason or DeidError when
   * the file cannot be restored.
   */
  async restore(path: string, relativePath: string, targetPath: string): Promise<RestoredFile> {
    const head = readHead(path);
    if (looksLikeDicom(head)) {
      const counts = await restoreDicomFile(path, targetPath, this.key, this.passOptions);
      return { kind: "dicom", restored: counts.ids + counts.names + counts.uids + counts.dates + counts.texts };
    }
    const format = this.formats.find(relativePath, head);
    if (!format) throw new QuarantineReason("UNSUPPORTED_FORMAT", "no restore rules for this kind of file");
    const result = await format.write(path, targetPath, this.contextFor(relativePath));
    // Handlers create their output with mode 0644; the restored content identifies patients.
    await chmod(targetPath, 0o600);
    return { kind: format.name, restored: result.replacements };
  }

  private patientFor(id: string): Patient {
    const patient = this.key.patientOf(id);
    if (patient) return this.key.inversePatient(patient);
    this.unknownPatientIds++;
    // An ID the key does not know is kept, with its dates unchanged.
    return { key: id, pseudonymId: id, pseudonymName: PLACEHOLDER["patient-name"], shiftDays: 0, mapped: false };
  }

  /** The patient whose pseudonym names a folder on the file's path, if any. */
  private patientOfPath(relativePath: string): Patient | undefined {
    for (const folder of relativePath.split("/").slice(0, -1)) {
      const patient = this.key.patientOf(folder);
      if (patient) return this.key.inversePatient(patient);
    }
    return undefined;
  }

  private contextFor(relativePath: string): WriteContext {
    return {
      cleaner: this.key.cleaner,
      patientFor: (id) => this.patientFor(id),
      patient: this.patientOfPath(relativePath),
      shiftDates: this.key.shiftDates,
      relativePath,
      writeNested: async (nested, name, target) => {
        await this.restore(nested, name, target);
      },
    };
  }
}
