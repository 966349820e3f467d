import { describe, expect, test } from "vitest";

import { TextCleaner } from "../../src/deid/cleaner.js";
import { IdentifierRegistry } from "../../src/deid/identifiers.js";
import { encodeText } from "../../src/deid/values.js";
import { codecForSpecificCharacterSet } from "../../src/dicom/charset.js";
import { initSodium } from "../../src/pseudonym/keyed-hash.js";

await initSodium();
const SECRET = new Uint8Array(32).fill(7);

function cleanerFor(setup: (registry: IdentifierRegistry) => void): TextCleaner {
  const registry = new IdentifierRegistry(SECRET, { shiftDates: true });
  setup(registry);
  return new TextCleaner(registry.allTerms(), (uid) => `2.25.${uid.length}`);
}

describe("names in Chinese, Japanese and Korean", () => {
  const cases: Array<[string, string, string]> = [
    ["Yamada^Tarou=山田^太郎=やまだ^たろう", "山田太郎のCT", "のCT"],
    ["Hong^Gildong=洪^吉洞=홍^길동", "환자 홍길동 검사", "환자 "],
    ["Wang^XiaoDong=王^小東", "王小東先生", "先生"],
  ];
  test.each(cases)("%s is cleaned from running text", (pn, text, kept) => {
    const cleaner = cleanerFor((registry) => registry.addPatientName(pn, registry.patient("P1")));
    const cleaned = cleaner.clean(text).text;
    const native = pn.split("=")[1].replace("^", "");
    expect(cleaned).not.toContain(native);
    expect(cleaned).toContain(kept);
  });

  test("a two-letter Latin part is not searched for", () => {
    const cleaner = cleanerFor((registry) => registry.addPatientName("LI^JO", registry.patient("P1")));
    expect(cleaner.clean("LI JO left lung").text).toContain("left lung");
    expect(cleaner.clean("LIver").text).toBe("LIver");
  });
});

describe("dates written by hand", () => {
  const forms = ["16.3.1947", "16.03.47", "16 Mar 1947", "16. März 1947", "1947-3-16", "16031947", "3/16/1947", "March 16, 1947"];
  test.each(forms)("birth date written as %s is replaced", (form) => {
    const cleaner = cleanerFor((registry) => registry.addDate("19470316", "birth-date", registry.patient("P1")));
    expect(cleaner.clean(`born ${form} in Leeds`).text).toBe("born [DATE] in Leeds");
  });

  test("a date followed by an ISO 8601 time is shifted", () => {
    const registry = new IdentifierRegistry(SECRET, { shiftDates: true });
    registry.addDate("20190418", "date", registry.patient("P1"));
    const cleaner = new TextCleaner(registry.allTerms(), (uid) => uid);
    const cleaned = cleaner.clean("2019-04-18T10:15:00 INFO start").text;
    expect(cleaned).toMatch(/^\d{4}-\d{2}-\d{2}T10:15:00 INFO start$/);
    expect(cleaned).not.toContain("2019-04-18");
  });

  test("a shifted date keeps the form it was written in", () => {
    const registry = new IdentifierRegistry(SECRET, { shiftDates: true });
    const patient = registry.patient("P1");
    registry.addDate("20190415", "date", patient);
    const cleaner = new TextCleaner(registry.allTerms(), (uid) => uid);
    const cleaned = cleaner.clean("planned 15.04.2019").text;
    expect(cleaned).toMatch(/^planned \d{2}\.\d{2}\.\d{4}$/);
    expect(cleaned).not.toContain("15.04.2019");
  });
});

describe("values longer than their VR", () => {
  const codec = codecForSpecificCharacterSet(undefined);
  test("a pseudonym is dropped whole rather than cut", () => {
    const bytes = encodeText(["HN PAT-0ZGRJMVG0X"], "SH", codec);
    expect(bytes.toString("latin1").trim()).toBe("HN");
  });

  test("a value that fits is unchanged", () => {
    expect(encodeText(["HN PAT-0ZGRJMVG"], "SH", codec).toString("latin1").trim()).toBe("HN PAT-0ZGRJMVG");
  });
});
