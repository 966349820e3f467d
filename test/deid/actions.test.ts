// applyProfile on hand-built data sets: every action code, at the top level
// and inside nested sequences, with the same result at every depth.

import { beforeAll, describe, expect, test } from "vitest";

import { codecForSpecificCharacterSet } from "../../src/dicom/charset.js";
import type { Element, Item } from "../../src/dicom/dataset.js";
import { lookupTag } from "../../src/dicom/dictionary.js";
import { makeTag } from "../../src/dicom/tags.js";
import { applyProfile, emptyCounts, type ActionCounts } from "../../src/deid/apply.js";
import { TextCleaner, uidMapper } from "../../src/deid/cleaner.js";
import { collectIdentifiers } from "../../src/deid/collect.js";
import { IdentifierRegistry, type Patient } from "../../src/deid/identifiers.js";
import { encodeText } from "../../src/deid/values.js";
import { compileProfile, selectOptions, type OptionName } from "../../src/profile/profile.js";
import { deriveDateShift, derivePatientId, deriveUid } from "../../src/pseudonym/derive.js";
import { initSodium } from "../../src/pseudonym/keyed-hash.js";
import { TEST_SECRET } from "../helpers/tree.js";

const SYNTAX = { littleEndian: true, explicitVr: true };
const CODEC = codecForSpecificCharacterSet(undefined);

const PATIENT_ID = "12345678";
const PATIENT_NAME = "DOE^JANE";
const BIRTH_DATE = "19470316";
const RESEARCH = selectOptions("research", []);

/** Unlisted sequences (not in Table E.1-1) used to nest probes: ReferencedSeriesSequence, ROIContourSequence, ContourSequence. */
const WRAPPERS = [makeTag(0x0008, 0x1115), makeTag(0x3006, 0x0039), makeTag(0x3006, 0x0040)];

function text(tag: number, vr: string, ...values: string[]): Element {
  return { tag, vr, undefinedLength: false, bytes: encodeText(values, vr, CODEC) };
}

function item(elements: Element[]): Item {
  return { elements: [...elements].sort((a, b) => a.tag - b.tag), undefinedLength: true, syntax: SYNTAX };
}

function sequence(tag: number, ...items: Element[][]): Element {
  return { tag, vr: "SQ", undefinedLength: true, items: items.map(item) };
}

/** Wraps elements in `depth` levels of unlisted sequences. */
function nest(elements: Element[], depth: number): Element[] {
  let current = elements;
  for (let level = depth - 1; level >= 0; level--) current = [sequence(WRAPPERS[level], current)];
  return current;
}

/** Returns the item at `depth` inside the wrappers built by `nest`. */
function levelOf(dataset: Item, depth: number): Item {
  let current = dataset;
  for (let level = 0; level < depth; level++) {
    const wrapper = current.elements.find((element) => element.tag === WRAPPERS[level]);
    expect(wrapper?.items, `wrapper at depth ${level}`).toHaveLength(1);
    current = wrapper!.items![0];
  }
  return current;
}

function find(target: Item, tag: number): Element | undefined {
  return target.elements.find((element) => element.tag === tag);
}

function valueOf(element: Element | undefined): string | undefined {
  if (!element) return undefined;
  return (element.bytes ?? Buffer.alloc(0)).toString("latin1").replace(/[\0 ]+$/, "");
}

/** Returns the identifying top level that every data set has: patient ID, name and birth date. */
function patientElements(): Element[] {
  return [
    text(makeTag(0x0010, 0x0010), "PN", PATIENT_NAME),
    text(makeTag(0x0010, 0x0020), "LO", PATIENT_ID),
    text(makeTag(0x0010, 0x0030), "DA", BIRTH_DATE),
  ];
}

interface Run {
  dataset: Item;
  patient: Patient;
  counts: ActionCounts;
}

