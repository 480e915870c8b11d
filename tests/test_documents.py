"""The text and links of PDF, .docx and legacy .doc attachments, read from real documents made here.

The PDFs are written by hand (a Helvetica text stream) and through pypdf, the .docx by python-docx, and the
.doc as Word 97 lays it out: a compound file ([MS-CFB]) holding a WordDocument stream with its FIB and text,
and a table stream with the piece table ([MS-DOC]). Where antiword is installed it reads the same .doc, so
the hand-made file is checked against a reader that is not ours.
"""
from __future__ import annotations

import io
import random
import shutil
import struct
import subprocess
import sys
import zipfile

import docx
import pypdf
import pytest
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf.annotations import Link

from filters.documents import DocumentReading, read_document

# -- makers ------------------------------------------------------------------------------------------------


def make_pdf(pages: list[str]) -> bytes:
    """A PDF with one line of Helvetica text on each page, its cross-reference table computed."""
    count = len(pages)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))
        + b"] /Count %d >>" % count,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for index, line in enumerate(pages):
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("cp1252")
        stream = b"BT /F1 12 Tf 72 720 Td (" + escaped + b") Tj ET"
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
                       b" /Contents %d 0 R >>" % (5 + 2 * index))
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def through_pypdf(data: bytes, *, url: str | None = None, user_password: str | None = None,
                  owner_password: str | None = None, algorithm: str = "RC4-128") -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    if url:
        writer.add_annotation(page_number=0, annotation=Link(rect=(72, 700, 300, 740), url=url))
    if user_password is not None:
        writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def add_hyperlink(paragraph, url: str, words: str) -> None:
    """python-docx has no hyperlink API: the relationship and the w:hyperlink element, by hand."""
    r_id = paragraph.part.relate_to(url, RT.HYPERLINK, is_external=True)
    hyperlink = OxmlElement("w:hyperlink")
    hyperlink.set(qn("r:id"), r_id)
    hyperlink.append(_run(words))
    paragraph._p.append(hyperlink)


def _run(words: str):
    run = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = words
    run.append(text)
    return run


def add_field(paragraph, instruction: str, result: str) -> None:
    """A simple field, the other way Word writes a hyperlink: the target is in the code, in no relationship."""
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), instruction)
    field.append(_run(result))
    paragraph._p.append(field)


def make_docx(*, body: str = "Dear buyer, your invoice is attached.", long_text: str | None = None) -> bytes:
    document = docx.Document()
    document.add_paragraph(body)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "Item"
    table.cell(0, 1).text = "Phone +49 30 1234567"
    inner = table.cell(0, 0).add_table(rows=1, cols=1)
    inner.cell(0, 0).text = "nested cell text"
    linked = document.add_paragraph("Visit ")
    add_hyperlink(linked, "https://seller-shop.example/deals", "our shop")
    add_field(document.add_paragraph(), 'HYPERLINK "https://field.example/x" \\o "a tip"', "the field link")
    if long_text:
        document.add_paragraph(long_text)
    footer = document.sections[0].footer
    footer.paragraphs[0].text = "Seller Shop GmbH, mail orders@seller-shop.example"
    add_hyperlink(footer.paragraphs[0], "https://footer.example/", "site")
    document.sections[0].header.paragraphs[0].text = "INVOICE HEADER"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


_FREE, _END, _FAT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD


