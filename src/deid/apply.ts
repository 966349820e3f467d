/**
 * Applies the compiled profile to a data set, at every nesting level.
 *
 * Each element gets the action of its Table E.1-1 row (after options and
 * the resolution of combined codes). Elements the table does not list are
 * kept, with these exceptions. Unknown standard tags are removed, UIDs
 * outside the DICOM root are replaced and person names are emptied. Dates
 * are shifted, or replaced unless full dates are retained. Other text is
 * cleaned of known identifiers. Inside sequences whose action is D or C the
 * unlisted values get that action too.
 */
import { codecForSpecificCharacterSet, type CharsetCodec } from "../dicom/charset.js";
import { vrOf, type Element, type Item } from "../dicom/dataset.js";
import { lookupTag } from "../dicom/dictionary.js";
import { STRING_VRS } from "../dicom/vr.js";
import { isPrivateCreatorTag, isPrivateTag, TAG, tagElement, tagGroup } from "../dicom/tags.js";
import { ruleFor, safePrivateKey, type Action, type CompiledProfile } from "../profile/profile.js";
import type { TextCleaner } from "./cleaner.js";
import { capAge, shiftDa, shiftDt } from "./dates.js";
import type { Patient } from "./identifiers.js";
import { decodeText, loadStringValue, setEmpty, setText, splitValues } from "./values.js";

type Mode = "normal" | "clean" | "dummy";

/** Text VRs that may carry free text or names. */
const TEXT_VRS = new Set(["LO", "SH", "ST", "LT", "UT", "UC", "PN"]);

/** String VRs of codes and addresses, cleaned of known identifiers where the profile keeps them. */
const CODE_VRS = new Set(["CS", "AE", "UR"]);

const BINARY_VRS = new Set(["OB", "OW", "OF", "OD", "OL", "OV", "UN"]);

/**
 * True when a standard attribute whose dictionary VR is text or a sequence
 * arrives with a binary VR (say Content Sequence written as OB): its bytes
 * cannot be read as what they are, so they cannot be de-identified.
 */
function hasForeignBinaryVr(element: Element): boolean {
  if (!BINARY_VRS.has(vrOf(element)) || element.fragments || element.items) return false;
  const expected = lookupTag(element.tag)?.vr;
  return expected !== undefined && (expected === "SQ" || STRING_VRS.has(expected));
}
const DATE_VRS = new Set(["DA", "DT", "TM"]);
/**
 * Binary VRs whose content deidkit cannot search for identifiers. Overlay
 * Data may be a bitmap of burned-in text and Maker Note a vendor blob, so
 * a C on a standard attribute of these VRs removes it instead.
 */
const UNCLEANABLE_VRS = new Set(["OB", "OW", "OF", "OD", "OL", "OV", "UN"]);

/** UI attributes outside Table E.1-1 whose values name standard or vendor classes, not instances. */
const NON_INSTANCE_UID_KEYWORDS = new Set([
  "TransferSyntaxUID",
  "CodingSchemeUID",
  "MappingResourceUID",
  "ContextGroupExtensionCreatorUID",
  "PrivateInformationCreatorUID",
  "ImplementationClassUID",
]);

const DUMMY_TEXT = "ANONYMIZED";
const DUMMY_BY_VR: Readonly<Record<string, string>> = {
  PN: "ANONYMOUS",
  DA: "19000101",
  DT: "19000101000000",
  TM: "000000",
  AS: "000Y",
  DS: "0",
  IS: "0",
  UR: "urn:deidkit:removed",
};

/** Thrown for a data set that deidkit cannot de-identify with confidence. */
export class QuarantineReason extends Error {
  constructor(
    readonly reasonCode: string,
    message: string,
  ) {
    super(message);
    this.name = "QuarantineReason";
  }
}

export interface ActionCounts {
  removed: number;
  emptied: number;
  dummied: number;
  kept: number;
  cleaned: number;
  uidsReplaced: number;
  datesShifted: number;
  privateRemoved: number;
  privateKept: number;
  unknownRemoved: number;
  textReplacements: number;
}

