/**
 * JSON files (results, configs, BIDS and dcm2niix sidecars, DICOM JSON).
 * Values are rewritten by the class of their key, and every other string
 * and every key is cleaned of the run's identifiers. Everything else is
 * copied byte for byte, so white space, key order and number spellings
 * survive. The file is read whole, so its size is capped.
 *
 * Duplicate keys are kept, each value rewritten by its own key, so no
 * reader's choice between them can expose a value.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";

import type { Patient } from "../deid/identifiers.js";
import { QuarantineReason } from "../deid/apply.js";
import { openRegularFile } from "../dicom/source.js";
import { LimitError } from "../errors.js";
import { replaceDateValue } from "./date-text.js";
import { cachingCleaner, capAgeText, FieldLearner, isEmptyValue, patientForId, rewriteFieldValue, type FieldRewriteContext } from "./field-rules.js";
import { classifyField, type FieldClass } from "./fields.js";
import { JsonSyntaxError, scanJson, type JsonScalar, type JsonVisitor } from "./json-scan.js";
import type { FormatHandler, FormatWriteResult, LearnContext, WriteContext } from "./types.js";

export const MAX_JSON_BYTES = 256 * 1024 * 1024;
export const MAX_JSON_DEPTH = 512;

/** Output is written in pieces of about this many characters. */
const FLUSH_CHARACTERS = 1 << 20;

/**
 * Keys whose value belongs to the field around them: DICOM JSON (PS3.18
 * F.2) writes a Patient Name as {"00100010": {"vr": "PN", "Value":
 * [{"Alphabetic": "..."}]}}.
 */
const WRAPPER_KEYS = new Set(["Value", "Alphabetic", "Ideographic", "Phonetic"]);
const TAG_KEY = /^[0-9A-Fa-f]{8}$/;

interface Frame {
  kind: "object" | "array";
  /** Offset of the container's "{" or "[". */
  start: number;
  /** The key this container is the value of; array elements carry their array's key. */
  key: string | undefined;
  /** The class array elements and wrapper keys take over. */
  fieldClass: FieldClass;
  /** The patient of the values inside: the object's own, an ancestor's, or the folder's. */
  patient: Patient | undefined;
}

/** The position of a scalar: its class, and the object whose own Patient ID it would be. */
interface Place {
  fieldClass: FieldClass;
  /** Index in the frame stack of the object that owns a Patient ID found here; undefined inside a plain array. */
  owner: number | undefined;
}

/**
 * Follows containers and keys during a scan and works out the class of
 * each value: by its key, else by its parent's key and its key together
 * ("patient": {"id": ...} is a patient ID), else, for wrapper keys, by the
 * class of the field around it.
 */
abstract class FieldWalker implements JsonVisitor {
  protected readonly frames: Frame[] = [];
  protected pendingKey: JsonScalar | undefined;

  constructor(protected readonly fallbackPatient: Patient | undefined) {}

  protected classOfKey(key: string, parent: Frame): FieldClass {
    let fieldClass = classifyField(key);
    if (fieldClass === "none" && parent.key !== undefined) fieldClass = classifyField(`${parent.key} ${key}`);
    if (fieldClass === "none" && WRAPPER_KEYS.has(key)) fieldClass = parent.fieldClass;
    return fieldClass;
  }

  /** The key and class of the value that comes next. */
  private nextValue(): { key: string | undefined; fieldClass: FieldClass } {
    const parent = this.frames[this.frames.length - 1];
    if (!parent) return { key: undefined, fieldClass: "none" };
    if (parent.kind === "array") return { key: parent.key, fieldClass: parent.fieldClass };
    const key = this.pendingKey?.value ?? "";
    return { key, fieldClass: this.classOfKey(key, parent) };
  }

  /**
   * Finds the object whose record a Patient ID at the top of the stack
   * belongs to, as an index into the frame stack. Objects that only wrap a field (a DICOM JSON tag object, the value
   * of a "patient" key) pass it to the object around them, but never
   * across an array. Inside a plain array each ID is its own patient.
   */
  protected owner(): number | undefined {
    let index = this.frames.length - 1;
    if (index < 0) return undefined;
    if (this.frames[index].kind === "array") {
      if (!WRAPPER_KEYS.has(this.frames[index].key ?? "")) return undefined;
      index--;
    }
    if (index < 0 || this.frames[index].kind !== "object") return undefined;
    while (index > 0 && this.isWrapperObject(this.frames[index]) && this.frames[index - 1].kind === "object") index--;
    return index;
  }

  private isWrapperObject(frame: Frame): boolean {
    const key = frame.key;
    if (key === undefined) return false;
    return TAG_KEY.test(key) || WRAPPER_KEYS.has(key) || frame.fieldClass === "patient-id";
  }