def make_cfb(streams: dict[str, bytes]) -> bytes:
    """A version 3 compound file with every stream in regular 512-byte sectors (each padded to 4096 bytes, the
    mini-stream cutoff), a one-sector FAT and a one-sector directory; siblings ordered as [MS-CFB] 2.6.4 asks."""
    assert len(streams) <= 3
    sectors: list[bytes] = []
    fat = [_FAT, _END]  # sector 0: the FAT, sector 1: the directory
    starts = {}
    for name, data in streams.items():
        data = data.ljust(max(4096, -(-len(data) // 512) * 512), b"\0")
        streams[name] = data
        first = 2 + len(sectors)
        starts[name] = first
        chunks = [data[i:i + 512] for i in range(0, len(data), 512)]
        sectors.extend(chunks)
        fat.extend(list(range(first + 1, first + len(chunks))) + [_END])
    assert len(fat) <= 128
    fat_sector = struct.pack("<128I", *(fat + [_FREE] * (128 - len(fat))))

    def entry(name: str, kind: int, start: int, size: int, left=_FREE, right=_FREE, child=_FREE, black=1) -> bytes:
        encoded = (name + "\0").encode("utf-16-le")
        return (encoded.ljust(64, b"\0") + struct.pack("<HBB3I", len(encoded), kind, black, left, right, child)
                + b"\0" * 16 + b"\0" * 4 + b"\0" * 16 + struct.pack("<IQ", start, size))

    names = sorted(streams, key=lambda n: (len(n), n.upper()))  # the order siblings are compared in
    middle = len(names) // 2
    index = {name: 1 + i for i, name in enumerate(names)}
    entries = [entry("Root Entry", 5, _END, 0, child=index[names[middle]])]
    for i, name in enumerate(names):
        left = index[names[i - 1]] if i == middle and i > 0 else _FREE
        right = index[names[i + 1]] if i == middle and i + 1 < len(names) else _FREE
        entries.append(entry(name, 2, starts[name], len(streams[name]), left, right, black=int(i == middle)))
    while len(entries) < 4:
        entries.append(b"\0" * 64 + struct.pack("<HBB3I", 0, 0, 0, _FREE, _FREE, _FREE) + b"\0" * 48)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + b"\0" * 6 + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, _END, 0, _END, 0)
              + struct.pack("<109I", 0, *([_FREE] * 108)))
    assert len(header) == 512
    return header + fat_sector + b"".join(entries) + b"".join(sectors)


def make_doc(pieces: list[tuple[str, bool]], *, flags: int = 0x1200, n_fib: int = 0x00C1) -> bytes:
    """A Word 97 .doc: the FIB, the text pieces (one byte a character when compressed, else UTF-16) from offset
    1024 of the WordDocument stream, and the Clx holding the piece table, then a stylesheet, in the table stream."""
    text_at = 1024
    body, cps, pcds = bytearray(), [0], []
    for text, compressed in pieces:
        body += b"\0" * (-len(body) % 512)  # each piece in sectors of its own, as antiword expects of Word 97
        fc = text_at + len(body)
        if compressed:
            body += text.encode("cp1252")
            pcds.append(struct.pack("<HIH", 0, (fc * 2) | 0x40000000, 0))
        else:
            body += text.encode("utf-16-le")
            pcds.append(struct.pack("<HIH", 0, fc, 0))
        cps.append(cps[-1] + len(text))
    plc = struct.pack(f"<{len(cps)}I", *cps) + b"".join(pcds)
    clx = b"\x02" + struct.pack("<I", len(plc)) + plc
    # The stylesheet Word always writes (antiword reads it unasked): an Stshi for one style, left empty.
    stsh = struct.pack("<H9H", 18, 1, 0x0A, 1, 0, 0, 0, 0, 0, 0) + struct.pack("<H", 0)
    fib_base = struct.pack("<HHHHHHHIBBHHII", 0xA5EC, n_fib, 0, 0x0409, 0, flags, 0x00BF, 0, 0, 0, 0, 0, 0, 0)
    stream_size = text_at + len(body)
    fib_rg_lw = struct.pack("<22I", stream_size, 0, 0, cps[-1], *([0] * 18))
    pairs = [0] * (93 * 2)
    pairs[33 * 2], pairs[33 * 2 + 1] = 0, len(clx)  # fcClx, lcbClx
    pairs[0:4] = [len(clx), len(stsh)] * 2  # fcStshfOrig, lcbStshfOrig, fcStshf, lcbStshf
    fib = (fib_base + struct.pack("<H", 14) + b"\0" * 28 + struct.pack("<H", 22) + fib_rg_lw
           + struct.pack("<H", 93) + struct.pack(f"<{len(pairs)}I", *pairs) + struct.pack("<H", 0))
    word = fib.ljust(text_at, b"\0") + bytes(body)
    table = "1Table" if flags & 0x0200 else "0Table"
    return make_cfb({"WordDocument": word, table: clx + stsh})


DOC_PIECES = [
    ("Rechnung Nr. 7 \u2013 Anruf unter ", True),
    ("+49 30 1234567 \u00bbsofort\u00ab\r", False),
    ('Mehr auf \x13 HYPERLINK "https://seller-shop.example/doc" \\o "tip" \x14unserer Seite\x15.\r', True),
    ("Zelle eins\x07Zelle zwei\x07\x07\r", False),
    ('Logo \x13 INCLUDEPICTURE "http://tracker.example/p.gif" \\d \x14\x01\x15 and '
     '\x13 INCLUDEPICTURE "C:\\\\Users\\\\me\\\\logo.png" \x14\x01\x15 \x13 PAGE \x141\x15\r', True),
]


# -- PDF ---------------------------------------------------------------------------------------------------


def test_pdf_text_is_read() -> None:
    reading = read_document(make_pdf(["Call me on +49 30 1234567", "Second page (with parentheses)"]))
    assert reading is not None and reading.readable and reading.why is None
    assert "Call me on +49 30 1234567" in reading.text
    assert "Second page (with parentheses)" in reading.text
    assert reading.links == ()


def test_pdf_uri_link_annotations_are_links_and_text() -> None:
    data = through_pypdf(make_pdf(["Visit our shop"]), url="https://seller-shop.example/offer?id=7")
    reading = read_document(data)
    assert reading is not None and reading.readable
    assert reading.links == ("https://seller-shop.example/offer?id=7",)
    assert "Visit our shop" in reading.text
    assert "https://seller-shop.example/offer?id=7" in reading.text


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_pdf_with_a_user_password_is_not_readable(algorithm: str) -> None:
    data = through_pypdf(make_pdf(["secret text"]), user_password="secret", owner_password="owner",
                         algorithm=algorithm)
    reading = read_document(data)
    assert reading == DocumentReading("", False, "encrypted")


def test_pdf_with_an_empty_user_password_is_read() -> None:
    data = through_pypdf(make_pdf(["only printing is restricted"]), user_password="", owner_password="owner")
    assert pypdf.PdfReader(io.BytesIO(data)).is_encrypted
    reading = read_document(data)
    assert reading is not None and reading.readable
    assert "only printing is restricted" in reading.text


def test_pdf_reads_only_max_pages() -> None:
    data = make_pdf([f"page-{number:03d}" for number in range(1, 201)])
    reading = read_document(data, max_pages=50)
    assert reading is not None
    assert not reading.readable and reading.why == "too many pages"
    assert "page-001" in reading.text and "page-050" in reading.text
    assert "page-051" not in reading.text and "page-200" not in reading.text
    whole = read_document(data, max_pages=200)
    assert whole is not None and whole.readable and "page-200" in whole.text


def test_pdf_text_is_cut_at_max_chars() -> None:
    reading = read_document(make_pdf(["x" * 500, "y" * 500]), max_chars=300)
    assert reading is not None and not reading.readable and reading.why == "too much text"
    assert reading.text == "x" * 300


def test_pdf_header_after_leading_bytes_is_still_a_pdf() -> None:
    reading = read_document(b"\0" * 100 + make_pdf(["late header"]))
    assert reading is not None and "late header" in reading.text


# -- .docx -------------------------------------------------------------------------------------------------


def test_docx_paragraphs_tables_footer_header_and_hyperlinks() -> None:
    reading = read_document(make_docx())
    assert reading is not None and reading.readable and reading.why is None
    for expected in ("Dear buyer, your invoice is attached.", "Phone +49 30 1234567", "nested cell text",
                     "Visit our shop", "the field link", "Seller Shop GmbH, mail orders@seller-shop.example",
                     "INVOICE HEADER"):
        assert expected in reading.text
    assert set(reading.links) == {"https://seller-shop.example/deals", "https://footer.example/",
                                  "https://field.example/x"}
    assert reading.links[0] == "https://seller-shop.example/deals"  # the document part's own links first
    for link in reading.links:
        assert link in reading.text


def test_docx_text_outside_plain_runs_is_read_too() -> None:
    """Word shows a tracked insertion, a deletion with the changes, and a content control's text."""
    document = docx.Document()
    paragraph = document.add_paragraph("Plain, ")
    for wrapper, tag in (("w:ins", "w:t"), ("w:del", "w:delText")):
        outer, run, text = OxmlElement(wrapper), OxmlElement("w:r"), OxmlElement(tag)
        outer.set(qn("w:id"), "1")
        outer.set(qn("w:author"), "seller")
        text.text = f"{wrapper[2:]} +49 30 7654321, "
        text.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
        run.append(text)
        outer.append(run)
        paragraph._p.append(outer)
    control, content, run, text = (OxmlElement(tag) for tag in ("w:sdt", "w:sdtContent", "w:r", "w:t"))
    text.text = "control mail@seller-shop.example"
    run.append(text)
    content.append(run)
    control.append(content)
    paragraph._p.append(control)
    out = io.BytesIO()
    document.save(out)
    reading = read_document(out.getvalue())
    assert reading is not None and reading.readable
    assert "Plain, ins +49 30 7654321, del +49 30 7654321, control mail@seller-shop.example" in reading.text


def test_docx_text_is_cut_at_max_chars() -> None:
    reading = read_document(make_docx(long_text="z" * 5000), max_chars=1000)
    assert reading is not None and not reading.readable and reading.why == "too much text"
    assert len(reading.text) == 1000


def test_docx_with_a_huge_uncompressed_part_is_refused_before_reading() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b" " * (51 * 1024 * 1024))
    data = out.getvalue()
    assert len(data) < 1024 * 1024
    assert read_document(data) == DocumentReading("", False, "too large when uncompressed")