export function emptyCounts(): ActionCounts {
  return {
    removed: 0, emptied: 0, dummied: 0, kept: 0, cleaned: 0, uidsReplaced: 0, datesShifted: 0,
    privateRemoved: 0, privateKept: 0, unknownRemoved: 0, textReplacements: 0,
  };
}

export interface ApplyContext {
  profile: CompiledProfile;
  cleaner: TextCleaner;
  patient: Patient;
  /** Dates are shifted (Retain Longitudinal Temporal Information with Modified Dates). */
  shiftDates: boolean;
  mapUid(uid: string): string;
  counts: ActionCounts;
}

function isUidKept(keyword: string | undefined, value: string): boolean {
  if (value.length === 0 || value.startsWith("1.2.840.10008.")) return true;
  if (!keyword) return false;
  return keyword.endsWith("ClassUID") || NON_INSTANCE_UID_KEYWORDS.has(keyword);
}

class ItemProcessor {
  constructor(
    private readonly context: ApplyContext,
    private readonly codec: CharsetCodec,
  ) {}

  private text(element: Element): string[] {
    if (!element.bytes) return [];
    return splitValues(decodeText(element.bytes, vrOf(element), this.codec), vrOf(element));
  }

  private replaceUids(element: Element): void {
    if (!element.bytes) return;
    const values = this.text(element).map((value) => (value.length ? this.context.mapUid(value) : value));
    setText(element, values, this.codec);
    this.context.counts.uidsReplaced += values.filter((value) => value.length).length;
  }

  private cleanText(element: Element): void {
    if (!element.bytes || element.bytes.length === 0) return;
    let changed = false;
    const values = this.text(element).map((value) => {
      const result = this.context.cleaner.clean(value);
      for (const count of Object.values(result.replaced)) this.context.counts.textReplacements += count ?? 0;
      if (result.text !== value) changed = true;
      return result.text;
    });
    if (changed) setText(element, values, this.codec);
  }

  /** Shifts DA and DT values by the patient's shift; values that are not valid dates are emptied. */
  private shiftDates(element: Element): void {
    if (vrOf(element) === "TM" || !element.bytes) return;
    const shift = vrOf(element) === "DA" ? shiftDa : shiftDt;
    const values = this.text(element).map((value) => (value.length ? shift(value.trim(), this.context.patient.shiftDays) ?? "" : ""));
    setText(element, values, this.codec);
    this.context.counts.datesShifted += values.length;
  }

  private dummy(element: Element): void {
    const { patient } = this.context;
    if (element.tag === TAG.PatientID) return setText(element, [patient.pseudonymId], this.codec);
    if (element.tag === TAG.PatientName) return setText(element, [patient.pseudonymName], this.codec);
    if (element.items) {
      for (const item of element.items) this.processItem(item, "dummy");
      return;
    }
    const length = element.bulk?.length ?? element.bytes?.length ?? 0;
    if (length === 0 && !element.fragments) return;
    if (vrOf(element) === "UI") return this.replaceUids(element);
    const dummy = DUMMY_BY_VR[vrOf(element)] ?? (TEXT_VRS.has(vrOf(element)) || ["CS", "AE"].includes(vrOf(element)) ? DUMMY_TEXT : undefined);
    if (dummy !== undefined) return setText(element, [dummy], this.codec);
    // Binary VRs: a zero value of the element's unit size (2 bytes keeps OW and US valid, 8 keeps FD valid).
    const size = ({ FD: 8, SV: 8, UV: 8, OD: 8, FL: 4, UL: 4, SL: 4, AT: 4, OF: 4, OL: 4 } as Record<string, number>)[vrOf(element)] ?? 2;
    element.bytes = Buffer.alloc(size);
    element.bulk = undefined;
    element.fragments = undefined;
    element.undefinedLength = false;
  }