  enter(kind: "object" | "array", start: number): void {
    const parent = this.frames[this.frames.length - 1];
    const next = this.nextValue();
    const frame: Frame = { kind, start, key: next.key, fieldClass: next.fieldClass, patient: parent?.patient ?? this.fallbackPatient };
    if (kind === "object") frame.patient = this.patientOfObject(start) ?? frame.patient;
    this.frames.push(frame);
    this.pendingKey = undefined;
  }

  leave(): void {
    this.frames.pop();
  }

  key(token: JsonScalar): void {
    this.pendingKey = token;
    this.onKey(token);
  }

  scalar(token: JsonScalar): void {
    const { fieldClass } = this.nextValue();
    this.onScalar(token, { fieldClass, owner: fieldClass === "patient-id" ? this.owner() : undefined });
    this.pendingKey = undefined;
  }

  /** The patient of the object starting at `start` when it has a Patient ID of its own. */
  protected abstract patientOfObject(start: number): Patient | undefined;
  protected abstract onKey(token: JsonScalar): void;
  protected abstract onScalar(token: JsonScalar, place: Place): void;

  protected get patient(): Patient | undefined {
    return this.frames[this.frames.length - 1]?.patient ?? this.fallbackPatient;
  }
}

/** First scan: finds the Patient ID of each object that has one (the first, when it has several). */
class OwnerFinder extends FieldWalker {
  readonly ownIds = new Map<number, string>();

  protected patientOfObject(): undefined {
    return undefined;
  }

  protected onKey(): void {}

  protected onScalar(token: JsonScalar, place: Place): void {
    if (place.fieldClass !== "patient-id" || place.owner === undefined || token.kind === "literal") return;
    if (isEmptyValue(token.value)) return;
    const start = this.frames[place.owner].start;
    if (!this.ownIds.has(start)) this.ownIds.set(start, token.value.trim());
  }
}

function findOwnIds(text: string): Map<number, string> {
  const finder = new OwnerFinder(undefined);
  scanJson(text, finder, MAX_JSON_DEPTH);
  return finder.ownIds;
}

class Learner extends FieldWalker {
  private readonly learner: FieldLearner;

  constructor(
    private readonly ownIds: Map<number, string>,
    context: LearnContext,
  ) {
    super(undefined);
    this.learner = new FieldLearner(context.registry);
  }

  protected patientOfObject(start: number): Patient | undefined {
    const id = this.ownIds.get(start);
    return id === undefined ? undefined : this.learner.patientOfId(id);
  }

  protected onKey(): void {}

  protected onScalar(token: JsonScalar, place: Place): void {
    if (token.kind === "literal" || place.fieldClass === "none" || place.fieldClass === "age") return;
    // Inside a plain array each Patient ID is a patient of its own.
    const patient = place.fieldClass === "patient-id" && place.owner === undefined ? undefined : this.patient;
    this.learner.learn(place.fieldClass, token.value, patient);
  }
}