/** Runs both passes on one data set, as anonymize does for a file. */
function deidentify(elements: Element[], options: readonly OptionName[]): Run {
  const dataset = item(elements);
  const profile = compileProfile(options);
  const shiftDates = profile.options.has("retain-longitudinal-modified-dates");
  const registry = new IdentifierRegistry(TEST_SECRET, { shiftDates });
  const patient = collectIdentifiers(dataset, registry, profile.options);
  const mapUid = uidMapper(TEST_SECRET);
  const cleaner = new TextCleaner(registry.allTerms(), mapUid);
  const counts = emptyCounts();
  applyProfile(dataset, { profile, cleaner, patient, shiftDates, mapUid, counts });
  return { dataset, patient, counts };
}

/** Runs a probe at `depth`, keeping the patient elements at the top level. */
function deidentifyAt(probe: Element[], depth: number, options: readonly OptionName[]): { run: Run; level: Item } {
  const probeTags = new Set(probe.map((element) => element.tag));
  const top = depth === 0 ? patientElements().filter((element) => !probeTags.has(element.tag)) : patientElements();
  const run = deidentify([...top, ...nest(probe, depth)], options);
  return { run, level: levelOf(run.dataset, depth) };
}

/** Adds whole days to a DA value with Date arithmetic, independent of src/deid/dates.ts. */
function addDays(da: string, days: number): string {
  const time = Date.UTC(Number(da.slice(0, 4)), Number(da.slice(4, 6)) - 1, Number(da.slice(6, 8))) + days * 86_400_000;
  return new Date(time).toISOString().slice(0, 10).replace(/-/g, "");
}

function daysBetween(first: string, second: string): number {
  const toTime = (da: string): number => Date.UTC(Number(da.slice(0, 4)), Number(da.slice(4, 6)) - 1, Number(da.slice(6, 8)));
  return (toTime(second) - toTime(first)) / 86_400_000;
}

const DEPTHS = [0, 1, 2, 3];

beforeAll(async () => {
  await initSodium();
});

interface Probe {
  name: string;
  options: readonly OptionName[];
  tag: number;
  vr: string;
  value: string;
  /** The exact value expected after de-identification, or undefined when the element must be removed. */
  expected: () => string | undefined;
}

const pseudonym = (): string => derivePatientId(TEST_SECRET, PATIENT_ID);
const shift = (): number => deriveDateShift(TEST_SECRET, PATIENT_ID);
const INSTANCE_UID = "1.2.826.0.1.3680043.10.1234.1.1.3.1";

