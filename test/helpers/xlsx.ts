// Workbooks for the XLSX tests, built and read with Python's zipfile and
// openpyxl (Debian python3-openpyxl), readers independent of deidkit.

import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { deflateRawSync } from "node:zlib";

export const SYSTEM_PYTHON = "/usr/bin/python3";

/** True when /usr/bin/python3 can import openpyxl and PIL. */
export function hasOpenpyxl(): boolean {
  try {
    execFileSync(SYSTEM_PYTHON, ["-c", "import openpyxl, PIL"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function runPython(script: string, args: readonly string[], input?: string): string {
  return execFileSync(SYSTEM_PYTHON, ["-c", script, ...args], { encoding: "utf8", input, maxBuffer: 256 * 1024 * 1024 });
}

/**
 * Builds a workbook with an identifier planted in every place the format
 * allows. The first sheet is named after the patient. It has identifier
 * columns (IDs as numbers and text, names, birth and plan dates as serials
 * and text, reviewers), free text, a rich text run split inside a name,
 * and formulas with string literals and references to itself. It also has
 * a defined name, header and footer, a note with its author, a threaded
 * comment with its person, a data validation, and hyperlinks to a file
 * path and to the sheet. The second sheet has a chart, a table and a
 * picture. The third is hand-written XML with inline strings, formula
 * string results and serial dates. The package adds document properties
 * (core, app, custom), a thumbnail, printer settings and the user who
 * reserved the file.
 */
const BUILD_PLANTED = String.raw`
import sys, zipfile, io, datetime, re
from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.chart import BarChart, Reference
from openpyxl.drawing.image import Image as XLImage
from openpyxl.worksheet.table import Table
from PIL import Image

out = sys.argv[1]
wb = Workbook()
ws = wb.active
ws.title = "Jane Doe"
ws.append(["patient_id", "Patient Name", "DOB", "plan_date", "reviewer_name", "dose_gy", "notes", "formula", "ref"])
ws.append([12345678, "DOE^JANE^M", datetime.date(1947, 3, 16), datetime.date(2019, 4, 12), "SMITH^JOHN", 60.0, "Seen by Jane Doe on 2019-04-12", '="Patient "&B2&" Jane Doe"', "='Jane Doe'!F2*2"])
ws.append(["12345678", "Jane Doe", "1947-03-16", "2019-04-12", "Nguyen, Linh", 2.0, "RICHTEXT", None, "=SUM(F2:F3)"])
ws.append([None, None, None, None, None, 1.5, "plain note", None, None])
ws.oddHeader.center.text = "Patient Jane Doe"
ws.oddFooter.left.text = "MRN 12345678"
ws["G2"].comment = Comment("John Smith:\nCheck 12345678 with Jane Doe", "John Smith")
dv = DataValidation(type="list", formula1='"Jane Doe,Other"', prompt="Enter ID like 12345678", promptTitle="Doe", error="not Jane Doe", errorTitle="x", allow_blank=True)
ws.add_data_validation(dv)
dv.add("G4")
ws["K6"] = "link"
ws["K6"].hyperlink = "file:///C:/Users/jdoe/Patients/12345678/Jane_Doe_plan.xlsx"
ws["L6"] = "internal"
ws["L6"].hyperlink = "#'Jane Doe'!A1"
wb.defined_names.append(DefinedName("PatientRows", attr_text="'Jane Doe'!$A$1:$I$3"))

summary = wb.create_sheet("Summary")
summary.append(["course", "dose"])
summary.append(["C1_2019", 60])
summary.append(["C2_2021", 50])
summary.add_table(Table(displayName="Doses", ref="A1:B3"))
chart = BarChart()
chart.title = "Doses for Jane Doe"
chart.add_data(Reference(ws, min_col=6, min_row=1, max_row=3), titles_from_data=True)
chart.set_categories(Reference(ws, min_col=2, min_row=2, max_row=3))
summary.add_chart(chart, "D2")
picture = io.BytesIO()
Image.new("RGB", (4, 4), (200, 10, 10)).save(picture, "PNG")
picture.seek(0)
summary.add_image(XLImage(picture), "D20")

wb.create_sheet("Raw")["A1"] = "placeholder"

wb.properties.creator = "John Smith"
wb.properties.lastModifiedBy = "Linh Nguyen"
wb.properties.title = "Plan review 12345678"
wb.properties.subject = "Jane Doe"
wb.properties.description = "DOB 1947-03-16"
wb.properties.keywords = "12345678"
wb.properties.created = datetime.datetime(2019, 4, 12, 9, 30, 0)
wb.save(out)

with zipfile.ZipFile(out) as source:
    members = {name: source.read(name) for name in source.namelist()}

def text(name):
    return members[name].decode("utf-8")

def put(name, value):
    members[name] = value.encode("utf-8") if isinstance(value, str) else value

# This openpyxl writes inline strings; sheets 1 and 2 get a shared string table instead, as Excel writes.
shared = []
def to_shared(match):
    value = match.group(2)
    if value not in shared:
        shared.append(value)
    return '%s t="s"><v>%d</v></c>' % (match.group(1), shared.index(value))
for name in ("xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"):
    put(name, re.sub(r'(<c r="[A-Z]+\d+"(?: s="\d+")?) t="inlineStr"><is><t>([^<]*)</t></is></c>', to_shared, text(name)))
items = []
for value in shared:
    if value == "RICHTEXT":
        items.append('<si><r><rPr><b/></rPr><t xml:space="preserve">Reviewed with Jane </t></r><r><t>Doe today</t></r></si>')
    else:
        items.append("<si><t>%s</t></si>" % value)
put("xl/sharedStrings.xml", '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="%d" uniqueCount="%d">%s</sst>' % (len(items), len(items), "".join(items)))

sheet1 = text("xl/worksheets/sheet1.xml")
date_style = re.search(r'<c r="C2" s="(\d+)"', sheet1).group(1)
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
sheet1 = re.sub(r'(<pageMargins[^>]*/>)', r'\1<pageSetup xmlns:r="%s" orientation="portrait" r:id="rIdPrinter"/>' % R, sheet1, count=1)
put("xl/worksheets/sheet1.xml", sheet1)
rels1 = text("xl/worksheets/_rels/sheet1.xml.rels").replace("</Relationships>",
    '<Relationship Id="rIdPrinter" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/printerSettings" Target="../printerSettings/printerSettings1.bin"/>'
    '<Relationship Id="rIdThread" Type="http://schemas.microsoft.com/office/2017/10/relationships/threadedComment" Target="../threadedComments/threadedComment1.xml"/></Relationships>')
put("xl/worksheets/_rels/sheet1.xml.rels", rels1)
put("xl/printerSettings/printerSettings1.bin", "\\\\RIVERSIDE-PC\\Printer of Jane Doe".encode("utf-16-le") + bytes(64))

put("xl/threadedComments/threadedComment1.xml",
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<ThreadedComments xmlns="http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments">'
    '<threadedComment ref="G3" dT="2019-04-12T10:00:00.00" personId="{11111111-1111-1111-1111-111111111111}" id="{22222222-2222-2222-2222-222222222222}">'
    '<text>@John Smith please check Jane Doe, MRN 12345678</text>'
    '<mentions><mention mentionpersonId="{11111111-1111-1111-1111-111111111111}" mentionId="{33333333-3333-3333-3333-333333333333}" startIndex="0" length="11"/></mentions>'
    '</threadedComment></ThreadedComments>')
put("xl/persons/person.xml",
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<personList xmlns="http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments">'
    '<person displayName="John Smith" id="{11111111-1111-1111-1111-111111111111}" userId="jsmith@riverside.example" providerId="AD"/></personList>')
put("xl/_rels/workbook.xml.rels", text("xl/_rels/workbook.xml.rels").replace("</Relationships>",
    '<Relationship Id="rIdPersons" Type="http://schemas.microsoft.com/office/2017/10/relationships/person" Target="persons/person.xml"/>'
    '<Relationship Id="rIdStrings" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>'))
put("xl/workbook.xml", re.sub(r"(<workbookPr)", r'<fileSharing userName="John Smith"/>\1', text("xl/workbook.xml"), count=1))
put("docProps/app.xml", text("docProps/app.xml").replace("</Properties>",
    "<TitlesOfParts><vt:vector xmlns:vt=\"http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes\" size=\"3\" baseType=\"lpstr\">"
    "<vt:lpstr>Jane Doe</vt:lpstr><vt:lpstr>Summary</vt:lpstr><vt:lpstr>Raw</vt:lpstr></vt:vector></TitlesOfParts>"
    "<Manager>Alice Jones</Manager><Company>Riverside Cancer Centre</Company></Properties>"))
put("docProps/custom.xml",
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="Patient"><vt:lpwstr>Jane Doe 12345678</vt:lpwstr></property>'
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="3" name="MRN"><vt:i4>12345678</vt:i4></property>'
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="4" name="Visit"><vt:filetime>2019-04-12T09:00:00Z</vt:filetime></property>'
    '</Properties>')
thumbnail = io.BytesIO()
Image.new("RGB", (8, 8), (0, 0, 255)).save(thumbnail, "JPEG")
put("docProps/thumbnail.jpeg", thumbnail.getvalue())
put("_rels/.rels", text("_rels/.rels").replace("</Relationships>",
    '<Relationship Id="rIdCustom" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties" Target="docProps/custom.xml"/>'
    '<Relationship Id="rIdThumb" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail" Target="docProps/thumbnail.jpeg"/></Relationships>'))

raw_data = (
    '<sheetData>'
    '<row r="1"><c r="A1" t="inlineStr"><is><t>MRN</t></is></c><c r="B1" t="inlineStr"><is><t>name</t></is></c><c r="C1" t="inlineStr"><is><t>treatment_date</t></is></c><c r="D1" t="inlineStr"><is><t>comment</t></is></c><c r="E1" t="inlineStr"><is><t>when</t></is></c></row>'
    '<row r="2"><c r="A2"><v>1.2345678E7</v></c><c r="B2" t="inlineStr"><is><r><t>Jane</t></r><r><rPr><i/></rPr><t xml:space="preserve"> Doe</t></r></is></c>'
    '<c r="C2"><v>20190412</v></c><c r="D2" t="str"><f>"MRN "&amp;A2</f><v>MRN 12345678</v></c>'
    '<c r="E2" s="%s"><v>43567.375</v></c></row>'
    '<row r="3"><c r="A3" t="inlineStr"><is><t>12345678</t></is></c><c r="B3"><v>19470316</v></c><c r="C3" t="inlineStr"><is><t>12.04.2019</t></is></c><c r="D3"><v>12345678</v></c><c r="E3" t="b"><v>1</v></c></row>'
    '</sheetData>') % date_style
raw_sheet = re.sub(r"<sheetData>.*?</sheetData>|<sheetData/>", raw_data, text("xl/worksheets/sheet3.xml"), count=1, flags=re.S)
put("xl/worksheets/sheet3.xml", re.sub(r'<dimension ref="[^"]*"/>', '<dimension ref="A1:E3"/>', raw_sheet))

put("[Content_Types].xml", text("[Content_Types].xml").replace("</Types>",
    '<Default Extension="bin" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.printerSettings"/>'
    '<Default Extension="jpeg" ContentType="image/jpeg"/>'
    '<Override PartName="/xl/threadedComments/threadedComment1.xml" ContentType="application/vnd.ms-excel.threadedcomments+xml"/>'
    '<Override PartName="/xl/persons/person.xml" ContentType="application/vnd.ms-excel.person+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    '<Override PartName="/docProps/custom.xml" ContentType="application/vnd.openxmlformats-officedocument.custom-properties+xml"/>'
    '</Types>'))

with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
    for name, data in members.items():
        target.writestr(name, data)
`;

export function buildPlantedWorkbook(path: string): void {
  runPython(BUILD_PLANTED, [path]);
}

/** Every identifier in the planted workbook, in the forms it has there. */
export const PLANTED_IDENTIFIERS = [
  "12345678",
  "1.2345678E7",
  "Jane",
  "Doe",
  "DOE^JANE^M",
  "1947-03-16",
  "19470316",
  "17242",
  "2019-04-12",
  "20190412",
  "12.04.2019",
  "43567",
  "SMITH",
  "John Smith",
  "Nguyen",
  "Linh",
  "Alice Jones",
  "Riverside",
  "jsmith",
  "jdoe",
  "RIVERSIDE-PC",
];

const EDIT_MEMBERS = String.raw`
import sys, json, zipfile, base64
source, target = sys.argv[1], sys.argv[2]
edits = json.loads(sys.stdin.read())
with zipfile.ZipFile(source) as archive:
    members = [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
members = [(name, data) for name, data in members if name not in edits.get("remove", [])]
names = [name for name, _ in members]
for name, value in edits.get("set", {}).items():
    data = base64.b64decode(value)
    if name in names:
        members[names.index(name)] = (name, data)
    else:
        members.append((name, data))
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
    for name, data in members:
        archive.writestr(name, data)
`;

export interface MemberEdits {
  /** Members to add or replace, by name. */
  set?: Record<string, string | Buffer>;
  remove?: string[];
}

/** Copies a workbook with members added, replaced or removed (with Python's zipfile). */
export function editMembers(source: string, target: string, edits: MemberEdits): void {
  const set: Record<string, string> = {};
  for (const [name, value] of Object.entries(edits.set ?? {})) set[name] = Buffer.from(value).toString("base64");
  runPython(EDIT_MEMBERS, [source, target], JSON.stringify({ set, remove: edits.remove ?? [] }));
}

const READ_MEMBERS = String.raw`
import sys, json, zipfile, base64
with zipfile.ZipFile(sys.argv[1]) as archive:
    print(json.dumps({info.filename: base64.b64encode(archive.read(info.filename)).decode() for info in archive.infolist()}))
`;

/** Reads the inflated bytes of every member with Python's zipfile. */
export function readMembers(path: string): Map<string, Buffer> {
  const members = JSON.parse(runPython(READ_MEMBERS, [path])) as Record<string, string>;
  return new Map(Object.entries(members).map(([name, value]) => [name, Buffer.from(value, "base64")]));
}

const READ_WORKBOOK = String.raw`
import sys, json, datetime, openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
def show(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return "date:" + value.isoformat()
    return value
print(json.dumps({
    "sheets": [{"title": ws.title, "dimensions": ws.dimensions, "rows": [[show(cell.value) for cell in row] for row in ws.iter_rows()]} for ws in wb],
    "definedNames": [[name.name, name.attr_text] for name in wb.defined_names.definedName],
    "creator": wb.properties.creator,
    "title": wb.properties.title,
}))
`;

export type CellValue = string | number | boolean | null;

export interface WorkbookView {
  sheets: Array<{ title: string; dimensions: string; rows: CellValue[][] }>;
  definedNames: Array<[string, string]>;
  creator: string | null;
  title: string | null;
}

/** Opens a workbook with openpyxl and returns its sheets, cell values (dates as "date:ISO"), defined names and properties. */
export function readWorkbook(path: string): WorkbookView {
  return JSON.parse(runPython(READ_WORKBOOK, [path])) as WorkbookView;
}

export interface RawMember {
  name: string;
  data: Buffer;
  /** Uncompressed size written in the headers; defaults to the true size. */
  declaredSize?: number;
  /** Store without compression instead of deflating. */
  stored?: boolean;
}

/**
 * Writes a zip file by hand, so that tests can state sizes the data does
 * not have (a zip bomb's headers) or write thousands of members quickly.
 */
export async function writeRawZip(path: string, members: readonly RawMember[]): Promise<void> {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const member of members) {
    const name = Buffer.from(member.name, "utf8");
    const data = member.stored ? member.data : deflateRawSync(member.data);
    const method = member.stored ? 0 : 8;
    const size = member.declaredSize ?? member.data.length;
    const crc = crc32(member.data);

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(0x00210000, 10);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, data);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(0x00210000, 12);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);

    offset += local.length + name.length + data.length;
  }

  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  await writeFile(path, Buffer.concat([...locals, directory, end]));
}

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}
