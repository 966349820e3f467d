/**
 * Checks a DICOM output can pass without the key: what the recorded profile
 * removes is absent, private elements are on the safe list, names are
 * pseudonyms, no real date survives where dates were removed, and no pixel
 * data is flagged as showing text. Free text that looks like a date, a long
 * number or a "Family, Given" name is reported as a warning.
 */
import { closeSync, readSync } from "node:fs";

import { codecForSpecificCharacterSet, type CharsetCodec } from "../dicom/charset.js";
import { vrOf, type Item } from "../dicom/dataset.js";
import { keywordOf } from "../dicom/dictionary.js";
import { openDicom } from "../dicom/file-io.js";
import { looksLikeDicom } from "../dicom/reader.js";
import { openRegularFile } from "../dicom/source.js";
import { formatTag, isPrivateCreatorTag, isPrivateTag, TAG, tagElement, tagGroup } from "../dicom/tags.js";
import { decodeText, splitValues } from "../deid/values.js";
import { compileProfile, OPTION_NAMES, ruleFor, safePrivateKey, type CompiledProfile, type OptionName } from "../profile/profile.js";
import type { Finding } from "./verify.js";

type RuleFinding = Omit<Finding, "file">;

/** Values deidkit writes into person names: pseudonyms, the D dummy, and placeholders. */
const PSEUDONYM_NAME = /^(PAT-[0-9A-Z]{10}|ANONYMOUS|\[NAME\])$/;
const FREE_TEXT_VRS = new Set(["LO", "LT", "ST", "UT", "SH", "UC"]);
const DATE_LIKE = /(?<!\d)(19|20)\d\d[-/.]?(0[1-9]|1[0-2])[-/.]?(0[1-9]|[12]\d|3[01])(?!\d)|(?<!\d)(0?[1-9]|[12]\d|3[01])[./](0?[1-9]|1[0-2])[./](19|20)\d\d(?!\d)/;
const LONG_NUMBER = /(?<![\d.])\d{7,}(?![\d.])/;
const NAME_LIKE = /\b[A-Z][a-z]{2,}, [A-Z][a-z]{2,}\b/;
const DUMMY_DATES = new Set(["19000101", "19000101000000"]);

function text(bytes: Buffer | undefined, vr: string, codec: CharsetCodec): string {
  return bytes ? decodeText(bytes, vr, codec) : "";
}

/** Reads the options deidkit recorded in De-identification Method (0012,0063). */
function recordedOptions(dataset: Item, codec: CharsetCodec): OptionName[] | undefined {
  const method = dataset.elements.find((element) => element.tag === TAG.DeidentificationMethod);
  if (!method?.bytes) return undefined;
  const values = splitValues(text(method.bytes, "LO", codec), "LO");
  return OPTION_NAMES.filter((option) => values.includes(option));
}

class RuleChecker {
  readonly findings: RuleFinding[] = [];

  constructor(
    private readonly profile: CompiledProfile,
    private readonly datesRemoved: boolean,
  ) {}

  private add(place: string, category: string, severity: Finding["severity"], message: string): void {
    this.findings.push({ place, category, severity, message });
  }

  checkItem(item: Item, codec: CharsetCodec, prefix: string): void {
    const specific = item.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
    const itemCodec = specific?.bytes ? codecForSpecificCharacterSet(specific.bytes.toString("latin1")) : codec;
    const creators = new Map<number, string>();
    for (const element of item.elements) {
      if (isPrivateCreatorTag(element.tag) && element.bytes) {
        creators.set((tagGroup(element.tag) << 8) | tagElement(element.tag), element.bytes.toString("latin1").replace(/[\0 ]+$/, "").trim());
      }
    }
    for (const element of item.elements) {
      const place = `${prefix}${formatTag(element.tag)}`;
      if (isPrivateTag(element.tag)) {
        if (!isPrivateCreatorTag(element.tag)) this.checkPrivate(element.tag, creators, place);
      } else if (ruleFor(this.profile, element.tag)?.action === "X" && tagGroup(element.tag) !== 0x0002) {
        this.add(place, "attribute-not-removed", "error", `${keywordOf(element.tag)} is removed by the recorded profile but present`);
      }
      if (element.items) {
        element.items.forEach((child, index) => this.checkItem(child, itemCodec, `${place}[${index}]/`));
        continue;
      }
      this.checkValue(vrOf(element), text(element.bytes, vrOf(element), itemCodec), place);
    }
  }