const PROBES: Probe[] = [
  { name: "X removes Patient Address", options: [], tag: makeTag(0x0010, 0x1040), vr: "LO", value: "12 Elm Street", expected: () => undefined },
  { name: "X removes Series Description", options: [], tag: makeTag(0x0008, 0x103e), vr: "LO", value: "Planning CT", expected: () => undefined },
  { name: "Z empties Accession Number", options: [], tag: makeTag(0x0008, 0x0050), vr: "SH", value: "A19-004512", expected: () => "" },
  { name: "Z writes the pseudonym as Patient Name", options: [], tag: makeTag(0x0010, 0x0010), vr: "PN", value: PATIENT_NAME, expected: pseudonym },
  { name: "D writes a dummy person name", options: [], tag: makeTag(0x0040, 0xa075), vr: "PN", value: "SMITH^JOHN", expected: () => "ANONYMOUS" },
  { name: "D replaces a UID", options: [], tag: makeTag(0x006a, 0x0003), vr: "UI", value: INSTANCE_UID, expected: () => deriveUid(TEST_SECRET, INSTANCE_UID) },
  { name: "U replaces SOP Instance UID", options: [], tag: makeTag(0x0008, 0x0018), vr: "UI", value: INSTANCE_UID, expected: () => deriveUid(TEST_SECRET, INSTANCE_UID) },
  { name: "U replaces Referenced SOP Instance UID", options: [], tag: makeTag(0x0008, 0x1155), vr: "UI", value: INSTANCE_UID, expected: () => deriveUid(TEST_SECRET, INSTANCE_UID) },
  { name: "Z/D writes a dummy Content Date", options: [], tag: makeTag(0x0008, 0x0023), vr: "DA", value: "20190412", expected: () => "19000101" },
  { name: "Z/D writes the pseudonym as Patient ID", options: [], tag: makeTag(0x0010, 0x0020), vr: "LO", value: PATIENT_ID, expected: pseudonym },
  { name: "X/Z empties Acquisition Date", options: [], tag: makeTag(0x0008, 0x0022), vr: "DA", value: "20190412", expected: () => "" },
  { name: "X/D writes dummy device processing text", options: [], tag: makeTag(0x0018, 0x1400), vr: "LO", value: "Doe protocol", expected: () => "ANONYMIZED" },
  { name: "X/Z/D writes a dummy Institution Name", options: [], tag: makeTag(0x0008, 0x0080), vr: "LO", value: "Riverside Cancer Centre", expected: () => "ANONYMIZED" },
  { name: "X/Z/D writes a dummy Acquisition DateTime", options: [], tag: makeTag(0x0008, 0x002a), vr: "DT", value: "20190412091510", expected: () => "19000101000000" },
  { name: "K keeps Patient Sex", options: ["retain-patient-characteristics"], tag: makeTag(0x0010, 0x0040), vr: "CS", value: "F", expected: () => "F" },
  { name: "K keeps Station Name", options: ["retain-device-identity"], tag: makeTag(0x0008, 0x1010), vr: "SH", value: "RCC-CT01", expected: () => "RCC-CT01" },
  { name: "K keeps UIDs under retain-uids", options: ["retain-uids"], tag: makeTag(0x0008, 0x0018), vr: "UI", value: INSTANCE_UID, expected: () => INSTANCE_UID },
  { name: "K caps Patient Age over 89", options: RESEARCH, tag: makeTag(0x0010, 0x1010), vr: "AS", value: "095Y", expected: () => "090Y" },
  { name: "K keeps Patient Age of 89", options: RESEARCH, tag: makeTag(0x0010, 0x1010), vr: "AS", value: "089Y", expected: () => "089Y" },
  { name: "C cleans Image Comments", options: RESEARCH, tag: makeTag(0x0020, 0x4000), vr: "LT", value: "Jane Doe, MRN 12345678, DOB 16.03.1947", expected: () => `${pseudonym()}, MRN ${pseudonym()}, DOB [DATE]` },
  { name: "C keeps clean ROI Name", options: RESEARCH, tag: makeTag(0x3006, 0x0026), vr: "LO", value: "PTV_60", expected: () => "PTV_60" },
  { name: "C cleans a name out of ROI Name", options: RESEARCH, tag: makeTag(0x3006, 0x0026), vr: "LO", value: "Doe_marker", expected: () => `${pseudonym()}_marker` },
  { name: "C shifts Study Date", options: RESEARCH, tag: makeTag(0x0008, 0x0020), vr: "DA", value: "20190412", expected: () => addDays("20190412", shift()) },
  { name: "C shifts Acquisition DateTime and keeps the time", options: RESEARCH, tag: makeTag(0x0008, 0x002a), vr: "DT", value: "20190412091510.25+0100", expected: () => `${addDays("20190412", shift())}091510.25+0100` },
  { name: "C keeps Study Time", options: RESEARCH, tag: makeTag(0x0008, 0x0030), vr: "TM", value: "091510", expected: () => "091510" },
];

describe("action codes at every depth", () => {
  describe.each(PROBES)("$name", (probe) => {
    test.each(DEPTHS)("at depth %i", (depth) => {
      const { level } = deidentifyAt([text(probe.tag, probe.vr, probe.value)], depth, probe.options);
      const element = find(level, probe.tag);
      const expected = probe.expected();
      if (expected === undefined) {
        expect(element).toBeUndefined();
      } else {
        expect(element).toBeDefined();
        expect(valueOf(element)).toBe(expected);
      }
    });

    test("gives the same bytes at every depth", () => {
      const results = DEPTHS.map((depth) => {
        const { level } = deidentifyAt([text(probe.tag, probe.vr, probe.value)], depth, probe.options);
        return find(level, probe.tag)?.bytes?.toString("hex") ?? "(removed)";
      });
      expect(new Set(results).size).toBe(1);
    });
  });
});