  private clean(element: Element): void {
    if (element.items) {
      for (const item of element.items) this.processItem(item, "clean");
    } else if (vrOf(element) === "DA" || vrOf(element) === "DT") {
      if (this.context.shiftDates) this.shiftDates(element);
      else this.dummy(element);
    } else if (vrOf(element) === "AS") {
      setText(element, this.text(element).map(capAge), this.codec);
    } else if (vrOf(element) === "UI") {
      if (this.text(element).some((value) => !isUidKept(undefined, value))) this.replaceUids(element);
    } else if (TEXT_VRS.has(vrOf(element))) {
      this.cleanText(element);
    }
  }

  /** Carries out one resolved action; returns false when the element is removed. */
  private apply(element: Element, action: Action): boolean {
    const counts = this.context.counts;
    switch (action) {
      case "X":
        counts.removed++;
        return false;
      case "Z":
        counts.emptied++;
        if (element.tag === TAG.PatientName) setText(element, [this.context.patient.pseudonymName], this.codec);
        else setEmpty(element);
        return true;
      case "D":
        counts.dummied++;
        this.dummy(element);
        return true;
      case "K":
        counts.kept++;
        if (element.items) for (const item of element.items) this.processItem(item, "normal");
        else if (element.tag === TAG.PatientAge) setText(element, this.text(element).map(capAge), this.codec);
        return true;
      case "C":
        if (!element.items && UNCLEANABLE_VRS.has(vrOf(element))) {
          counts.removed++;
          return false;
        }
        counts.cleaned++;
        this.clean(element);
        return true;
      case "U":
        if (element.items) for (const item of element.items) this.processItem(item, "normal");
        else if (vrOf(element) === "UI") this.replaceUids(element);
        return true;
    }
  }

  /** Elements Table E.1-1 does not list. */
  private applyUnlisted(element: Element, mode: Mode): boolean {
    const entry = lookupTag(element.tag);
    if (!entry) {
      this.context.counts.unknownRemoved++;
      return false;
    }
    if (element.items) {
      for (const item of element.items) this.processItem(item, mode);
      return true;
    }
    if (mode === "dummy" && (TEXT_VRS.has(vrOf(element)) || DATE_VRS.has(vrOf(element)))) {
      this.dummy(element);
      return true;
    }
    if (vrOf(element) === "UI") {
      const retainUids = this.context.profile.options.has("retain-uids");
      if (!retainUids && this.text(element).some((value) => !isUidKept(entry.keyword, value))) this.replaceUids(element);
      return true;
    }
    if (vrOf(element) === "DA" || vrOf(element) === "DT") {
      // Without a Retain Longitudinal option no real date may stay, listed or not.
      const keepDates = this.context.profile.options.has("retain-longitudinal-full-dates");
      if (this.context.shiftDates) this.shiftDates(element);
      else if (mode === "clean" || !keepDates) this.dummy(element);
      return true;
    }
    if (vrOf(element) === "PN") {
      setEmpty(element);
      return true;
    }
    if (TEXT_VRS.has(vrOf(element))) this.cleanText(element);
    else if (CODE_VRS.has(vrOf(element))) this.cleanCode(element);
    return true;
  }

  /**
   * Cleans CS, AE and UR values of patient identifiers too: a patient's
   * name or ID can be typed into Image Type or a URL. Matches of staff names
   * alone are ignored here, because a staff name such as "Text" would break
   * enumerated values like Value Type TEXT. A cleaned CS value is put back
   * into the CS repertoire (upper case, digits, space, underscore).
   */
  private cleanCode(element: Element): void {
    if (!element.bytes || element.bytes.length === 0) return;
    const vr = vrOf(element);
    let changed = false;
    const values = this.text(element).map((value) => {
      const result = this.context.cleaner.clean(value);
      const categories = Object.keys(result.replaced);
      if (result.text === value || categories.every((category) => category === "staff-name")) return value;
      changed = true;
      this.context.counts.textReplacements++;
      return vr === "CS" ? result.text.toUpperCase().replace(/[^A-Z0-9 _]/g, "_") : result.text;
    });
    if (changed) setText(element, values, this.codec);
  }