/** Writes a string as a JSON token; when the original token was pure ASCII (Python's ensure_ascii), so is the new one. */
function stringToken(value: string, asciiOnly: boolean): string {
  const token = JSON.stringify(value);
  if (!asciiOnly) return token;
  return token.replace(/[\u007f-\uffff]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

const PLAIN_NUMBER = /^-?\d+(?:\.\d+)?$/;

class Rewriter extends FieldWalker {
  replacements = 0;
  private cursor = 0;
  private pieces: string[] = [];
  private pending = 0;
  private readonly context: FieldRewriteContext;

  constructor(
    private readonly text: string,
    private readonly ownIds: Map<number, string>,
    writeContext: WriteContext,
    private readonly fd: number,
  ) {
    super(writeContext.patient);
    this.context = { cleaner: cachingCleaner(writeContext.cleaner), shiftDates: writeContext.shiftDates, patientFor: writeContext.patientFor };
  }

  protected patientOfObject(start: number): Patient | undefined {
    const id = this.ownIds.get(start);
    return id === undefined ? undefined : patientForId(this.context, id);
  }

  /** Returns the patient of a patient-id value: its object's patient for the object's IDs, its own inside an array. */
  private patientOfIdValue(value: string, place: Place): Patient {
    if (place.owner === undefined) return patientForId(this.context, value);
    const ownerFrame = this.frames[place.owner];
    return this.ownIds.has(ownerFrame.start) && ownerFrame.patient ? ownerFrame.patient : patientForId(this.context, value);
  }

  private replace(token: JsonScalar, replacement: string): void {
    this.pieces.push(this.text.slice(this.cursor, token.start), replacement);
    this.pending += token.start - this.cursor + replacement.length;
    this.cursor = token.end;
    if (this.pending >= FLUSH_CHARACTERS) this.flush();
  }

  flush(final = false): void {
    if (final) this.pieces.push(this.text.slice(this.cursor));
    if (final) this.cursor = this.text.length;
    const buffer = Buffer.from(this.pieces.join(""), "utf8");
    for (let offset = 0; offset < buffer.length; ) offset += writeSync(this.fd, buffer, offset);
    this.pieces = [];
    this.pending = 0;
  }

  private isAscii(token: JsonScalar): boolean {
    return !/[^\x00-\x7f]/.test(this.text.slice(token.start, token.end));
  }

  /** Keys are free text: cleaned, and shifted when a key is a date as a whole. */
  protected onKey(token: JsonScalar): void {
    const parent = this.frames[this.frames.length - 1];
    const result = rewriteFieldValue("none", token.value, parent?.patient, this.context);
    if (result.text === token.value) return;
    this.replacements += result.replaced;
    this.replace(token, stringToken(result.text, this.isAscii(token)));
  }

  protected onScalar(token: JsonScalar, place: Place): void {
    if (token.kind === "literal") return;
    const replacement = token.kind === "string" ? this.rewriteString(token, place) : this.rewriteNumber(token, place);
    if (replacement !== undefined) this.replace(token, replacement);
  }

  private rewriteString(token: JsonScalar, place: Place): string | undefined {
    if (place.fieldClass === "patient-id" && !isEmptyValue(token.value)) {
      this.replacements++;
      return stringToken(this.patientOfIdValue(token.value, place).pseudonymId, false);
    }
    const result = rewriteFieldValue(place.fieldClass, token.value, this.patient, this.context);
    if (result.text === token.value) return undefined;
    this.replacements += result.replaced;
    return stringToken(result.text, this.isAscii(token));
  }

  /** Numbers stay numbers where they can: shifted dates (20190315, Unix times) and capped ages; IDs become pseudonym strings. */
  private rewriteNumber(token: JsonScalar, place: Place): string | undefined {
    const raw = token.value;
    switch (place.fieldClass) {
      case "none":
        return undefined;
      case "patient-id":
        this.replacements++;
        return stringToken(this.patientOfIdValue(raw, place).pseudonymId, false);
      case "age": {
        const capped = capAgeText(raw);
        if (capped === raw) return undefined;
        this.replacements++;
        return capped;
      }
      case "date": {
        const patient = this.patient;
        const shifted = replaceDateValue(raw, this.context.shiftDates && patient ? patient.shiftDays : undefined);
        this.replacements++;
        return PLAIN_NUMBER.test(shifted.text) ? shifted.text : "null";
      }
      default:
        this.replacements++;
        return "null";
    }
  }
}

/** Reads a JSON file as text: at most MAX_JSON_BYTES, UTF-8 (RFC 8259 section 8.1), a byte order mark kept. */
function readJsonText(path: string): string {
  const fd = openRegularFile(path);
  let bytes: Buffer;
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_JSON_BYTES) {
      throw new LimitError(`the JSON file is larger than ${MAX_JSON_BYTES} bytes`, {
        hint: "split the file, or leave it out of the input",
      });
    }
    bytes = Buffer.alloc(size);
    let filled = 0;
    while (filled < size) {
      const count = readSync(fd, bytes, filled, size - filled, filled);
      if (count === 0) break;
      filled += count;
    }
    bytes = bytes.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new QuarantineReason("JSON_ENCODING", "the JSON file is not valid UTF-8; convert it to UTF-8 or leave it out of the input");
  }
}

/** Runs a scan, turning a syntax error into the file's quarantine reason. */
function scanOrQuarantine<T>(scan: () => T): T {
  try {
    return scan();
  } catch (error) {
    if (error instanceof JsonSyntaxError) {
      throw new QuarantineReason("JSON_INVALID", `the file is not valid JSON (${error.message}); repair it or leave it out of the input`);
    }
    throw error;
  }
}

export async function learnJson(path: string, context: LearnContext): Promise<void> {
  const text = readJsonText(path);
  scanOrQuarantine(() => {
    const ownIds = findOwnIds(text);
    scanJson(text, new Learner(ownIds, context), MAX_JSON_DEPTH);
  });
}

export async function writeJson(path: string, targetPath: string, context: WriteContext): Promise<FormatWriteResult> {
  const text = readJsonText(path);
  const ownIds = scanOrQuarantine(() => findOwnIds(text));
  const fd = openSync(targetPath, "wx", 0o644);
  try {
    const rewriter = new Rewriter(text, ownIds, context, fd);
    scanOrQuarantine(() => scanJson(text, rewriter, MAX_JSON_DEPTH));
    rewriter.flush(true);
    return { replacements: rewriter.replacements };
  } finally {
    closeSync(fd);
  }
}

export const jsonFormat: FormatHandler = {
  name: "json",
  matches: (relativePath) => /\.json$/i.test(relativePath),
  learn: learnJson,
  write: writeJson,
};