describe("sequences", () => {
  const referencedImage = makeTag(0x0008, 0x1140);
  const referencedClass = makeTag(0x0008, 0x1150);
  const referencedInstance = makeTag(0x0008, 0x1155);

  test.each(DEPTHS)("X/Z/U* keeps Referenced Image Sequence with new UIDs at depth %i", (depth) => {
    const probe = sequence(referencedImage, [
      text(referencedClass, "UI", "1.2.840.10008.5.1.4.1.1.2"),
      text(referencedInstance, "UI", INSTANCE_UID),
    ]);
    const { level } = deidentifyAt([probe], depth, []);
    const items = find(level, referencedImage)?.items;
    expect(items).toHaveLength(1);
    expect(valueOf(find(items![0], referencedClass))).toBe("1.2.840.10008.5.1.4.1.1.2");
    expect(valueOf(find(items![0], referencedInstance))).toBe(deriveUid(TEST_SECRET, INSTANCE_UID));
  });

  test.each(DEPTHS)("X/Z keeps Referenced Study Sequence items, dummied, at depth %i", (depth) => {
    // An X/Z sequence with items keeps them, every value replaced as for D, so a module that requires 1-n items stays valid.
    const probe = sequence(makeTag(0x0008, 0x1110), [
      text(referencedClass, "UI", "1.2.840.10008.3.1.2.3.1"),
      text(referencedInstance, "UI", INSTANCE_UID),
      text(makeTag(0x0008, 0x0104), "LO", "Study of Jane Doe"),
      text(makeTag(0x0014, 0x1020), "DA", "20190412"),
    ]);
    const { level } = deidentifyAt([probe], depth, []);
    const items = find(level, makeTag(0x0008, 0x1110))?.items;
    expect(items).toHaveLength(1);
    expect(valueOf(find(items![0], referencedClass))).toBe("1.2.840.10008.3.1.2.3.1");
    expect(valueOf(find(items![0], referencedInstance))).toBe(deriveUid(TEST_SECRET, INSTANCE_UID));
    expect(valueOf(find(items![0], makeTag(0x0008, 0x0104)))).toBe("ANONYMIZED");
    expect(valueOf(find(items![0], makeTag(0x0014, 0x1020)))).toBe("19000101");
  });

  test.each(DEPTHS)("X/Z leaves an empty Referenced Study Sequence empty at depth %i", (depth) => {
    const { level } = deidentifyAt([sequence(makeTag(0x0008, 0x1110))], depth, []);
    expect(find(level, makeTag(0x0008, 0x1110))?.items).toEqual([]);
  });

  test.each(DEPTHS)("X removes Other Patient IDs Sequence at depth %i", (depth) => {
    const probe = sequence(makeTag(0x0010, 0x1002), [text(makeTag(0x0010, 0x0020), "LO", "H-7781-2203")]);
    const { level } = deidentifyAt([probe], depth, []);
    expect(find(level, makeTag(0x0010, 0x1002))).toBeUndefined();
  });

  test.each(DEPTHS)("D sequence writes dummies into unlisted values at depth %i", (depth) => {
    // Verifying Observer Sequence is D in the Basic Profile. Code Meaning, Expiry Date and Type Of Patient ID are unlisted.
    const probe = sequence(makeTag(0x0040, 0xa073), [
      text(makeTag(0x0008, 0x0104), "LO", "Observer Doe"),
      text(makeTag(0x0010, 0x0022), "CS", "TEXT"),
      text(makeTag(0x0014, 0x1020), "DA", "20190412"),
      text(makeTag(0x0040, 0xa027), "LO", "Riverside Cancer Centre"),
      text(makeTag(0x0040, 0xa075), "PN", "SMITH^JOHN"),
    ]);
    const { level } = deidentifyAt([probe], depth, []);
    const inner = find(level, makeTag(0x0040, 0xa073))!.items![0];
    expect(valueOf(find(inner, makeTag(0x0008, 0x0104)))).toBe("ANONYMIZED");
    expect(valueOf(find(inner, makeTag(0x0010, 0x0022)))).toBe("TEXT");
    expect(valueOf(find(inner, makeTag(0x0014, 0x1020)))).toBe("19000101");
    expect(valueOf(find(inner, makeTag(0x0040, 0xa027)))).toBe("ANONYMIZED");
    expect(valueOf(find(inner, makeTag(0x0040, 0xa075)))).toBe("ANONYMOUS");
  });

  test.each(DEPTHS)("C sequence cleans unlisted values and shifts dates at depth %i", (depth) => {
    // Acquisition Context Sequence is C under Clean Structured Content.
    const probe = sequence(makeTag(0x0040, 0x0555), [
      text(makeTag(0x0008, 0x0104), "LO", "Context for Jane Doe"),
      text(makeTag(0x0010, 0x0022), "CS", "TEXT"),
      text(makeTag(0x0014, 0x1020), "DA", "20190412"),
      text(makeTag(0x0014, 0x2006), "PN", "SMITH^JOHN"),
    ]);
    const { level } = deidentifyAt([probe], depth, RESEARCH);
    const inner = find(level, makeTag(0x0040, 0x0555))!.items![0];
    expect(valueOf(find(inner, makeTag(0x0008, 0x0104)))).toBe(`Context for ${pseudonym()}`);
    expect(valueOf(find(inner, makeTag(0x0010, 0x0022)))).toBe("TEXT");
    expect(valueOf(find(inner, makeTag(0x0014, 0x1020)))).toBe(addDays("20190412", shift()));
    expect(valueOf(find(inner, makeTag(0x0014, 0x2006)))).toBe("");
  });

  test.each(DEPTHS)("C sequence without date shifting writes dummy dates at depth %i", (depth) => {
    const probe = sequence(makeTag(0x0040, 0x0555), [text(makeTag(0x0014, 0x1020), "DA", "20190412")]);
    const { level } = deidentifyAt([probe], depth, ["clean-structured-content"]);
    const inner = find(level, makeTag(0x0040, 0x0555))!.items![0];
    expect(valueOf(find(inner, makeTag(0x0014, 0x1020)))).toBe("19000101");
  });
});