  /** Private data elements: kept only when safe (PS3.15 Table E.3.10-1) and the option is selected. */
  private applyPrivate(element: Element, creators: ReadonlyMap<number, string>): boolean {
    const rule = this.context.profile.privateRule;
    const block = (tagGroup(element.tag) << 8) | (tagElement(element.tag) >>> 8);
    const creator = creators.get(block);
    const key = creator === undefined ? undefined : safePrivateKey(tagGroup(element.tag), tagElement(element.tag) & 0xff, creator);
    const safe = key === undefined ? undefined : this.context.profile.safePrivate.get(key);
    // A safe private sequence read as opaque UN bytes (implicit VR, defined length) cannot be checked inside.
    const opaqueSequence = safe?.vr === "SQ" && !element.items;
    if (rule.action !== "X" && safe && !opaqueSequence) {
      // Implicit VR files store private values as UN; the safe list gives their real VR.
      if (element.vr === "UN" && safe.vr && safe.vr.length === 2) element.valueVr = safe.vr;
      loadStringValue(element);
      this.context.counts.privateKept++;
      this.clean(element);
      return true;
    }
    this.context.counts.privateRemoved++;
    return false;
  }

  processItem(item: Item, mode: Mode): void {
    const specificCharacterSet = item.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
    if (specificCharacterSet?.bytes && this.codec !== undefined) {
      const nested = codecForSpecificCharacterSet(specificCharacterSet.bytes.toString("latin1"));
      if (nested.terms.join("\\") !== this.codec.terms.join("\\")) {
        new ItemProcessor(this.context, nested).processElements(item, mode);
        return;
      }
    }
    this.processElements(item, mode);
  }

  processElements(item: Item, mode: Mode): void {
    const creators = new Map<number, string>();
    for (const element of item.elements) {
      if (isPrivateCreatorTag(element.tag) && element.bytes) {
        creators.set((tagGroup(element.tag) << 8) | tagElement(element.tag), element.bytes.toString("latin1").replace(/[\0 ]+$/, "").trim());
      }
    }
    const kept: Element[] = [];
    const usedBlocks = new Set<number>();
    for (const element of item.elements) {
      const tag = element.tag;
      if (tagElement(tag) === 0 && tagGroup(tag) !== 0x0002) continue; // group lengths would be stale
      if (isPrivateTag(tag)) {
        if (isPrivateCreatorTag(tag)) {
          kept.push(element);
        } else if (this.applyPrivate(element, creators)) {
          usedBlocks.add((tagGroup(tag) << 8) | (tagElement(tag) >>> 8));
          kept.push(element);
        }
        continue;
      }
      if (hasForeignBinaryVr(element)) {
        this.context.counts.removed++;
        continue;
      }
      loadStringValue(element);
      const rule = ruleFor(this.context.profile, tag);
      if (rule?.code === "X/Z" && element.items && element.items.length > 0) {
        // A sequence with items stays, its content replaced by dummies: emptying it breaks modules that
        // require 1-n items when present (Type 3), and removing it breaks Type 2 uses.
        this.context.counts.dummied++;
        for (const item of element.items) this.processItem(item, "dummy");
        kept.push(element);
        continue;
      }
      const keep = rule ? this.apply(element, rule.action) : this.applyUnlisted(element, mode);
      if (keep) kept.push(element);
    }
    // A Private Creator stays only while a retained element uses its block.
    item.elements = kept.filter(
      (element) => !isPrivateCreatorTag(element.tag) || usedBlocks.has((tagGroup(element.tag) << 8) | tagElement(element.tag)),
    );
  }
}

/** De-identifies a top-level data set in place. */
export function applyProfile(dataset: Item, context: ApplyContext): void {
  const specificCharacterSet = dataset.elements.find((element) => element.tag === TAG.SpecificCharacterSet);
  const codec = codecForSpecificCharacterSet(specificCharacterSet?.bytes?.toString("latin1"));
  new ItemProcessor(context, codec).processItem(dataset, "normal");
}