  private checkPrivate(tag: number, creators: ReadonlyMap<number, string>, place: string): void {
    const creator = creators.get((tagGroup(tag) << 8) | (tagElement(tag) >>> 8));
    const safe = creator !== undefined && this.profile.safePrivate.has(safePrivateKey(tagGroup(tag), tagElement(tag) & 0xff, creator));
    if (!safe || this.profile.privateRule.action === "X") {
      this.add(place, "private-not-safe", "error", "private element that is not on the safe private list");
    }
  }

  private checkValue(vr: string, value: string, place: string): void {
    if (value.length === 0) return;
    if (vr === "PN") {
      for (const name of splitValues(value, "PN")) {
        if (name && !PSEUDONYM_NAME.test(name)) this.add(place, "name-not-pseudonym", "warning", "person name that is not a deidkit pseudonym");
      }
    } else if ((vr === "DA" || vr === "DT") && this.datesRemoved && !DUMMY_DATES.has(value.trim())) {
      this.add(place, "date-not-removed", "error", "a date survives although dates were removed");
    } else if (FREE_TEXT_VRS.has(vr)) {
      if (DATE_LIKE.test(value)) this.add(place, "date-like-text", "warning", "free text contains something that looks like a date");
      if (LONG_NUMBER.test(value)) this.add(place, "long-number-text", "warning", "free text contains a number of 7 or more digits");
      if (NAME_LIKE.test(value)) this.add(place, "name-like-text", "warning", 'free text contains something that looks like "Family, Given"');
    }
  }
}

/** Returns the rule findings for one file; files that are not DICOM have none. */
export async function checkDicomRules(path: string): Promise<RuleFinding[]> {
  const fd = openRegularFile(path);
  const head = Buffer.alloc(256);
  const count = readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  if (!looksLikeDicom(head.subarray(0, count))) return [];
  let opened;
  try {
    opened = await openDicom(path);
  } catch {
    return [{ place: "file", category: "dicom-unreadable", severity: "error", message: "DICOM file that cannot be parsed" }];
  }
  try {
    const dataset = opened.dataset;
    const specific = dataset.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
    const codec = codecForSpecificCharacterSet(specific?.bytes?.toString("latin1"));
    const options = recordedOptions(dataset, codec);
    const findings: RuleFinding[] = [];
    const removed = dataset.elements.find((element) => element.tag === TAG.PatientIdentityRemoved);
    if (options === undefined || text(removed?.bytes, "CS", codec).toUpperCase() !== "YES") {
      findings.push({ place: "(0012,0062)", category: "not-marked-deidentified", severity: "error", message: "no deidkit de-identification record (Patient Identity Removed, De-identification Method)" });
    }
    const longitudinal = dataset.elements.find((element) => element.tag === TAG.LongitudinalTemporalInformationModified);
    const checker = new RuleChecker(compileProfile(options ?? []), text(longitudinal?.bytes, "CS", codec) === "REMOVED");
    checker.checkItem(dataset, codec, "");
    const burnedIn = dataset.elements.find((element) => element.tag === 0x00280301);
    if (text(burnedIn?.bytes, "CS", codec).toUpperCase() === "YES") {
      findings.push({ place: "(0028,0301)", category: "burned-in-annotation", severity: "error", message: "pixel data is flagged as showing burned-in text" });
    }
    return [...findings, ...checker.findings];
  } finally {
    opened.close();
  }
}