describe("values that cannot be cleaned", () => {
  const overlayData = makeTag(0x6002, 0x3000);
  const overlayRows = makeTag(0x6002, 0x0010);
  const makerNote = makeTag(0x0016, 0x002b);

  function binary(tag: number, vr: string, bytes: number[]): Element {
    return { tag, vr, undefinedLength: false, bytes: Buffer.from(bytes) };
  }

  test.each(DEPTHS)("C removes Overlay Data and Maker Note at depth %i", (depth) => {
    // Clean Graphics and Clean Descriptors code them C, but a bitmap or a vendor blob cannot be searched for text.
    const probe = [binary(overlayRows, "US", [16, 0]), binary(overlayData, "OW", [0x44, 0x4f, 0x45, 0x00]), binary(makerNote, "OB", [0x44, 0x4f, 0x45, 0x00])];
    const { level, run } = deidentifyAt(probe, depth, RESEARCH);
    expect(find(level, overlayData)).toBeUndefined();
    expect(find(level, makerNote)).toBeUndefined();
    expect(find(level, overlayRows)?.bytes?.toString("hex")).toBe("1000");
    expect(run.counts.removed).toBeGreaterThanOrEqual(2);
  });

  test("X removes Overlay Data under the Basic Profile", () => {
    const { level } = deidentifyAt([binary(overlayData, "OW", [1, 0])], 1, []);
    expect(find(level, overlayData)).toBeUndefined();
  });

  test("retain-safe-private keeps a safe OB value", () => {
    // Philips Imaging DD 097, offset 2F, VR OB: safe per PS3.15 Table E.3.10-1.
    const probe = [text(makeTag(0x2001, 0x0010), "LO", "Philips Imaging DD 097"), binary(makeTag(0x2001, 0x102f), "OB", [1, 2, 3, 4])];
    const { level } = deidentifyAt(probe, 2, RESEARCH);
    expect(find(level, makeTag(0x2001, 0x102f))?.bytes?.toString("hex")).toBe("01020304");
  });
});

