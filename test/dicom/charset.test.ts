import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import dicomParser from "dicom-parser";
import { beforeAll, describe, expect, test } from "vitest";
import {
  CHARSET_SENSITIVE_VRS,
  codecForSpecificCharacterSet,
  type CharsetCodec,
} from "../../src/dicom/charset.js";
import { DeidError } from "../../src/errors.js";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Parses the standard's "column/row" byte notation, e.g. "05/09 01/11". */
function columnRow(notation: string): Buffer {
  return Buffer.from(
    notation
      .trim()
      .split(/\s+/)
      .map((pair) => {
        const [column, row] = pair.split("/").map(Number);
        return column * 16 + row;
      }),
  );
}

/** Parses "0x57 0x61 ..." as listed in PS3.5 Annexes J and K. */
function hexList(list: string): Buffer {
  return Buffer.from(
    list
      .trim()
      .split(/\s+/)
      .map((byte) => Number.parseInt(byte, 16)),
  );
}

/** Concatenates byte arrays and latin1 strings ("\x1b$B" and the like). */
function bytesOf(...parts: Array<string | number[] | Buffer>): Buffer {
  return Buffer.concat(
    parts.map((part) =>
      typeof part === "string" ? Buffer.from(part, "latin1") : Buffer.from(part),
    ),
  );
}

function codec(value: string | undefined): CharsetCodec {
  return codecForSpecificCharacterSet(value);
}

function caught(action: () => unknown): DeidError {
  try {
    action();
  } catch (error) {
    if (error instanceof DeidError) return error;
    throw error;
  }
  throw new Error("expected a DeidError, but nothing was thrown");
}

// ---------------------------------------------------------------------------
// pydicom, run live
// ---------------------------------------------------------------------------

const PYTHON = "/usr/bin/python3";
const CI = process.env.CI !== undefined && !["", "0", "false"].includes(process.env.CI);

