"""Attachments made here with the tools people use (Pillow, pypdf, python-docx), carrying the
metadata a real phone, PDF writer or word processor leaves: it has to go, and nothing a reader
sees may change with it."""
from __future__ import annotations

import io
import struct
import zipfile
import zlib

import docx
import pytest
from PIL import Image, ImageSequence
from PIL.PngImagePlugin import PngInfo
from pypdf import PdfReader, PdfWriter

from relay.metadata import MAX_INPUT, scrubbed

NAME = b"Kasimir"
EMAIL = "kasimir.buyer@example.com"
SERIAL = "SN-4711-0815"
XMP = (
    '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    f"<dc:creator><rdf:Seq><rdf:li>Kasimir Buyer &lt;{EMAIL}&gt;</rdf:li></rdf:Seq></dc:creator>"
    '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
).encode()

ARTIST, ORIENTATION, EXIF_IFD, GPS_IFD = 315, 274, 0x8769, 0x8825
CAMERA_OWNER, BODY_SERIAL = 0xA430, 0xA431


def _picture(mode: str = "RGB") -> Image.Image:
    picture = Image.new("RGB", (64, 48))
    picture.putdata([(x * 4 % 256, y * 5 % 256, x * y % 256) for y in range(48) for x in range(64)])
    return picture.convert(mode)


def _exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ARTIST] = "Kasimir Buyer"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    camera = exif.get_ifd(EXIF_IFD)
    camera[CAMERA_OWNER] = "Kasimir Buyer"
    camera[BODY_SERIAL] = SERIAL
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.5)
    gps[3], gps[4] = "E", (13.0, 24.0, 36.25)
    return exif


def _saved(picture: Image.Image, kind: str, **options) -> bytes:
    out = io.BytesIO()
    picture.save(out, kind, **options)
    return out.getvalue()


def _pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as picture:
        return picture.tobytes()


def _leaks(data: bytes) -> list[bytes]:
    secrets = [NAME, NAME.lower(), EMAIL.encode(), SERIAL.encode(), b"GPS"]
    return [secret for secret in secrets if secret in data]


# JPEG ---------------------------------------------------------------------------------------