describe("private data elements", () => {
  const gemsCreator = makeTag(0x0019, 0x0010);
  const gemsSafe = makeTag(0x0019, 0x1023); // GEMS_ACQU_01 offset 23: safe per PS3.15 Table E.3.10-1
  const gemsUnsafe = makeTag(0x0019, 0x1001); // GEMS_ACQU_01 offset 01: not listed as safe
  const acmeCreator = makeTag(0x0019, 0x0011);
  const acmeElement = makeTag(0x0019, 0x1123); // same offset as the safe one, but in the ACME block

  function privateElements(): Element[] {
    return [
      text(gemsCreator, "LO", "GEMS_ACQU_01"),
      text(acmeCreator, "LO", "ACME RT 1.0"),
      text(gemsUnsafe, "LO", "DOE^JANE"),
      text(gemsSafe, "DS", "1.5"),
      text(acmeElement, "DS", "2.5"),
      sequence(makeTag(0x3253, 0x1010), [text(makeTag(0x3253, 0x0010), "LO", "ACME RT 1.0"), text(makeTag(0x3253, 0x1011), "LO", PATIENT_ID)]),
    ];
  }

  test.each(DEPTHS)("basic removes every private element and creator at depth %i", (depth) => {
    const { level, run } = deidentifyAt(privateElements(), depth, []);
    const privateTags = level.elements.filter((element) => (element.tag >>> 16) % 2 === 1);
    expect(privateTags).toEqual([]);
    expect(run.counts.privateRemoved).toBeGreaterThanOrEqual(4);
  });

  test.each(DEPTHS)("retain-safe-private keeps safe elements and their creator at depth %i", (depth) => {
    const { level } = deidentifyAt(privateElements(), depth, ["retain-safe-private"]);
    const privateTags = level.elements.filter((element) => (element.tag >>> 16) % 2 === 1).map((element) => element.tag);
    expect(privateTags).toEqual([gemsCreator, gemsSafe]);
    expect(valueOf(find(level, gemsCreator))).toBe("GEMS_ACQU_01");
    expect(valueOf(find(level, gemsSafe))).toBe("1.5");
  });

  test("retain-safe-private drops a creator whose block keeps nothing", () => {
    const { level } = deidentifyAt([text(gemsCreator, "LO", "GEMS_ACQU_01"), text(gemsUnsafe, "LO", "DOE^JANE")], 2, ["retain-safe-private"]);
    expect(find(level, gemsCreator)).toBeUndefined();
    expect(find(level, gemsUnsafe)).toBeUndefined();
  });

  test("a safe offset without its creator is removed", () => {
    const { level } = deidentifyAt([text(gemsSafe, "DS", "1.5")], 1, ["retain-safe-private"]);
    expect(find(level, gemsSafe)).toBeUndefined();
  });
});