def test_zip_that_is_not_word_is_not_a_document() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert read_document(out.getvalue()) is None


# -- legacy .doc -------------------------------------------------------------------------------------------


def test_doc_text_from_the_piece_table() -> None:
    reading = read_document(make_doc(DOC_PIECES))
    assert reading is not None and reading.readable and reading.why is None
    assert "Rechnung Nr. 7 \u2013 Anruf unter +49 30 1234567 \u00bbsofort\u00ab\n" in reading.text
    assert "Mehr auf unserer Seite.\n" in reading.text
    assert "HYPERLINK" not in reading.text  # field codes are not shown; their targets are links
    assert "Zelle eins\tZelle zwei" in reading.text
    assert "Logo  and  1\n" in reading.text
    assert reading.links == ("https://seller-shop.example/doc", "http://tracker.example/p.gif")
    assert "https://seller-shop.example/doc" in reading.text


@pytest.mark.skipif(shutil.which("antiword") is None, reason="antiword is not installed")
def test_the_hand_made_doc_is_a_doc_for_antiword_too(tmp_path) -> None:
    path = tmp_path / "made.doc"
    path.write_bytes(make_doc(DOC_PIECES))
    shown = subprocess.run(["antiword", "-m", "UTF-8.txt", str(path)], capture_output=True, timeout=30,
                           check=True).stdout.decode("utf-8")
    ours = read_document(path.read_bytes())
    assert ours is not None

    def letters(text: str) -> str:  # antiword draws cells with bars, pictures as [pic], and wraps lines
        return "".join(text.replace("|", " ").replace("[pic]", " ").split())

    assert letters(shown) == letters(ours.text.split(ours.links[0])[0])