function hasPydicom(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import pydicom"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const HAVE_PYDICOM = hasPydicom();
// Under CI a missing pydicom fails the tests below instead of skipping them.
const describeWithPydicom = HAVE_PYDICOM || CI ? describe : describe.skip;

function runPython<T>(script: string, ...args: string[]): T {
  const output = execFileSync(PYTHON, ["-c", script, ...args], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(output) as T;
}

const CHARSET_FILES = [
  "chrArab",
  "chrFren",
  "chrFrenMulti",
  "chrGerm",
  "chrGreek",
  "chrH31",
  "chrH32",
  "chrHbrw",
  "chrI2",
  "chrJapMulti",
  "chrJapMultiExplicitIR6",
  "chrKoreanMulti",
  "chrRuss",
  "chrSQEncoding",
  "chrSQEncoding1",
  "chrX1",
  "chrX2",
];

/**
 * Prints, per file, the value pydicom decodes for each charset-sensitive
 * element, keyed by tag path ("00321064[0].00100010"). PN values are
 * printed as str(PersonName), which drops trailing empty component groups.
 */
const PYDICOM_DECODE_SCRIPT = String.raw`
import json, os, sys
import pydicom
from pydicom.multival import MultiValue
directory = os.path.join(os.path.dirname(pydicom.__file__), "data", "charset_files")
sensitive = {"SH", "LO", "ST", "LT", "UC", "UT", "PN"}
def walk(dataset, prefix, out):
    for element in dataset:
        key = prefix + "%08X" % element.tag
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                walk(item, key + "[%d]." % index, out)
        elif element.VR in sensitive:
            value = element.value
            values = list(value) if isinstance(value, MultiValue) else [value]
            out[key] = {"vr": element.VR, "values": ["" if v is None else str(v) for v in values]}
result = {"directory": directory, "files": {}}
for name in sys.argv[1:]:
    out = {}
    walk(pydicom.dcmread(os.path.join(directory, name + ".dcm")), "", out)
    result["files"][name] = out
print(json.dumps(result))
`;

interface TextElement {
  path: string;
  vr: string;
  raw: Buffer;
  specificCharacterSet: string | undefined;
}

/**
 * Lists charset-sensitive elements with dicom-parser. A sequence item uses
 * its own (0008,0005) if it has one, else the enclosing data set's.
 */
function textElements(file: Buffer): TextElement[] {
  const found: TextElement[] = [];
  const walk = (
    dataSet: dicomParser.DataSet,
    prefix: string,
    inherited: string | undefined,
  ) => {
    const own = dataSet.elements.x00080005;
    const charset =
      own === undefined
        ? inherited
        : file.subarray(own.dataOffset, own.dataOffset + own.length).toString("latin1");
    for (const [tag, element] of Object.entries(dataSet.elements)) {
      const path = prefix + tag.slice(1).toUpperCase();
      // File meta information is always the default repertoire.
      if (path.startsWith("0002")) continue;
      if (element.items !== undefined) {
        element.items.forEach((item, index) => {
          if (item.dataSet !== undefined) walk(item.dataSet, `${path}[${index}].`, charset);
        });
      } else if (element.vr !== undefined && CHARSET_SENSITIVE_VRS.has(element.vr)) {
        const raw = file.subarray(element.dataOffset, element.dataOffset + element.length);
        found.push({ path, vr: element.vr, raw, specificCharacterSet: charset });
      }
    }
  };
  walk(dicomParser.parseDicom(new Uint8Array(file)), "", undefined);
  return found;
}

/** Applies pydicom's trimming to a decoded value field, for comparison. */
function asPydicomValues(text: string, vr: string): string[] {
  const stripPadding = (value: string) => value.replace(/[\0 ]+$/, "");
  if (vr === "PN") {
    return stripPadding(text)
      .split("\\")
      .map((value) => value.replace(/=+$/, ""));
  }
  if (vr === "ST" || vr === "LT" || vr === "UT") return [stripPadding(text)];
  return text.split("\\").map(stripPadding);
}

/**
 * Elements whose bytes are valid but not what the encoder writes, so only a
 * decode round trip holds for them. chrKoreanMulti ends each value with
 * ESC ( B although G0 never left ISO-IR 6, and chrSQEncoding returns G0 to
 * ISO-IR 6 where the initial set is ISO-IR 14 (both decode the same).
 */
const NON_CANONICAL_ELEMENTS = new Set([
  "chrKoreanMulti:00081070",
  "chrKoreanMulti:00100010",
  "chrKoreanMulti:00101001",
  "chrKoreanMulti:001021B0",
  "chrSQEncoding:00321064[0].00100010",
  "chrSQEncoding1:00321064[0].00100010",
]);

describeWithPydicom("pydicom charset files", () => {
  let directory = "";
  let expected: Record<string, Record<string, { vr: string; values: string[] }>> = {};

  beforeAll(() => {
    const result = runPython<{ directory: string; files: typeof expected }>(
      PYDICOM_DECODE_SCRIPT,
      ...CHARSET_FILES,
    );
    directory = result.directory;
    expected = result.files;
  });

  const elementsOf = (name: string) =>
    textElements(readFileSync(join(directory, `${name}.dcm`)));

  test("pydicom is available", () => {
    expect(HAVE_PYDICOM).toBe(true);
  });

  test.each(CHARSET_FILES)("%s decodes as pydicom does", (name) => {
    const elements = elementsOf(name);
    const paths = new Set(elements.map((element) => element.path));
    // pydicom also decodes private elements stored as UN, using its private
    // dictionary. This toolkit reads the VR from the file, so they are left out.
    const onlyInPydicom = Object.keys(expected[name]).filter((path) => !paths.has(path));
    expect(onlyInPydicom.filter((path) => !/^[0-9A-F]{3}[13579BDF]/.test(path))).toEqual([]);
    expect(elements.length).toBeGreaterThan(0);
    for (const element of elements) {
      const text = codec(element.specificCharacterSet).decode(element.raw, element.vr);
      expect(asPydicomValues(text, element.vr), `${name} ${element.path}`).toEqual(
        expected[name][element.path].values,
      );
    }
  });

  test.each(CHARSET_FILES)("%s re-encodes to the same bytes", (name) => {
    let nonCanonical = 0;
    for (const element of elementsOf(name)) {
      const charsetCodec = codec(element.specificCharacterSet);
      const text = charsetCodec.decode(element.raw, element.vr);
      const encoded = charsetCodec.encode(text, element.vr);
      const label = `${name}:${element.path}`;
      if (NON_CANONICAL_ELEMENTS.has(label)) {
        nonCanonical++;
        expect(encoded.equals(element.raw), label).toBe(false);
        expect(charsetCodec.decode(encoded, element.vr), label).toBe(text);
      } else {
        expect(encoded.toString("hex"), label).toBe(element.raw.toString("hex"));
      }
    }
    const listed = [...NON_CANONICAL_ELEMENTS].filter((label) => label.startsWith(`${name}:`));
    expect(nonCanonical).toBe(listed.length);
  });

  test("non-ASCII names are among the checked elements", () => {
    const names = CHARSET_FILES.flatMap((name) =>
      elementsOf(name)
        .filter((element) => element.path.endsWith("00100010"))
        .map((element) => codec(element.specificCharacterSet).decode(element.raw, "PN")),
    );
    expect(names).toContain("Yamada^Tarou=山田^太郎=やまだ^たろう");
    expect(names).toContain("ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう");
    expect(names).toContain("Hong^Gildong=洪^吉洞=홍^길동");
    expect(names).toContain("Wang^XiaoDong=王^小东=");
    expect(names).toContain("Wang^XiaoDong=王^小東= ");
    expect(names).toContain("Διονυσιος ");
    expect(names).toContain("قباني^لنزار ");
  });
});

// ---------------------------------------------------------------------------
// PS3.5 Annexes H to K: examples with the bytes the standard lists
// ---------------------------------------------------------------------------

describe("PS3.5 examples", () => {
  test("H.3.1 ISO 2022 IR 87 after the default repertoire", () => {
    const charsetCodec = codec("\\ISO 2022 IR 87");
    const text = "Yamada^Tarou=山田^太郎=やまだ^たろう";
    const bytes = columnRow(`
      05/09 06/01 06/13 06/01 06/04 06/01 05/14 05/04 06/01 07/02 06/15 07/05
      03/13 01/11 02/04 04/02 03/11 03/03 04/05 04/04 01/11 02/08 04/02 05/14
      01/11 02/04 04/02 04/02 04/00 04/15 03/10 01/11 02/08 04/02 03/13 01/11
      02/04 04/02 02/04 06/04 02/04 05/14 02/04 04/00 01/11 02/08 04/02 05/14
      01/11 02/04 04/02 02/04 03/15 02/04 06/13 02/04 02/06 01/11 02/08 04/02`);
    expect(charsetCodec.encode(text, "PN").toString("hex")).toBe(bytes.toString("hex"));
    expect(charsetCodec.decode(bytes, "PN")).toBe(text);
  });

  test("H.3.2 ISO 2022 IR 13 with IR 87", () => {
    const charsetCodec = codec("ISO 2022 IR 13\\ISO 2022 IR 87");
    const text = "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう";
    const bytes = columnRow(`
      13/04 12/15 12/00 13/14 05/14 12/00 13/11 11/03 03/13 01/11 02/04 04/02
      03/11 03/03 04/05 04/04 01/11 02/08 04/10 05/14 01/11 02/04 04/02 04/02
      04/00 04/15 03/10 01/11 02/08 04/10 03/13 01/11 02/04 04/02 02/04 06/04
      02/04 05/14 02/04 04/00 01/11 02/08 04/10 05/14 01/11 02/04 04/02 02/04
      03/15 02/04 06/13 02/04 02/06 01/11 02/08 04/10`);
    expect(charsetCodec.encode(text, "PN").toString("hex")).toBe(bytes.toString("hex"));
    expect(charsetCodec.decode(bytes, "PN")).toBe(text);
  });

  test("I.2 ISO 2022 IR 149 person name", () => {
    const charsetCodec = codec("\\ISO 2022 IR 149");
    const text = "Hong^Gildong=洪^吉洞=홍^길동";
    const bytes = columnRow(`
      04/08 06/15 06/14 06/07 05/14 04/07 06/09 06/12 06/04 06/15 06/14 06/07
      03/13 01/11 02/04 02/09 04/03 15/11 15/03 05/14 01/11 02/04 02/09 04/03
      13/01 12/14 13/04 13/07 03/13 01/11 02/04 02/09 04/03 12/08 10/11 05/14
      01/11 02/04 02/09 04/03 11/01 14/06 11/05 11/15`);
    expect(charsetCodec.encode(text, "PN").toString("hex")).toBe(bytes.toString("hex"));
    expect(charsetCodec.decode(bytes, "PN")).toBe(text);
  });

  test("I.3 escape at line start decodes", () => {
    // The standard lists no bytes for this example. It designates KS X 1001
    // once at the start of each line, before the ASCII text.
    const hangul = [0xc7, 0xd1, 0xb1, 0xdb]; // 한글 in KS X 1001
    const bytes = bytesOf(
      "\x1b$)CThe first line includes",
      hangul,
      ".\r\n\x1b$)CThe second line includes",
      hangul,
      ", too.\r\nThe third line",
    );
    const text =
      "The first line includes한글.\r\nThe second line includes한글, too.\r\nThe third line";
    const charsetCodec = codec("\\ISO 2022 IR 149");
    expect(charsetCodec.decode(bytes, "LT")).toBe(text);
    expect(charsetCodec.decode(charsetCodec.encode(text, "LT"), "LT")).toBe(text);
  });

  const longTextInChinese =
    "The first line includes中文.\r\nThe second line includes中文, too.\r\nThe third line.\r\n";

  test("J.2 ISO_IR 192 long text", () => {
    const bytes = hexList(`
      0x54 0x68 0x65 0x20 0x66 0x69 0x72 0x73 0x74 0x20 0x6c 0x69 0x6e 0x65 0x20
      0x69 0x6e 0x63 0x6c 0x75 0x64 0x65 0x73 0xe4 0xb8 0xad 0xe6 0x96 0x87 0x2e
      0x0d 0x0a 0x54 0x68 0x65 0x20 0x73 0x65 0x63 0x6f 0x6e 0x64 0x20 0x6c 0x69
      0x6e 0x65 0x20 0x69 0x6e 0x63 0x6c 0x75 0x64 0x65 0x73 0xe4 0xb8 0xad 0xe6
      0x96 0x87 0x2c 0x20 0x74 0x6f 0x6f 0x2e 0x0d 0x0a 0x54 0x68 0x65 0x20 0x74
      0x68 0x69 0x72 0x64 0x20 0x6c 0x69 0x6e 0x65 0x2e 0x0d 0x0a`);
    const charsetCodec = codec("ISO_IR 192");
    expect(charsetCodec.encode(longTextInChinese, "LT").toString("hex")).toBe(
      bytes.toString("hex"),
    );
    expect(charsetCodec.decode(bytes, "LT")).toBe(longTextInChinese);
  });

  test("J.3 GB18030 person name", () => {
    const text = "Wang^XiaoDong=王^小东=";
    const bytes = hexList(`
      0x57 0x61 0x6e 0x67 0x5e 0x58 0x69 0x61 0x6f 0x44 0x6f 0x6e 0x67 0x3d 0xcd
      0xf5 0x5e 0xd0 0xa1 0xb6 0xab 0x3d`);
    const charsetCodec = codec("GB18030");
    expect(charsetCodec.encode(text, "PN").toString("hex")).toBe(bytes.toString("hex"));
    expect(charsetCodec.decode(bytes, "PN")).toBe(text);
  });

  test("J.4 GB18030 long text", () => {
    const bytes = hexList(`
      0x54 0x68 0x65 0x20 0x66 0x69 0x72 0x73 0x74 0x20 0x6c 0x69 0x6e 0x65 0x20
      0x69 0x6e 0x63 0x6c 0x75 0x64 0x65 0x73 0xd6 0xd0 0xce 0xc4 0x2e 0x0d 0x0a
      0x54 0x68 0x65 0x20 0x73 0x65 0x63 0x6f 0x6e 0x64 0x20 0x6c 0x69 0x6e 0x65
      0x20 0x69 0x6e 0x63 0x6c 0x75 0x64 0x65 0x73 0xd6 0xd0 0xce 0xc4 0x2c 0x20
      0x74 0x6f 0x6f 0x2e 0x0d 0x0a 0x54 0x68 0x65 0x20 0x74 0x68 0x69 0x72 0x64
      0x20 0x6c 0x69 0x6e 0x65 0x2e 0x0d 0x0a`);
    const charsetCodec = codec("GB18030");
    expect(charsetCodec.encode(longTextInChinese, "LT").toString("hex")).toBe(
      bytes.toString("hex"),
    );
    expect(charsetCodec.decode(bytes, "LT")).toBe(longTextInChinese);
  });

  test("K.2 ISO 2022 IR 58 person name", () => {
    const text = "Zhang^XiaoDong=张^小东=";
    // The listing ends with 0x20, the padding to an even length.
    const padded = hexList(`
      0x5A 0x68 0x61 0x6E 0x67 0x5E 0x58 0x69 0x61 0x6F 0x44 0x6F 0x6E 0x67 0x3D
      0x1B 0x24 0x29 0x41 0xD5 0xC5 0x5E 0x1B 0x24 0x29 0x41 0xD0 0xA1 0xB6 0xAB
      0x3D 0x20`);
    const charsetCodec = codec("\\ISO 2022 IR 58");
    expect(charsetCodec.encode(text, "PN").toString("hex")).toBe(
      padded.subarray(0, -1).toString("hex"),
    );
    expect(charsetCodec.decode(padded, "PN")).toBe(`${text} `);
  });

  test("K.3 ISO 2022 IR 58 long text", () => {
    const text = "1.第一行文字。\r\n2.第二行文字。\r\n3.第三行文字。\r\n";
    const bytes = hexList(`
      0x31 0x2e 0x1B 0x24 0x29 0x41 0xB5 0xDA 0xD2 0xBB 0xD0 0xD0 0xCE 0xC4 0xD7
      0xD6 0xA1 0xA3 0x0D 0x0A 0x32 0x2e 0x1B 0x24 0x29 0x41 0xB5 0xDA 0xB6 0xFE
      0xD0 0xD0 0xCE 0xC4 0xD7 0xD6 0xA1 0xA3 0x0D 0x0A 0x33 0x2e 0x1B 0x24 0x29
      0x41 0xB5 0xDA 0xC8 0xFD 0xD0 0xD0 0xCE 0xC4 0xD7 0xD6 0xA1 0xA3 0x0D 0x0A`);
    const charsetCodec = codec("\\ISO 2022 IR 58");
    expect(charsetCodec.encode(text, "LT").toString("hex")).toBe(bytes.toString("hex"));
    expect(charsetCodec.decode(bytes, "LT")).toBe(text);
  });
});

// ---------------------------------------------------------------------------
// Round trips of replacement text mixed with original name parts
// ---------------------------------------------------------------------------

describe("mixed text round trip", () => {
  const cases: Array<[charset: string, vr: string, text: string]> = [
    ["\\ISO 2022 IR 87", "PN", "ANON0001^Tarou=山田^ANON0001=やまだ^ANON"],
    ["\\ISO 2022 IR 87", "PN", "山田ANON^X太郎Y=やまだ たろう"],
    ["ISO 2022 IR 13\\ISO 2022 IR 87", "PN", "ﾔﾏﾀﾞ^PSEUDO7=山田^PSEUDO7=やまだ^ﾀﾛｳ"],
    ["\\ISO 2022 IR 87\\ISO 2022 IR 159", "PN", "ANON^丂=山田丂^ANON"],
    ["\\ISO 2022 IR 149", "PN", "PAT42^Gildong=洪^ANON=홍^길동"],
    ["\\ISO 2022 IR 149", "LT", "Seen by 홍길동 today.\r\nNext line: 길동\r\n"],
    ["\\ISO 2022 IR 58", "PN", "ANON^XiaoDong=张^小东="],
    ["\\ISO 2022 IR 87\\ISO 2022 IR 149", "LO", "山田 홍길동 ANON"],
    ["ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126", "LO", "Jérôme Люкcембург Διονυσιος X"],
    ["ISO 2022 IR 6\\ISO 2022 IR 166", "SH", "ANON ภาษาไทย"],
    ["\\ISO 2022 IR 87", "LO", "山田\\ANON\\やまだ"],
    ["\\ISO 2022 IR 87", "LT", "path a\\b 山田\tや\fま\nだ\r"],
    ["GB18030", "PN", "ANON^王=王^小东"],
    ["GB18030", "LT", "😀 表 王"],
    ["GBK", "PN", "ANON^王=王^小东"],
    ["ISO_IR 192", "PN", "ANON^Jérôme=山田^太郎=홍^길동😀"],
    ["ISO_IR 100", "PN", "ANON^Jérôme"],
    ["ISO_IR 13", "PN", "ANON^ﾀﾛｳ"],
  ];

  test.each(cases)("%s %s", (charset, vr, text) => {
    const charsetCodec = codec(charset);
    const encoded = charsetCodec.encode(text, vr);
    expect(charsetCodec.decode(encoded, vr)).toBe(text);
    expect(charsetCodec.encode(charsetCodec.decode(encoded, vr), vr).equals(encoded)).toBe(true);
  });

  test("designation returns before each delimiter", () => {
    const encoded = codec("\\ISO 2022 IR 87").encode("山\\ANON^田", "PN");
    expect(encoded.toString("latin1")).toBe("\x1b$B;3\x1b(B\\ANON^\x1b$BED\x1b(B");
  });

  test("G1 designation is repeated after a delimiter", () => {
    const encoded = codec("\\ISO 2022 IR 149").encode("홍=홍", "PN");
    expect(encoded.toString("hex")).toBe("1b242943c8ab3d1b242943c8ab");
  });

  test("backslash in long text is not a delimiter", () => {
    const encoded = codec("\\ISO 2022 IR 87").encode("山\\田", "LT");
    expect(encoded.toString("latin1")).toBe("\x1b$B;3\x1b(B\\\x1b$BED\x1b(B");
  });

  test("space returns to the initial G0", () => {
    const encoded = codec("\\ISO 2022 IR 87").encode("山 田", "LO");
    expect(encoded.toString("latin1")).toBe("\x1b$B;3\x1b(B \x1b$BED\x1b(B");
  });
});

// ---------------------------------------------------------------------------
// Decoder state
// ---------------------------------------------------------------------------

describe("ISO 2022 decoding", () => {
  test("delimiter bytes inside a double-byte set are character bytes", () => {
    // ぼ = 0x245C, 表 = 0x493D and ま = 0x245E contain "\", "=" and "^".
    const charsetCodec = codec("\\ISO 2022 IR 87");
    const bytes = bytesOf("\x1b$B$\\I=$^\x1b(B");
    expect(charsetCodec.decode(bytes, "PN")).toBe("ぼ表ま");
    expect(charsetCodec.encode("ぼ表ま", "PN").equals(bytes)).toBe(true);
  });

  test("caret resets G1 in PN", () => {
    // After "^", no set is designated to G1 again, so 0xB1 0xE8 read as Latin-1.
    const bytes = bytesOf("\x1b$)C", [0xb1, 0xe8], "^", [0xb1, 0xe8]);
    expect(codec("\\ISO 2022 IR 149").decode(bytes, "PN")).toBe("김^±è");
  });

  test("caret does not reset in LO", () => {
    const bytes = bytesOf("\x1b$)C", [0xb1, 0xe8], "^", [0xb1, 0xe8]);
    expect(codec("\\ISO 2022 IR 149").decode(bytes, "LO")).toBe("김^김");
  });

  test("line feed resets in LT", () => {
    const bytes = bytesOf("\x1b$)C", [0xb1, 0xe8], "\n", [0xb1, 0xe8]);
    expect(codec("\\ISO 2022 IR 149").decode(bytes, "LT")).toBe("김\n±è");
  });

  test("backslash resets in SH but not in ST", () => {
    const bytes = bytesOf("\x1b-A", [0xe9], "\\", [0xe9]);
    const charsetCodec = codec("ISO 2022 IR 144\\ISO 2022 IR 100");
    expect(charsetCodec.decode(bytes, "SH")).toBe("é\\щ");
    expect(charsetCodec.decode(bytes, "ST")).toBe("é\\é");
  });

  test("first term's G1 is active at the start", () => {
    const charsetCodec = codec("ISO 2022 IR 144\\ISO 2022 IR 100");
    expect(charsetCodec.decode(Buffer.from([0xe9]), "LO")).toBe("щ");
    expect(charsetCodec.decode(bytesOf("\x1b-A", [0xe9], "\r", [0xe9]), "LT")).toBe("é\rщ");
  });

  test("undeclared set is decoded", () => {
    const bytes = bytesOf("\x1b$B;3ED\x1b(B");
    expect(codec("ISO 2022 IR 6").decode(bytes, "PN")).toBe("山田");
  });

  test("unknown escape sequence throws", () => {
    const error = caught(() => codec("\\ISO 2022 IR 87").decode(bytesOf("A\x1b$@;3"), "PN"));
    expect(error.code).toBe("DICOM_UNSUPPORTED");
    expect(error.message).toContain("escape sequence at byte 1");
    expect(error.hint).toContain("quarantined");
  });

  test("truncated escape sequence throws", () => {
    const error = caught(() => codec("\\ISO 2022 IR 87").decode(bytesOf("A\x1b$"), "PN"));
    expect(error.code).toBe("DICOM_UNSUPPORTED");
  });

  test("invalid pairs decode as U+FFFD", () => {
    const charsetCodec = codec("\\ISO 2022 IR 87");
    expect(charsetCodec.decode(bytesOf("\x1b$B;"), "PN")).toBe("\ufffd");
    const korean = codec("\\ISO 2022 IR 149");
    expect(korean.decode(bytesOf("\x1b$)C", [0xb1, 0x41]), "PN")).toBe("\ufffdA");
  });

  test("GR bytes without G1 decode as Latin-1", () => {
    expect(codec("\\ISO 2022 IR 87").decode(Buffer.from([0x41, 0xe9]), "LO")).toBe("Aé");
  });

  test("double-byte first term starts in ASCII", () => {
    const charsetCodec = codec("ISO 2022 IR 87");
    expect(charsetCodec.decode(bytesOf("AB\x1b$B;3\x1b(B"), "PN")).toBe("AB山");
    expect(charsetCodec.encode("AB山", "PN").toString("latin1")).toBe("AB\x1b$B;3\x1b(B");
  });

  test("KS X 1001 as first term needs no escape", () => {
    const charsetCodec = codec("ISO 2022 IR 149");
    expect(charsetCodec.encode("김", "PN").toString("hex")).toBe("b1e8");
    expect(charsetCodec.decode(Buffer.from([0xb1, 0xe8]), "PN")).toBe("김");
  });
});

// ---------------------------------------------------------------------------
// Sets without code extensions
// ---------------------------------------------------------------------------

describe("single-term codecs", () => {
  test("default repertoire reads Latin-1", () => {
    expect(codec(undefined).decode(Buffer.from([0x41, 0xe9]), "PN")).toBe("Aé");
    expect(codec("").decode(Buffer.from([0x41, 0xe9]), "PN")).toBe("Aé");
  });

  test("default repertoire writes ASCII only", () => {
    expect(codec(undefined).encode("ANON^X", "PN").toString("latin1")).toBe("ANON^X");
    const error = caught(() => codec(undefined).encode("Jérôme", "PN"));
    expect(error.code).toBe("DICOM_UNSUPPORTED");
    expect(error.message).toContain("Character at index 1 of the PN value");
    expect(error.message).toContain("default repertoire");
  });

  test("ISO_IR 6 is the default repertoire", () => {
    expect(codec("ISO_IR 6").decode(Buffer.from([0xe9]), "LO")).toBe("é");
    expect(() => codec("ISO_IR 6").encode("é", "LO")).toThrow(DeidError);
  });

  test("non-sensitive VRs ignore the declared set", () => {
    const charsetCodec = codec("ISO_IR 192");
    expect(charsetCodec.decode(Buffer.from([0xc3, 0xa9]), "CS")).toBe("Ã©");
    expect(charsetCodec.decode(Buffer.from([0xc3, 0xa9]), "LO")).toBe("é");
    expect(() => charsetCodec.encode("é", "CS")).toThrow(DeidError);
    expect(charsetCodec.encode("é", "LO").toString("hex")).toBe("c3a9");
  });

  test("ISO_IR 13 reads Shift_JIS kanji", () => {
    const charsetCodec = codec("ISO_IR 13");
    expect(charsetCodec.decode(Buffer.from([0x8e, 0x52, 0xd4]), "PN")).toBe("山ﾔ");
    expect(charsetCodec.encode("ﾔﾏﾀﾞ^A", "PN").toString("hex")).toBe("d4cfc0de5e41");
    expect(() => charsetCodec.encode("山", "PN")).toThrow(DeidError);
  });

  test("ISO_IR 100 keeps C1 bytes", () => {
    const bytes = Buffer.from([0x4f, 0x92, 0x42]);
    const charsetCodec = codec("ISO_IR 100");
    expect(charsetCodec.decode(bytes, "PN")).toBe("O\u0092B");
    expect(charsetCodec.encode("O\u0092B", "PN").equals(bytes)).toBe(true);
  });

  test("ISO_IR 166 unassigned byte is U+FFFD", () => {
    expect(codec("ISO_IR 166").decode(Buffer.from([0xdb]), "LO")).toBe("\ufffd");
  });

  test("UTF-8 keeps a byte order mark", () => {
    const bytes = Buffer.from([0xef, 0xbb, 0xbf, 0x41]);
    const charsetCodec = codec("ISO_IR 192");
    expect(charsetCodec.decode(bytes, "LT")).toBe("\ufeffA");
    expect(charsetCodec.encode("\ufeffA", "LT").equals(bytes)).toBe(true);
  });

  test("invalid UTF-8 decodes as U+FFFD", () => {
    expect(codec("ISO_IR 192").decode(Buffer.from([0x41, 0xff]), "LO")).toBe("A\ufffd");
  });

  test("GBK second byte 0x5C is no delimiter", () => {
    // 乗 is 0x81 0x5C in GBK, so splitting the bytes on "\" would cut it in half.
    const charsetCodec = codec("GBK");
    const encoded = charsetCodec.encode("乗\\乗", "LO");
    expect(encoded.toString("hex")).toBe("815c5c815c");
    expect(charsetCodec.decode(encoded, "LO").split("\\")).toEqual(["乗", "乗"]);
  });

  test("GBK rejects characters outside GBK", () => {
    const error = caught(() => codec("GBK").encode("A😀", "LO"));
    expect(error.code).toBe("DICOM_UNSUPPORTED");
    expect(error.message).toContain("Character at index 1 of the LO value");
    expect(() => codec("GBK").encode("€", "LO")).toThrow(DeidError);
    expect(codec("GBK").encode("A?", "LO").toString("latin1")).toBe("A?");
  });
});

// ---------------------------------------------------------------------------
// Terms, errors and memoization
// ---------------------------------------------------------------------------

describe("terms", () => {
  test("sensitive VRs", () => {
    expect([...CHARSET_SENSITIVE_VRS].sort()).toEqual(["LO", "LT", "PN", "SH", "ST", "UC", "UT"]);
  });

  test("terms are kept as declared", () => {
    expect(codec(undefined).terms).toEqual([]);
    expect(codec(" ").terms).toEqual([]);
    expect(codec("ISO_IR 100 ").terms).toEqual(["ISO_IR 100"]);
    expect(codec("\\ISO 2022 IR 87 ").terms).toEqual(["", "ISO 2022 IR 87"]);
    expect(codec("ISO 2022 IR 6\\ISO 2022 IR 87").terms).toEqual([
      "ISO 2022 IR 6",
      "ISO 2022 IR 87",
    ]);
  });

  test("codecs are memoized", () => {
    expect(codec("ISO_IR 100")).toBe(codec("ISO_IR 100"));
    expect(codec(undefined)).toBe(codec(""));
  });

  test("spelling variants are accepted", () => {
    expect(codec("ISO-IR 100").decode(Buffer.from([0xe9]), "PN")).toBe("é");
    expect(codec("iso_ir_144").decode(Buffer.from([0xe9]), "PN")).toBe("щ");
    expect(codec("\\ISO2022 IR 87").decode(bytesOf("\x1b$B;3\x1b(B"), "PN")).toBe("山");
  });

  test("single-byte term in a list acts as ISO 2022", () => {
    const charsetCodec = codec("ISO_IR 13\\ISO 2022 IR 87");
    const text = "ﾔﾏﾀﾞ^ﾀﾛｳ=山田";
    const expected = codec("ISO 2022 IR 13\\ISO 2022 IR 87").encode(text, "PN");
    expect(charsetCodec.encode(text, "PN").equals(expected)).toBe(true);
  });

  test("every defined term builds a codec", () => {
    const singleByte = [100, 101, 109, 110, 144, 127, 126, 138, 148, 203, 13, 166];
    const terms = [
      ...singleByte.map((number) => `ISO_IR ${number}`),
      ...[6, ...singleByte, 87, 159, 149, 58].map((number) => `ISO 2022 IR ${number}`),
      "ISO_IR 192",
      "GB18030",
      "GBK",
    ];
    for (const term of terms) {
      const charsetCodec = codec(term);
      expect(charsetCodec.encode("ANON^1", "PN").toString("latin1"), term).toBe("ANON^1");
    }
  });

  test("unknown term throws", () => {
    const error = caught(() => codec("ISO_IR 999"));
    expect(error.code).toBe("DICOM_UNSUPPORTED");
    // The term comes from the file and could be anything, a name included, so it is not quoted.
    expect(error.message).not.toContain("ISO_IR 999");
    expect(error.message).toContain("10-character term");
    expect(error.hint).toContain("quarantined");
    expect(error.hint).toContain("ISO 2022 IR 87");
  });

  test("unknown term in a list throws", () => {
    const error = caught(() => codec("\\ISO 2022 IR 87\\KOI8-R"));
    expect(error.code).toBe("DICOM_UNSUPPORTED");
    expect(error.message).not.toContain("KOI8-R");
  });

  test("ISO_IR 87 is not a defined term", () => {
    expect(() => codec("\\ISO_IR 87")).toThrow(DeidError);
  });

  test("UTF-8 with code extensions throws", () => {
    const error = caught(() => codec("ISO_IR 192\\ISO 2022 IR 87"));
    expect(error.code).toBe("DICOM_UNSUPPORTED");
    expect(error.message).toContain('"ISO_IR 192"');
    expect(() => codec("\\GB18030")).toThrow(DeidError);
  });

  test("long term is cut in the message", () => {
    const error = caught(() => codec("X".repeat(500)));
    expect(error.message.length).toBeLessThan(200);
  });
});

describe("encoding errors", () => {
  test("unencodable character names its index only", () => {
    const error = caught(() => codec("\\ISO 2022 IR 87").encode("ANON^Jérôme", "PN"));
    expect(error.code).toBe("DICOM_UNSUPPORTED");
    expect(error.message).toBe(
      'Character at index 6 of the PN value cannot be encoded in Specific Character Set "\\ISO 2022 IR 87"',
    );
    expect(error.message).not.toContain("J");
  });

  test("unencodable in a single-byte set", () => {
    const error = caught(() => codec("ISO_IR 100").encode("Люк", "PN"));
    expect(error.message).toContain("Character at index 0 of the PN value");
    expect(error.message).toContain('"ISO_IR 100"');
  });

  test("ESC in text throws", () => {
    for (const charset of [undefined, "ISO_IR 100", "ISO_IR 192", "\\ISO 2022 IR 87"]) {
      const error = caught(() => codec(charset).encode("A\x1b$B", "LO"));
      expect(error.code, String(charset)).toBe("DICOM_UNSUPPORTED");
      expect(error.message, String(charset)).toContain("ESC");
    }
  });

  test("unpaired surrogate throws", () => {
    for (const charset of ["ISO_IR 192", "GB18030", "GBK", "\\ISO 2022 IR 87"]) {
      const error = caught(() => codec(charset).encode("AB\ud800", "LO"));
      expect(error.message, charset).toContain("Character at index 2 of the LO value");
    }
  });

  test("JIS X 0208 vendor rows are not written", () => {
    // ① is in NEC row 13, outside JIS X 0208, so it decodes but does not encode.
    const charsetCodec = codec("\\ISO 2022 IR 87");
    expect(charsetCodec.decode(bytesOf("\x1b$B-!\x1b(B"), "LO")).toBe("①");
    expect(() => charsetCodec.encode("①", "LO")).toThrow(DeidError);
  });

  test("Windows mapping of JIS X 0208 is accepted", () => {
    const charsetCodec = codec("\\ISO 2022 IR 87");
    const expected = bytesOf("\x1b$B!A\x1b(B");
    expect(charsetCodec.encode("\uff5e", "LO").equals(expected)).toBe(true);
    expect(charsetCodec.encode("\u301c", "LO").equals(expected)).toBe(true);
    expect(charsetCodec.decode(expected, "LO")).toBe("\u301c");
  });
});

// ---------------------------------------------------------------------------
// Whole code tables against the Python codecs that pydicom uses
// ---------------------------------------------------------------------------

/**
 * Prints the character of every code position, or -1 where Python's codec
 * rejects it, for the codecs that pydicom 2.3 maps each term to. pydicom 2.3
 * has no entry for ISO_IR 203, so Python's iso8859_15 is used for it.
 */
const PYTHON_TABLES_SCRIPT = String.raw`
import json
from pydicom.charset import python_encoding
def char_of(data, codec):
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return -1
    return ord(text) if len(text) == 1 else -1
single = {}
for term in ["ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144", "ISO_IR 127",
             "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 203", "ISO_IR 166", "ISO_IR 13"]:
    codec = python_encoding.get(term, "iso8859_15")
    single[term] = [char_of(bytes([b]), codec) for b in range(256)]
pairs = [(r, c) for r in range(0x21, 0x7f) for c in range(0x21, 0x7f)]
double = {
    "ISO 2022 IR 87": [char_of(b"\x1b$B" + bytes(p) + b"\x1b(B", python_encoding["ISO 2022 IR 87"]) for p in pairs],
    "ISO 2022 IR 159": [char_of(b"\x1b$(D" + bytes(p) + b"\x1b(B", python_encoding["ISO 2022 IR 159"]) for p in pairs],
    "ISO 2022 IR 149": [char_of(bytes([r | 0x80, c | 0x80]), python_encoding["ISO 2022 IR 149"]) for r, c in pairs],
    "ISO 2022 IR 58": [char_of(bytes([r | 0x80, c | 0x80]), python_encoding["ISO 2022 IR 58"]) for r, c in pairs],
}
two_byte = [bytes([a, b]) for a in range(0x81, 0xff) for b in range(0x40, 0xff) if b != 0x7f]
multi = {}
for term in ["GB18030", "GBK"]:
    multi[term] = {d.hex(): char_of(d, python_encoding[term]) for d in two_byte}
sample = [cp for cp in range(0x80, 0x110000, 101) if not 0xd800 <= cp <= 0xdfff]
four_byte = {cp: chr(cp).encode("gb18030").hex() for cp in sample}
print(json.dumps({"single": single, "double": double, "multi": multi, "gb18030": four_byte}))
`;

interface PythonTables {
  single: Record<string, number[]>;
  double: Record<string, number[]>;
  multi: Record<string, Record<string, number>>;
  gb18030: Record<string, string>;
}

const codePointOf = (text: string) => text.codePointAt(0) ?? -1;

describeWithPydicom("code tables against Python", () => {
  let tables: PythonTables;

  beforeAll(() => {
    tables = runPython<PythonTables>(PYTHON_TABLES_SCRIPT);
  });

  const singleByteTerms = [100, 101, 109, 110, 144, 127, 126, 138, 148, 203, 166].map(
    (number) => `ISO_IR ${number}`,
  );

  test.each(singleByteTerms)("%s matches Python", (term) => {
    const charsetCodec = codec(term);
    const allBytes = Buffer.from(Array.from({ length: 256 }, (_, byte) => byte));
    const decoded = [...charsetCodec.decode(allBytes, "LT")].map(codePointOf);
    const python = tables.single[term].map((character) => (character < 0 ? 0xfffd : character));
    expect(decoded).toEqual(python);
    for (let byte = 0x80; byte < 0x100; byte++) {
      if (python[byte] === 0xfffd) continue;
      const encoded = charsetCodec.encode(String.fromCodePoint(python[byte]), "LT");
      expect([...encoded], `${term} 0x${byte.toString(16)}`).toEqual([byte]);
    }
  });

  test("ISO_IR 13 matches Python's Shift_JIS single bytes", () => {
    const charsetCodec = codec("ISO_IR 13");
    const python = tables.single["ISO_IR 13"];
    let compared = 0;
    for (let byte = 0; byte < 256; byte++) {
      if (python[byte] < 0) continue;
      compared++;
      const character = String.fromCodePoint(python[byte]);
      expect(charsetCodec.decode(Buffer.from([byte]), "LT"), `0x${byte.toString(16)}`).toBe(
        character,
      );
      // ESC is never encodable, see "ESC in text throws".
      if (byte !== 0x1b) expect([...charsetCodec.encode(character, "LT")]).toEqual([byte]);
    }
    expect(compared).toBe(128 + 63);
  });

  interface DoubleByteCase {
    term: string;
    /** Designation escape sequence. */
    escape: string;
    /** Whether the set is designated to G1, so its bytes have the high bit set. */
    g1: boolean;
    /** 7-bit codes where the decoded character deliberately differs from Python's. */
    differences: number[];
    /** Number of positions that Python rejects but that decode here. */
    extraDecodable: number;
    /** 7-bit codes whose Python character is not written at that position. */
    notWrittenAtOwnPosition: number[];
  }

  const doubleByteCases: DoubleByteCase[] = [
    // Rows 13 and 89-92 contain NEC and IBM extensions.
    {
      term: "ISO 2022 IR 87",
      escape: "\x1b$B",
      g1: false,
      differences: [],
      extraDecodable: 457,
      notWrittenAtOwnPosition: [],
    },
    // 0x2237 is U+007E in Python. Here it is U+FF5E, because U+007E is
    // ASCII "~" and is written in G0 ISO-IR 6.
    {
      term: "ISO 2022 IR 159",
      escape: "\x1b$(D",
      g1: false,
      differences: [0x2237],
      extraDecodable: 0,
      notWrittenAtOwnPosition: [0x2237],
    },
    // 0x2454 is HANGUL FILLER.
    {
      term: "ISO 2022 IR 149",
      escape: "\x1b$)C",
      g1: true,
      differences: [],
      extraDecodable: 1,
      notWrittenAtOwnPosition: [],
    },
    // 0x2124 and 0x212A follow GB 18030. The 33 extras are GBK additions.
    {
      term: "ISO 2022 IR 58",
      escape: "\x1b$)A",
      g1: true,
      differences: [0x2124, 0x212a],
      extraDecodable: 33,
      notWrittenAtOwnPosition: [],
    },
  ];

  const positions: number[] = [];
  for (let first = 0x21; first <= 0x7e; first++) {
    for (let second = 0x21; second <= 0x7e; second++) positions.push((first << 8) | second);
  }

  test.each(doubleByteCases)("$term matches Python", (testCase) => {
    const charsetCodec = codec(`\\${testCase.term}`);
    const escape = Buffer.from(testCase.escape, "latin1");
    const high = testCase.g1 ? 0x80 : 0;
    const pairs = positions.flatMap((code) => [(code >> 8) | high, (code & 0xff) | high]);
    const decoded = [...charsetCodec.decode(Buffer.concat([escape, Buffer.from(pairs)]), "LT")];
    expect(decoded.length).toBe(positions.length);

    const python = tables.double[testCase.term];
    const differences: number[] = [];
    let extraDecodable = 0;
    positions.forEach((code, index) => {
      const mine = codePointOf(decoded[index]);
      if (python[index] < 0) {
        if (mine !== 0xfffd) extraDecodable++;
      } else if (mine !== python[index]) {
        differences.push(code);
      }
    });
    expect(differences).toEqual(testCase.differences);
    expect(extraDecodable).toBe(testCase.extraDecodable);

    /** Returns the 7-bit code the encoder wrote for one character, or -1 if none. */
    const writtenCode = (encoded: Buffer) => {
      if (!encoded.subarray(0, escape.length).equals(escape)) return -1;
      const [first, second] = encoded.subarray(escape.length);
      return ((first & 0x7f) << 8) | (second & 0x7f);
    };

    // Python's characters are written at their own position, and the encoder
    // never writes a position that Python rejects.
    const notWrittenAtOwnPosition: number[] = [];
    positions.forEach((code, index) => {
      for (const character of new Set([python[index], codePointOf(decoded[index])])) {
        if (character < 0 || character === 0xfffd) continue;
        let written: number;
        try {
          written = writtenCode(charsetCodec.encode(String.fromCodePoint(character), "LT"));
        } catch {
          expect(python[index], `0x${code.toString(16)} has a Python character`).toBe(-1);
          continue;
        }
        if (written >= 0) {
          const writtenIndex = positions.indexOf(written);
          expect(python[writtenIndex], `0x${written.toString(16)}`).toBeGreaterThanOrEqual(0);
        }
        if (character === python[index] && written !== code) notWrittenAtOwnPosition.push(code);
      }
    });
    expect(notWrittenAtOwnPosition).toEqual(testCase.notWrittenAtOwnPosition);
  });

  test.each([
    // 0xA3A0 and 0xA8BC map to U+3000 and U+1E3F (GB 18030-2005) in
    // iconv-lite, to private-use characters in Python.
    { term: "GB18030", differences: ["a3a0", "a8bc"] },
    { term: "GBK", differences: [] },
  ])("$term two-byte codes match Python", ({ term, differences }) => {
    const charsetCodec = codec(term);
    const found: string[] = [];
    let compared = 0;
    for (const [hex, character] of Object.entries(tables.multi[term])) {
      if (character < 0) continue;
      compared++;
      const bytes = Buffer.from(hex, "hex");
      const decoded = charsetCodec.decode(bytes, "LT");
      if (decoded !== String.fromCodePoint(character)) {
        found.push(hex);
        continue;
      }
      expect(charsetCodec.encode(decoded, "LT").toString("hex"), hex).toBe(hex);
    }
    expect(found).toEqual(differences);
    expect(compared).toBeGreaterThan(20000);
  });

  test("GB18030 four-byte codes match Python", () => {
    const charsetCodec = codec("GB18030");
    let compared = 0;
    for (const [codePoint, hex] of Object.entries(tables.gb18030)) {
      const text = String.fromCodePoint(Number(codePoint));
      expect(charsetCodec.encode(text, "LT").toString("hex"), codePoint).toBe(hex);
      expect(charsetCodec.decode(Buffer.from(hex, "hex"), "LT"), codePoint).toBe(text);
      compared++;
    }
    expect(compared).toBeGreaterThan(10000);
  });
});