describe("unlisted attributes", () => {
  const unknownTag = makeTag(0x0018, 0xfff0);
  const multiFrameSource = makeTag(0x0008, 0x1167); // MultiFrameSourceSOPInstanceUID, unlisted
  const referencedClass = makeTag(0x0008, 0x1150); // ReferencedSOPClassUID, unlisted
  const codingSchemeUid = makeTag(0x0008, 0x010c); // CodingSchemeUID, unlisted
  const privateRoot = "1.2.826.0.1.3680043.10.1234.77";

  test("the probe tags are unlisted and known or unknown as assumed", () => {
    const profile = compileProfile([]);
    expect(lookupTag(unknownTag)).toBeUndefined();
    for (const tag of [multiFrameSource, referencedClass, codingSchemeUid, makeTag(0x0014, 0x1020), makeTag(0x0014, 0x2006)]) {
      expect(lookupTag(tag), tag.toString(16)).toBeDefined();
      expect(profile.exact.has(tag), tag.toString(16)).toBe(false);
    }
  });

  test.each(DEPTHS)("unknown standard tags are removed at depth %i", (depth) => {
    const { level, run } = deidentifyAt([text(unknownTag, "LO", "anything")], depth, RESEARCH);
    expect(find(level, unknownTag)).toBeUndefined();
    expect(run.counts.unknownRemoved).toBe(1);
  });

  test.each(DEPTHS)("instance UIDs are replaced at depth %i", (depth) => {
    const { level } = deidentifyAt([text(multiFrameSource, "UI", privateRoot, INSTANCE_UID)], depth, []);
    expect(valueOf(find(level, multiFrameSource))).toBe(`${deriveUid(TEST_SECRET, privateRoot)}\\${deriveUid(TEST_SECRET, INSTANCE_UID)}`);
  });

  test.each(DEPTHS)("class UIDs and DICOM-root UIDs are kept at depth %i", (depth) => {
    const { level } = deidentifyAt(
      [
        text(referencedClass, "UI", privateRoot),
        text(codingSchemeUid, "UI", privateRoot),
        text(multiFrameSource, "UI", "1.2.840.10008.5.1.4.1.1.2"),
      ],
      depth,
      [],
    );
    expect(valueOf(find(level, referencedClass))).toBe(privateRoot);
    expect(valueOf(find(level, codingSchemeUid))).toBe(privateRoot);
    expect(valueOf(find(level, multiFrameSource))).toBe("1.2.840.10008.5.1.4.1.1.2");
  });

  test("retain-uids keeps unlisted instance UIDs", () => {
    const { level } = deidentifyAt([text(multiFrameSource, "UI", privateRoot)], 2, ["retain-uids"]);
    expect(valueOf(find(level, multiFrameSource))).toBe(privateRoot);
  });

  test.each(DEPTHS)("unlisted person names are emptied at depth %i", (depth) => {
    const { level } = deidentifyAt([text(makeTag(0x0014, 0x2006), "PN", "SMITH^JOHN")], depth, []);
    expect(valueOf(find(level, makeTag(0x0014, 0x2006)))).toBe("");
  });

  test.each(DEPTHS)("unlisted text is cleaned of known names at depth %i", (depth) => {
    // Staff names come from any PN value: here Verifying Observer Name at the top level.
    const staff = text(makeTag(0x0040, 0xa075), "PN", "SMITH^JOHN^^DR");
    const run = deidentify([...patientElements(), staff, ...nest([text(makeTag(0x0008, 0x0104), "LO", "Referred by Dr John Smith for Jane Doe")], depth)], []);
    const cleaned = valueOf(find(levelOf(run.dataset, depth), makeTag(0x0008, 0x0104)));
    expect(cleaned).toBe(`Referred by [NAME] for ${pseudonym()}`);
  });

  test.each(DEPTHS)("unlisted dates are not kept under the Basic Profile at depth %i", (depth) => {
    const expiry = makeTag(0x0014, 0x1020);
    const expiration = makeTag(0x0008, 0x0416);
    const { level } = deidentifyAt([text(expiry, "DA", "20190412"), text(expiration, "DT", "20190412101010")], depth, []);
    expect(valueOf(find(level, expiry))).not.toContain("20190412");
    expect(valueOf(find(level, expiration))).not.toContain("20190412");
  });

  test("unlisted dates are kept under retain-longitudinal-full-dates", () => {
    const expiry = makeTag(0x0014, 0x1020);
    const { level } = deidentifyAt([text(expiry, "DA", "20190412")], 1, ["retain-longitudinal-full-dates"]);
    expect(valueOf(find(level, expiry))).toBe("20190412");
  });

  test("unlisted dates are shifted under research", () => {
    const expiry = makeTag(0x0014, 0x1020);
    const { level } = deidentifyAt([text(expiry, "DA", "20190412")], 1, RESEARCH);
    expect(valueOf(find(level, expiry))).toBe(addDays("20190412", shift()));
  });
});

describe("date shift", () => {
  test("keeps the interval between dates of one patient", () => {
    const pairs: Array<[number, string]> = [
      [makeTag(0x0008, 0x0020), "20200225"], // Study Date
      [makeTag(0x0008, 0x0021), "20200305"], // Series Date, across 29 February
      [makeTag(0x0008, 0x0023), "20201231"], // Content Date
      [makeTag(0x300e, 0x0004), "20210101"], // Review Date, across the year
    ];
    const run = deidentify([...patientElements(), ...nest(pairs.map(([tag, value]) => text(tag, "DA", value)), 2)], RESEARCH);
    const level = levelOf(run.dataset, 2);
    const outputs = pairs.map(([tag]) => valueOf(find(level, tag))!);
    for (let index = 1; index < pairs.length; index++) {
      expect(daysBetween(outputs[0], outputs[index])).toBe(daysBetween(pairs[0][1], pairs[index][1]));
    }
    const applied = daysBetween(pairs[0][1], outputs[0]);
    expect(applied).toBe(run.patient.shiftDays);
    expect(applied).toBeLessThanOrEqual(-366);
    expect(applied).toBeGreaterThanOrEqual(-3652);
  });

  test("empties values that are not valid dates", () => {
    const { level } = deidentifyAt([text(makeTag(0x0008, 0x0020), "DA", "20190231")], 1, RESEARCH);
    expect(valueOf(find(level, makeTag(0x0008, 0x0020)))).toBe("");
  });
});