def test_doc_in_0table_and_cut_at_max_chars() -> None:
    data = make_doc([("a" * 400, True), ("b" * 400, False)], flags=0x1000)
    reading = read_document(data, max_chars=500)
    assert reading is not None and not reading.readable and reading.why == "too much text"
    assert reading.text == "a" * 400 + "b" * 100


def test_encrypted_doc_is_not_readable() -> None:
    assert read_document(make_doc(DOC_PIECES, flags=0x1300)) == DocumentReading("", False, "encrypted")


def test_word_95_doc_has_no_reader() -> None:
    reading = read_document(make_doc(DOC_PIECES, n_fib=0x0065))
    assert reading is not None and not reading.readable and reading.why and "no reader" in reading.why


def test_ole2_without_a_word_document_stream_is_not_a_document() -> None:
    assert read_document(make_cfb({"Workbook": b"\x09\x08" + b"\0" * 100})) is None


def test_ole2_encrypted_package_is_an_encrypted_document() -> None:
    data = make_cfb({"EncryptionInfo": b"\4\0\4\0", "EncryptedPackage": b"\0" * 64})
    assert read_document(data) == DocumentReading("", False, "encrypted")


def test_damaged_piece_table_is_damaged() -> None:
    data = bytearray(make_doc(DOC_PIECES))
    pieces = len(DOC_PIECES)
    table_at = data.index(b"\x02" + struct.pack("<I", 4 * (pieces + 1) + 8 * pieces))
    data[table_at] = 0x07
    assert read_document(bytes(data)) == DocumentReading("", False, "damaged")


