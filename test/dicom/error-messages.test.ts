import { describe, expect, test } from "vitest";

import { DicomParseError } from "../../src/errors.js";
import { parseDataset } from "../../src/dicom/reader.js";
import { BufferSource } from "../../src/dicom/source.js";

const EXPLICIT_LE = { littleEndian: true, explicitVr: true };

function parseError(bytes: Buffer): DicomParseError {
  try {
    parseDataset(new BufferSource(bytes), EXPLICIT_LE);
  } catch (error) {
    return error as DicomParseError;
  }
  throw new Error("expected a parse error");
}

describe("parse error messages", () => {
  test("a tag made of name bytes is not shown", () => {
    // Group 6F5A and element 6272 read back as the bytes "Zorb".
    const bytes = Buffer.concat([Buffer.from("ZorbQQ", "latin1"), Buffer.alloc(2)]);
    const error = parseError(bytes);
    expect(error).toBeInstanceOf(DicomParseError);
    expect(error.message).not.toMatch(/6F5A|6272/i);
    expect(error.message).toContain("an unlisted tag");
  });

  test("a dictionary tag is named", () => {
    const bytes = Buffer.concat([Buffer.from([0x10, 0x00, 0x10, 0x00]), Buffer.from("QQ", "latin1"), Buffer.alloc(2)]);
    expect(parseError(bytes).message).toContain("(0010,0010)");
  });
});