describe("patient age", () => {
  test.each([
    ["095Y", "090Y"],
    ["090Y", "090Y"],
    ["120Y", "090Y"],
    ["089Y", "089Y"],
    ["999M", "999M"],
    ["006W", "006W"],
    ["012D", "012D"],
    ["95Y", ""],
  ])("keeps %s as %s under research", (value, expected) => {
    const { level } = deidentifyAt([text(makeTag(0x0010, 0x1010), "AS", value)], 0, RESEARCH);
    expect(valueOf(find(level, makeTag(0x0010, 0x1010)))).toBe(expected);
  });

  test("is removed under the Basic Profile", () => {
    const { level } = deidentifyAt([text(makeTag(0x0010, 0x1010), "AS", "072Y")], 0, []);
    expect(find(level, makeTag(0x0010, 0x1010))).toBeUndefined();
  });
});

describe("character sets", () => {
  const charset = makeTag(0x0008, 0x0005);
  const comments = makeTag(0x0020, 0x4000);
  const name = "MÜLLER^JÖRG";

  function encoded(tag: number, vr: string, value: string, terms: string): Element {
    return { tag, vr, undefinedLength: false, bytes: codecForSpecificCharacterSet(terms).encode(value, vr) };
  }

  function decoded(element: Element | undefined, terms: string): string | undefined {
    if (!element?.bytes) return undefined;
    return codecForSpecificCharacterSet(terms).decode(element.bytes, element.vr).replace(/[\0 ]+$/, "");
  }

  test.each(["ISO_IR 100", "ISO_IR 192"])("cleans a non-ASCII name at depth 2 in %s", (terms) => {
    const run = deidentify(
      [
        encoded(charset, "CS", terms, terms),
        encoded(makeTag(0x0010, 0x0010), "PN", name, terms),
        encoded(makeTag(0x0010, 0x0020), "LO", "AB-0042", terms),
        ...nest([encoded(comments, "LT", "Planungs-CT Müller, Jörg AB-0042", terms)], 2),
      ],
      RESEARCH,
    );
    const pseudonymId = derivePatientId(TEST_SECRET, "AB-0042");
    expect(decoded(find(run.dataset, makeTag(0x0010, 0x0010)), terms)).toBe(pseudonymId);
    expect(decoded(find(levelOf(run.dataset, 2), comments), terms)).toBe(`Planungs-CT ${pseudonymId} ${pseudonymId}`);
  });

  test("cleans an item that declares its own character set", () => {
    // The top level is Latin-1 and the nested item declares its own Specific Character Set, UTF-8.
    const nestedItem = [encoded(charset, "CS", "ISO_IR 192", "ISO_IR 192"), encoded(comments, "LT", "Jörg Müller, born 1958", "ISO_IR 192")];
    const run = deidentify(
      [
        encoded(charset, "CS", "ISO_IR 100", "ISO_IR 100"),
        encoded(makeTag(0x0010, 0x0010), "PN", name, "ISO_IR 100"),
        encoded(makeTag(0x0010, 0x0020), "LO", "AB-0042", "ISO_IR 100"),
        sequence(WRAPPERS[0], nestedItem),
      ],
      RESEARCH,
    );
    const inner = levelOf(run.dataset, 1);
    expect(decoded(find(inner, comments), "ISO_IR 192")).toBe(`${derivePatientId(TEST_SECRET, "AB-0042")}, born 1958`);
  });
});