def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) up to the first SOS: an independent reading, to check the output by."""
    segments, i = [], 2
    while True:
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        segments.append((marker, data[i + 4:i + 2 + length]))
        if marker == 0xDA:
            return segments
        i += 2 + length


def _from_sos(data: bytes) -> bytes:
    i = 2
    while data[i + 1] != 0xDA:
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return data[i:]


def _with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    return jpeg[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _iptc_byline(name: bytes) -> bytes:
    """APP13 as Photoshop writes it: an 8BIM resource 0x0404 holding IPTC dataset 2:80 (By-line)."""
    iptc = b"\x1c\x02\x50" + struct.pack(">H", len(name)) + name
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    return b"Photoshop 3.0\x00" + resource


@pytest.fixture
def photo() -> bytes:
    jpeg = _saved(_picture(), "JPEG", quality=90, exif=_exif(), xmp=XMP, comment=b"shot by Kasimir")
    return _with_segment(jpeg, 0xED, _iptc_byline(b"Kasimir Buyer"))


def test_the_photo_really_carries_what_identifies(photo):
    with Image.open(io.BytesIO(photo)) as picture:
        exif = picture.getexif()
        assert exif[ARTIST] == "Kasimir Buyer"
        assert exif.get_ifd(GPS_IFD)[1] == "N"
        assert exif.get_ifd(EXIF_IFD)[CAMERA_OWNER] == "Kasimir Buyer"
    assert {0xE1, 0xED, 0xFE} <= {marker for marker, _ in _jpeg_segments(photo)}
    assert EMAIL.encode() in photo


def test_jpeg_loses_exif_xmp_iptc_and_comment(photo):
    out = scrubbed("IMG_0042.jpg", "image/jpeg", photo)
    assert out is not None
    assert _leaks(out) == []
    markers = [marker for marker, _ in _jpeg_segments(out)]
    assert not {0xE1, 0xED, 0xFE} & set(markers)
    assert markers[0] == 0xE0  # JFIF stays
    with Image.open(io.BytesIO(out)) as picture:
        assert dict(picture.getexif()) == {}
        assert "xmp" not in picture.info and "comment" not in picture.info


def test_jpeg_compressed_data_and_pixels_are_untouched(photo):
    out = scrubbed("IMG_0042.jpg", "image/jpeg", photo)
    assert _from_sos(out) == _from_sos(photo)
    assert out.endswith(b"\xff\xd9")
    assert _pixels(out) == _pixels(photo)
    kept = [s for s in _jpeg_segments(photo) if s[0] not in (0xE1, 0xED, 0xFE)]
    assert _jpeg_segments(out) == kept  # DQT, SOF, DHT, ... the same bytes, in the same order


def test_jpeg_keeps_icc_profile_and_adobe_segment():
    icc = b"ICC_PROFILE\x00\x01\x01" + bytes(range(200))
    adobe = b"Adobe\x00\x64\x00\x00\x00\x00\x01"
    jpeg = _saved(_picture(), "JPEG", exif=_exif())
    jpeg = _with_segment(_with_segment(jpeg, 0xEE, adobe), 0xE2, icc)
    out = scrubbed("a.jpg", "image/jpeg", jpeg)
    assert (0xE2, icc) in _jpeg_segments(out) and (0xEE, adobe) in _jpeg_segments(out)
    assert _leaks(out) == []


def test_jpeg_keeps_orientation_alone_so_the_photo_stands_upright():
    jpeg = _saved(_picture(), "JPEG", exif=_exif(orientation=6))
    out = scrubbed("a.jpg", "image/jpeg", jpeg)
    assert _leaks(out) == []
    with Image.open(io.BytesIO(out)) as picture:
        assert dict(picture.getexif()) == {ORIENTATION: 6}
    assert _pixels(out) == _pixels(jpeg)
    assert scrubbed("a.jpg", "image/jpeg", out) is None  # scrubbed once is scrubbed


def test_progressive_jpeg_keeps_every_scan():
    jpeg = _saved(_picture(), "JPEG", progressive=True, exif=_exif(), comment=b"Kasimir")
    out = scrubbed("a.jpg", "image/jpeg", jpeg)
    assert _leaks(out) == []
    assert _from_sos(out) == _from_sos(jpeg)
    assert _pixels(out) == _pixels(jpeg)


def test_jpeg_with_restart_markers_and_fill_bytes():
    """RSTn inside the scan do not end it; 0xFF fill bytes before a marker are allowed and kept."""
    jpeg = _saved(_picture(), "JPEG", restart_marker_blocks=2, exif=_exif())
    assert b"\xff\xd0" in _from_sos(jpeg)
    sos = len(jpeg) - len(_from_sos(jpeg))
    padded = jpeg[:sos] + b"\xff\xff" + jpeg[sos:]
    out = scrubbed("a.jpg", "image/jpeg", padded)
    assert _leaks(out) == []
    assert out.endswith(b"\xff\xff" + _from_sos(jpeg))
    assert _pixels(out) == _pixels(jpeg)


def test_jpeg_drops_what_is_appended_after_the_picture():
    """Phones append a second picture (MPF) or a video after EOI, with its own EXIF."""
    jpeg = _saved(_picture(), "JPEG")
    appended = _saved(_picture(), "JPEG", exif=_exif())
    out = scrubbed("a.jpg", "image/jpeg", jpeg + appended)
    assert out == jpeg
    assert _pixels(out) == _pixels(jpeg + appended)


def test_jpeg_is_recognised_by_its_bytes_not_its_name(photo):
    assert _leaks(scrubbed("notes.txt", "text/plain", photo)) == []
    assert scrubbed("IMG_0042.jpg", "image/jpeg", b"just text\n" * 20) is None


def test_jpeg_with_nothing_to_remove_is_left_alone():
    assert scrubbed("a.jpg", "image/jpeg", _saved(_picture(), "JPEG")) is None


# PNG ----------------------------------------------------------------------------------------

def _png_chunks(data: bytes) -> list[bytes]:
    chunks, i = [], 8
    while i < len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        chunks.append(data[i:i + 12 + length])
        i += 12 + length
    return chunks


@pytest.fixture
def screenshot() -> bytes:
    texts = PngInfo()
    texts.add_text("Author", "Kasimir Buyer")
    texts.add_text("Comment", f"mail {EMAIL}", zip=True)
    texts.add_itxt("Description", "Kasimir's Fahrrad, grün", lang="de")
    png = _saved(_picture(), "PNG", pnginfo=texts, exif=_exif(), dpi=(144, 144))
    time = b"tIME" + struct.pack(">HBBBBB", 2024, 5, 17, 9, 30, 0)
    chunks = _png_chunks(png)
    chunk = struct.pack(">I", 7) + time + struct.pack(">I", zlib.crc32(time))
    return png[:8] + chunks[0] + chunk + b"".join(chunks[1:])


def test_png_loses_text_exif_and_time_chunks(screenshot):
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"} <= {c[4:8] for c in _png_chunks(screenshot)}
    out = scrubbed("screenshot.png", "image/png", screenshot)
    assert _leaks(out) == []
    kept = [c for c in _png_chunks(screenshot) if c[4:8] not in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME")]
    assert _png_chunks(out) == kept
    assert b"pHYs" in {c[4:8] for c in kept}
    assert _pixels(out) == _pixels(screenshot)
    with Image.open(io.BytesIO(out)) as picture:
        picture.load()
        assert not {"Author", "Comment", "Description"} & set(picture.info)


def test_png_drops_what_follows_iend():
    """A cropped screenshot written over a longer file kept the cut part after IEND (aCropalypse)."""
    png = _saved(_picture(), "PNG")
    out = scrubbed("crop.png", "image/png", png + b"\x00" * 100 + b"the rest of Kasimir's screen")
    assert out == png


def test_png_with_nothing_to_remove_is_left_alone():
    assert scrubbed("a.png", "image/png", _saved(_picture(), "PNG", dpi=(72, 72))) is None


# GIF and WebP -------------------------------------------------------------------------------

def test_gif_loses_its_comment():
    gif = _saved(_picture("P"), "GIF", comment=f"by {EMAIL}".encode())
    out = scrubbed("a.gif", "image/gif", gif)
    assert _leaks(out) == []
    with Image.open(io.BytesIO(out)) as picture, Image.open(io.BytesIO(gif)) as original:
        assert "comment" not in picture.info
        assert picture.tobytes() == original.tobytes() and picture.getpalette() == original.getpalette()


def test_animated_gif_keeps_every_frame_and_its_loop():
    frames = [_picture("P"), _picture("P").rotate(90)]
    gif = _saved(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0, duration=100, comment=b"Kasimir")
    out = scrubbed("a.gif", "image/gif", gif)
    assert _leaks(out) == []
    with Image.open(io.BytesIO(out)) as picture, Image.open(io.BytesIO(gif)) as original:
        assert picture.info["loop"] == 0
        assert [f.tobytes() for f in ImageSequence.Iterator(picture)] == [
            f.tobytes() for f in ImageSequence.Iterator(original)]


def test_gif_with_nothing_to_remove_is_left_alone():
    assert scrubbed("a.gif", "image/gif", _saved(_picture("P"), "GIF")) is None


def test_webp_loses_exif_and_xmp():
    webp = _saved(_picture(), "WEBP", lossless=True, exif=_exif(), xmp=XMP)
    assert NAME in webp
    out = scrubbed("a.webp", "image/webp", webp)
    assert _leaks(out) == []
    assert struct.unpack("<I", out[4:8])[0] == len(out) - 8
    with Image.open(io.BytesIO(out)) as picture:
        assert dict(picture.getexif()) == {} and "xmp" not in picture.info
    assert _pixels(out) == _pixels(webp)


def test_webp_with_nothing_to_remove_is_left_alone():
    assert scrubbed("a.webp", "image/webp", _saved(_picture(), "WEBP", lossless=True)) is None


# PDF ----------------------------------------------------------------------------------------

def _handmade_pdf(text: str, padding: int = 0, author: bytes = b"") -> bytes:
    """One page with text in Helvetica, and no Info: the smallest PDF a reader shows text from.
    `padding` adds that many null objects besides, `author` an Info dictionary at the end."""
    content = f"BT /F1 18 Tf 30 120 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ] + [b"null"] * padding + ([b"<< /Author (%s) >>" % author] if author else [])
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if author else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def _written(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _texts(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


@pytest.fixture
def invoice() -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(_handmade_pdf("Invoice 42: one bicycle, 120 EUR")), keep_initial_header=True)
    writer.add_metadata({
        "/Author": f"Kasimir Buyer <{EMAIL}>",
        "/Creator": "Kasimir's Writer",
        "/Producer": "Acme PDF 1.0",
        "/Title": "Invoice 42",
        "/Subject": "Bicycle",
        "/Keywords": f"reach me at {EMAIL}",
    })
    writer.xmp_metadata = XMP
    return _written(writer)


def test_pdf_loses_author_creator_producer_email_and_xmp(invoice):
    assert EMAIL.encode() in invoice and PdfReader(io.BytesIO(invoice)).xmp_metadata is not None
    out = scrubbed("invoice.pdf", "application/pdf", invoice)
    assert _leaks(out) == [] and b"Acme" not in out
    reader = PdfReader(io.BytesIO(out))
    info = reader.metadata
    assert info.author is None and info.creator is None and info.producer is None
    assert "/Keywords" not in info
    assert info.title == "Invoice 42" and info.subject == "Bicycle"
    assert reader.xmp_metadata is None


def test_pdf_text_is_unchanged(invoice):
    out = scrubbed("invoice.pdf", "application/pdf", invoice)
    assert _texts(out) == _texts(invoice) == ["Invoice 42: one bicycle, 120 EUR"]
    assert out.startswith(b"%PDF-1.4")


def test_pdf_earlier_revisions_do_not_keep_the_old_author(invoice):
    """An incremental update leaves the old Info in the file; the scrubbed one is written anew."""
    writer = PdfWriter(io.BytesIO(invoice), incremental=True)
    writer.add_metadata({"/Author": "A. Nonymous"})
    updated = _written(writer)
    assert EMAIL.encode() in updated
    out = scrubbed("invoice.pdf", "application/pdf", updated)
    assert _leaks(out) == [] and b"Nonymous" not in out
    assert _texts(out) == _texts(updated)


def test_pdf_with_only_xmp_loses_it():
    writer = PdfWriter(clone_from=io.BytesIO(_handmade_pdf("Hello")))
    writer.xmp_metadata = XMP
    pdf = _written(writer)
    out = scrubbed("a.pdf", "application/pdf", pdf)
    assert _leaks(out) == [] and PdfReader(io.BytesIO(out)).xmp_metadata is None
    assert _texts(out) == ["Hello"]


def test_pdf_with_nothing_to_remove_is_left_alone():
    plain = _handmade_pdf("Hello")
    assert scrubbed("a.pdf", "application/pdf", plain) is None
    writer = PdfWriter(clone_from=io.BytesIO(plain))
    writer.metadata = None
    assert scrubbed("a.pdf", "application/pdf", _written(writer)) is None
    writer = PdfWriter(clone_from=io.BytesIO(plain))
    writer.metadata = {"/Title": "Offer"}
    assert scrubbed("a.pdf", "application/pdf", _written(writer)) is None


def test_pdf_with_too_many_objects_is_left_alone():
    """Bounded work: past 10,000 objects the file passes as it came rather than hold the worker."""
    assert scrubbed("a.pdf", "application/pdf", _handmade_pdf("Hello", padding=9_000, author=NAME)) is not None
    assert scrubbed("a.pdf", "application/pdf", _handmade_pdf("Hello", padding=10_000, author=NAME)) is None


def test_encrypted_pdf_is_left_alone(invoice):
    writer = PdfWriter(clone_from=io.BytesIO(invoice))
    writer.encrypt("secret", algorithm="RC4-128")
    assert scrubbed("a.pdf", "application/pdf", _written(writer)) is None


# DOCX ---------------------------------------------------------------------------------------

PARAGRAPHS = ["Offer for the bicycle", "I can pay 110 EUR.", "Regards"]


def _document(author: str, modified_by: str, company: str = "") -> bytes:
    document = docx.Document()
    for text in PARAGRAPHS:
        document.add_paragraph(text)
    properties = document.core_properties
    properties.author, properties.last_modified_by, properties.title = author, modified_by, "Offer"
    saved = io.BytesIO()
    document.save(saved)
    if not company:
        return saved.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(saved) as original, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for member in original.infolist():
            content = original.read(member)
            if member.filename == "docProps/app.xml":
                content = content.replace(b"<Company/>", f"<Company>{company}</Company>".encode())
                content = content.replace(b"<Manager/>", b"<Manager>Kasimir Senior</Manager>")
            copy.writestr(member, content)
    return out.getvalue()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        return {member.filename: package.read(member) for member in package.infolist()}


@pytest.fixture
def offer() -> bytes:
    return _document("Kasimir Buyer", EMAIL, company="Kasimir Holdings")


def test_docx_loses_author_last_modified_by_company_and_manager(offer):
    assert NAME in _members(offer)["docProps/app.xml"] and NAME in _members(offer)["docProps/core.xml"]
    out = scrubbed("offer.docx", "application/octet-stream", offer)
    for name, content in _members(out).items():
        assert _leaks(content) == [], name
    properties = docx.Document(io.BytesIO(out)).core_properties
    assert properties.author == "" and properties.last_modified_by == ""
    assert properties.title == "Offer"
    app = _members(out)["docProps/app.xml"]
    assert b"<Company" not in app and b"<Manager" not in app and b"<Application>" in app


def test_docx_text_and_every_other_member_are_unchanged(offer):
    out = scrubbed("offer.docx", "application/octet-stream", offer)
    assert [p.text for p in docx.Document(io.BytesIO(out)).paragraphs] == PARAGRAPHS
    before, after = _members(offer), _members(out)
    assert list(after) == list(before)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"docProps/core.xml", "docProps/app.xml"}
    with zipfile.ZipFile(io.BytesIO(offer)) as a, zipfile.ZipFile(io.BytesIO(out)) as b:
        assert [(m.filename, m.compress_type, m.date_time) for m in a.infolist()] == [
            (m.filename, m.compress_type, m.date_time) for m in b.infolist()]


def test_docx_properties_are_found_where_the_relationships_say():
    renamed = {"docProps/core.xml": "meta/core1.xml", "docProps/app.xml": "meta/app1.xml"}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_document("Kasimir Buyer", ""))) as original, zipfile.ZipFile(out, "w") as copy:
        for member in original.infolist():
            content = original.read(member)
            if member.filename in ("_rels/.rels", "[Content_Types].xml"):
                for old, new in renamed.items():
                    content = content.replace(old.encode(), new.encode())
            copy.writestr(renamed.get(member.filename, member.filename), content)
    result = scrubbed("offer.docx", "", out.getvalue())
    assert NAME not in _members(result)["meta/core1.xml"]
    assert docx.Document(io.BytesIO(result)).core_properties.author == ""


def test_docx_with_empty_author_is_left_alone():
    assert scrubbed("offer.docx", "application/octet-stream", _document("", "")) is None


def test_zip_that_is_not_a_word_document_is_left_alone():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("docProps/core.xml", _members(_document("Kasimir", ""))["docProps/core.xml"])
    assert scrubbed("a.zip", "application/zip", out.getvalue()) is None


def test_docx_with_entities_in_its_properties_is_not_read():
    laughs = (b'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY a "Kasimir"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
              b'<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
              b' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>&b;</dc:creator></cp:coreProperties>')
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_document("", ""))) as original, zipfile.ZipFile(out, "w") as copy:
        for member in original.infolist():
            copy.writestr(member, laughs if member.filename == "docProps/core.xml" else original.read(member))
    assert scrubbed("a.docx", "application/octet-stream", out.getvalue()) is None


# Damage and limits --------------------------------------------------------------------------

def _samples() -> dict[str, bytes]:
    jpeg = _saved(_picture(), "JPEG", exif=_exif())
    texts = PngInfo()
    texts.add_text("Author", "Kasimir")
    writer = PdfWriter(clone_from=io.BytesIO(_handmade_pdf("Hello")))
    writer.add_metadata({"/Author": "Kasimir"})
    return {
        "jpeg": jpeg,
        "png": _saved(_picture(), "PNG", pnginfo=texts),
        "gif": _saved(_picture("P"), "GIF", comment=b"Kasimir"),
        "webp": _saved(_picture(), "WEBP", lossless=True, exif=_exif()),
        "pdf": _written(writer),
        "docx": _document("Kasimir", ""),
    }


SAMPLES = _samples()


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_truncated_headers_are_left_alone(kind):
    data = SAMPLES[kind]
    assert scrubbed("x", "", data) is not None
    for cut in (3, 8, 14, 20, 40, 90):
        assert scrubbed("x", "", data[:cut]) is None, cut


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_damaged_files_never_raise(kind):
    data = SAMPLES[kind]
    for cut in range(0, len(data), max(1, len(data) // 40)):
        result = scrubbed("x", "", data[:cut])
        assert result is None or isinstance(result, bytes)
    for position in range(0, len(data), max(1, len(data) // 40)):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        result = scrubbed("x", "", bytes(damaged))
        assert result is None or isinstance(result, bytes)


@pytest.mark.parametrize("garbage", [
    b"", b"\xff\xd8\xff", b"\xff\xd8\xff\xe1\xff\xff", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n" + b"\xff" * 16,
    b"GIF89a", b"GIF89a" + b"\xff" * 20, b"RIFF\xff\xff\xff\xffWEBP", b"%PDF-1.7\n" + b"garbage " * 50,
    b"PK\x03\x04" + b"\x00" * 40, "plain text, Kasimir".encode(),
])
def test_garbage_is_left_alone(garbage):
    assert scrubbed("x", "", garbage) is None


def test_too_large_is_left_alone():
    jpeg = SAMPLES["jpeg"]
    padded = jpeg[:-2] + b"\x00" * (MAX_INPUT - len(jpeg) + 1) + jpeg[-2:]
    assert len(padded) > MAX_INPUT
    assert scrubbed("big.jpg", "image/jpeg", padded) is None


# -- through the relay ------------------------------------------------------------------------------------------------

async def test_over_smtp_attachments_arrive_without_their_authors_and_otherwise_unchanged(
        relay, sink, conversation, photo, invoice, offer):
    """Issue 14.6, acceptance: the GPS photo, the invoice and the letter lose what names their author; pixels
    and text are the same; a picture with nothing to remove arrives byte for byte."""
    from conftest import BUYER, SELLER, send
    from test_policy import parse, seller_message

    plain = _saved(_picture(), "PNG")
    message = seller_message("Photos and papers", "The photo, the invoice and the offer.", [
        ("bicycle.jpg", photo), ("invoice.pdf", invoice), ("offer.docx", offer), ("plain.png", plain)])
    await send(relay, SELLER, conversation.buyer_alias, message)
    [delivered] = await sink.wait_for(1)
    assert delivered.rcpt_tos == [BUYER]
    arrived = {part.get_filename(): part.get_content() for part in parse(delivered.content).walk()
               if part.get_filename()}
    assert set(arrived) == {"bicycle.jpg", "invoice.pdf", "offer.docx", "plain.png"}
    assert not _leaks(arrived["bicycle.jpg"]) and _pixels(arrived["bicycle.jpg"]) == _pixels(photo)
    assert b"GPS" not in arrived["bicycle.jpg"] and _from_sos(arrived["bicycle.jpg"]) == _from_sos(photo)
    assert not _leaks(arrived["invoice.pdf"]) and _texts(arrived["invoice.pdf"]) == _texts(invoice)
    letter = docx.Document(io.BytesIO(arrived["offer.docx"]))
    assert [p.text for p in letter.paragraphs] == PARAGRAPHS and not letter.core_properties.author
    assert not letter.core_properties.last_modified_by
    assert arrived["plain.png"] == plain