# -- anything else -----------------------------------------------------------------------------------------


def test_what_is_not_bytes_is_not_a_document() -> None:
    assert read_document("%PDF-1.4 a str") is None  # type: ignore[arg-type]
    assert read_document(10**12) is None  # type: ignore[arg-type]
    reading = read_document(bytearray(make_pdf(["from a bytearray"])))
    assert reading is not None and "from a bytearray" in reading.text


def test_a_missing_reader_package_says_so(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)
    reading = read_document(make_pdf(["text"]))
    assert reading is not None and not reading.readable
    assert reading.why == "no reader: pypdf is not installed"


@pytest.mark.parametrize("data", [
    b"", b"hello, this is plain text", bytes(range(256)) * 8, b"PK\x03\x04" + b"\0" * 100,
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 2000,
    b"%PDF-1.7\n", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
], ids=["empty", "text", "bytes", "zip-header", "ole-magic", "ole-garbage", "pdf-header", "pdf-no-pages"])
def test_garbage_is_none_or_not_readable(data: bytes) -> None:
    reading = read_document(data)
    assert reading is None or isinstance(reading, DocumentReading)
    if reading is not None and data.startswith(b"\xd0"):
        assert not reading.readable


@pytest.mark.parametrize("make", [lambda: make_pdf(["truncated"]), make_docx, lambda: make_doc(DOC_PIECES)],
                         ids=["pdf", "docx", "doc"])
def test_truncated_documents_never_raise(make) -> None:
    data = make()
    for length in (10, 100, 600, len(data) // 3, len(data) // 2, len(data) - 20):
        reading = read_document(data[:length])
        assert reading is None or isinstance(reading, DocumentReading)


_SAMPLES = {"pdf": through_pypdf(make_pdf(["fuzzed"]), url="https://example.com/"),
            "docx": make_docx(), "doc": make_doc(DOC_PIECES)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(_SAMPLES)), seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 40))
def test_damaged_documents_never_raise(kind: str, seed: int, flips: int) -> None:
    data = bytearray(_SAMPLES[kind])
    chooser = random.Random(seed)
    for _ in range(flips):
        data[chooser.randrange(len(data))] = chooser.randrange(256)
    reading = read_document(bytes(data), max_pages=5, max_chars=10_000)
    assert reading is None or (isinstance(reading, DocumentReading) and len(reading.text) <= 10_000)
