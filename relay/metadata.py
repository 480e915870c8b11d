"""Take out of an attachment what tells who made it, and leave the rest as it came.

A phone photo carries its GPS fix, its owner's name and the camera's serial number; a PDF or a
Word file carries its author's name, often with an e-mail address. Any of these undoes the
alias. The work is done on the container (JPEG segments, PNG chunks, GIF blocks, WebP chunks,
the PDF's Info and XMP, the docx's property parts), never on what it holds: pixels, page
content and text are copied byte for byte, nothing is decoded and encoded again.

Data after a JPEG's EOI, a PNG's IEND, a GIF's trailer or a WebP's RIFF end goes too: that is
where phones keep extra pictures and videos (with their own EXIF) and where badly cropped
screenshots kept the part that was cut away (aCropalypse).
"""
from __future__ import annotations

import io
import re
import struct
import zipfile

MAX_INPUT = 30 * 1024 * 1024
"""Larger attachments are passed on as they are, so one message cannot hold a worker for long."""

_MAX_PARTS = 100_000
"""Segments, chunks or blocks in one picture: real ones have a few hundred, and walking millions of
empty ones would take seconds."""
_MAX_UNPACKED = 100 * 1024 * 1024
_MAX_MEMBERS = 10_000
_MAX_PROPERTIES_PART = 1024 * 1024

_EMAIL = re.compile(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+\.[A-Za-z]{2,}")


def scrubbed(filename: str, content_type: str, data: bytes) -> bytes | None:
    """The attachment without what identifies its author, or None when nothing needs to change
    (the caller then keeps the original bytes, byte-identical).

    The kind is read from the bytes: a name or a declared type is the sender's word, and a photo
    named invoice.txt still carries its GPS fix. Anything unknown, damaged or too large comes
    back as None, so the worst case is the attachment as it was, never an unreadable one.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) > MAX_INPUT:
        return None
    data = bytes(data)
    scrub = _scrubber_for(data)
    if scrub is None:
        return None
    try:
        result = scrub(data)
    except Exception:  # a hostile file must cost the attachment its scrubbing, not the message
        return None
    if result is None or result == data:
        return None
    return result


def handled(head: bytes) -> bool:
    """Is this (the first bytes of an attachment) a kind scrubbed() may change?"""
    return _scrubber_for(head) is not None


def _scrubber_for(data: bytes):
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg
    if data.startswith(_PNG_SIGNATURE):
        return _png
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp
    if data.startswith(b"PK\x03\x04"):
        return _docx
    if data.startswith(b"%PDF-"):  # not anywhere in the first KiB, as readers allow: a zip may hold one there
        return _pdf
    return None


# JPEG ---------------------------------------------------------------------------------------

_SOS, _EOI, _COM = 0xDA, 0xD9, 0xFE
_APP0, _APP1, _APP2, _APP14, _APP15 = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF
_WITHOUT_LENGTH = frozenset([0x01, 0xD8, *range(0xD0, 0xD8)])
_ORIENTATION = 0x0112


def _jpeg(data: bytes) -> bytes | None:
    """Scans are copied whole, so the compressed picture stays the same bytes. Only the APPn
    segments that decoding or colour needs stay (JFIF, ICC, Adobe): any other is metadata, and
    a list of the bad ones would miss the next vendor's. Orientation alone is written back, or
    a portrait photo shows on its side."""
    out = [data[:2]]
    i, n = 2, len(data)
    exif_seen = False
    for _ in range(_MAX_PARTS):
        if i >= n or data[i] != 0xFF:
            return None
        start = i
        marker_at = _NOT_FILL.search(data, i)  # fill bytes may stand before any marker
        if marker_at is None:
            return None
        i = marker_at.start()
        marker = data[i]
        i += 1
        if marker == 0x00:
            return None
        if marker in _WITHOUT_LENGTH:
            out.append(data[start:i])
            continue
        if marker == _EOI:
            out.append(data[start:i])
            return b"".join(out)
        if i + 2 > n:
            return None
        length = int.from_bytes(data[i:i + 2], "big")
        end = i + length
        if length < 2 or end > n:
            return None
        payload = data[i + 2:end]
        segment = data[start:end]
        i = end
        if marker == _SOS:
            i = _end_of_scan(data, end)
            out.append(data[start:i])
            if i >= n:  # no EOI: keep the scan as it came, as a reader would show it
                return b"".join(out)
            continue
        if _APP0 <= marker <= _APP15 or marker == _COM:
            if _needed_for_decoding(marker, payload):
                out.append(segment)
            elif marker == _APP1 and payload.startswith(b"Exif\x00") and not exif_seen:
                exif_seen = True
                orientation = _orientation(payload[6:])
                if orientation not in (None, 1):
                    out.append(_orientation_only_exif(orientation))
            continue
        out.append(segment)
    return None


def _needed_for_decoding(marker: int, payload: bytes) -> bool:
    if marker in (_APP0, _APP14):  # JFIF/JFXX; Adobe's colour transform
        return True
    return marker == _APP2 and payload.startswith(b"ICC_PROFILE\x00")


_NOT_FILL = re.compile(rb"[^\xff]")
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _end_of_scan(data: bytes, i: int) -> int:
    """Where the entropy-coded data ends: at the first 0xFF that is neither a stuffed zero
    nor a restart marker."""
    found = _MARKER_AFTER_SCAN.search(data, i)
    return found.start() if found else len(data)


def _orientation(tiff: bytes) -> int | None:
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    for k in range(int.from_bytes(tiff[ifd:ifd + 2], order)):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            return None
        if int.from_bytes(tiff[entry:entry + 2], order) != _ORIENTATION:
            continue
        if int.from_bytes(tiff[entry + 2:entry + 4], order) != 3:  # SHORT
            return None
        value = int.from_bytes(tiff[entry + 8:entry + 10], order)
        return value if 1 <= value <= 8 else None
    return None


def _orientation_only_exif(orientation: int) -> bytes:
    tiff = b"MM\x00*" + struct.pack(">IHHHIHHI", 8, 1, _ORIENTATION, 3, 1, orientation, 0, 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


# PNG ----------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IDENTIFYING = frozenset([b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"])


def _png(data: bytes) -> bytes | None:
    """Kept chunks are copied with their CRCs, so they stay valid without being recomputed."""
    out = [_PNG_SIGNATURE]
    i, n = len(_PNG_SIGNATURE), len(data)
    for _ in range(_MAX_PARTS):
        if i + 12 > n:
            return None
        length = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8]
        end = i + 12 + length
        if length > 0x7FFFFFFF or end > n or not kind.isalpha():
            return None
        if i == len(_PNG_SIGNATURE) and kind != b"IHDR":
            return None
        if kind not in _PNG_IDENTIFYING:
            out.append(data[i:end])
        i = end
        if kind == b"IEND":
            return b"".join(out)
    return None


# GIF ----------------------------------------------------------------------------------------

_GIF_TRAILER = 0x3B
_GIF_EXTENSION = 0x21
_GIF_IMAGE = 0x2C
_GIF_COMMENT = 0xFE
_GIF_APPLICATION = 0xFF
_GIF_XMP = b"\x0bXMP DataXMP"
_MAX_SUB_BLOCKS = 1_000_000
"""Encoders fill sub-blocks to 255 bytes, so 30 MB need some 120,000; a million 1-byte ones is an attack."""


def _gif(data: bytes) -> bytes | None:
    """Comment extensions and the XMP application extension go; the looping, graphic-control
    and plain-text extensions and the images stay as they are."""
    n = len(data)
    if n < 13:
        return None
    screen = data[10]
    i = 13 + (3 << ((screen & 7) + 1) if screen & 0x80 else 0)
    if i > n:
        return None
    out = [data[:i]]
    budget = _MAX_SUB_BLOCKS
    for _ in range(_MAX_PARTS):
        if i >= n:
            return None
        introducer = data[i]
        if introducer == _GIF_TRAILER:
            out.append(data[i:i + 1])
            return b"".join(out)
        if introducer == _GIF_EXTENSION:
            if i + 2 > n:
                return None
            end, budget = _after_sub_blocks(data, i + 2, budget)
            if end is None:
                return None
            label = data[i + 1]
            if not (label == _GIF_COMMENT or (label == _GIF_APPLICATION and data[i + 2:i + 14] == _GIF_XMP)):
                out.append(data[i:end])
            i = end
        elif introducer == _GIF_IMAGE:
            if i + 10 > n:
                return None
            local = data[i + 9]
            start = i + 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1  # + LZW code size
            end, budget = _after_sub_blocks(data, start, budget)
            if end is None:
                return None
            out.append(data[i:end])
            i = end
        else:
            return None
    return None


def _after_sub_blocks(data: bytes, i: int, budget: int) -> tuple[int | None, int]:
    n = len(data)
    while i < n and budget > 0:
        budget -= 1
        size = data[i]
        i += 1 + size
        if size == 0:
            return i, budget
    return None, budget


# WebP ---------------------------------------------------------------------------------------

_WEBP_IDENTIFYING = frozenset([b"EXIF", b"XMP "])
_VP8X_EXIF_AND_XMP = 0x08 | 0x04


def _webp(data: bytes) -> bytes | None:
    """The EXIF and XMP chunks go, and VP8X stops announcing them, or strict readers refuse
    the file."""
    end = 8 + int.from_bytes(data[4:8], "little")
    if end > len(data) or end < 12:
        return None
    kept = []
    i = 12
    for _ in range(_MAX_PARTS):
        if i >= end:
            break
        if i + 8 > end:
            return None
        kind = data[i:i + 4]
        length = int.from_bytes(data[i + 4:i + 8], "little")
        stop = i + 8 + length + (length & 1)
        if stop > end:
            return None
        chunk = data[i:stop]
        if kind == b"VP8X":
            if length < 10:
                return None
            chunk = chunk[:8] + bytes([chunk[8] & ~_VP8X_EXIF_AND_XMP & 0xFF]) + chunk[9:]
        if kind not in _WEBP_IDENTIFYING:
            kept.append(chunk)
        i = stop
    else:
        return None
    body = b"WEBP" + b"".join(kept)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# PDF ----------------------------------------------------------------------------------------

_PDF_IDENTIFYING = frozenset(["/Author", "/Creator", "/Producer"])
_MAX_PDF_OBJECTS = 10_000
"""pypdf takes about a tenth of a millisecond per object to read, copy and write; an invoice or
a catalogue has hundreds to a few thousand, a hostile file can declare hundreds of thousands."""


def _pdf(data: bytes) -> bytes | None:
    """The file is written anew rather than updated incrementally: an update would leave the
    old Info and XMP in the file for anyone who reads past the last revision."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import DictionaryObject

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:  # rewriting would either need the password or drop the protection
        return None
    if sum(len(numbers) for numbers in reader.xref.values()) + len(reader.xref_objStm) > _MAX_PDF_OBJECTS:
        return None
    info = reader.trailer.get("/Info")
    info = info.get_object() if info is not None else None
    if not isinstance(info, DictionaryObject):
        info = None
    doomed = [key for key in (info or {}) if _identifying_pdf_field(key, info[key])]
    root = reader.root_object
    has_xmp = "/Metadata" in root
    if not doomed and not has_xmp:
        return None
    pages = len(reader.pages)
    for key in doomed:
        del info[key]
    if has_xmp:
        del root["/Metadata"]
    writer = PdfWriter(clone_from=reader, keep_initial_header=True)
    if info is not None and not info:
        writer.metadata = None
    written = io.BytesIO()
    writer.write(written)
    result = written.getvalue()
    if PdfReader(io.BytesIO(result)).root_object["/Pages"].get("/Count") != pages:
        return None
    return result


def _identifying_pdf_field(key: str, value) -> bool:
    text = str(value.get_object() if hasattr(value, "get_object") else value)
    if not text.strip():
        return False
    return key in _PDF_IDENTIFYING or bool(_EMAIL.search(text))


# DOCX ---------------------------------------------------------------------------------------

_CORE = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
_DC = "http://purl.org/dc/elements/1.1/"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CORE_IDENTIFYING = frozenset([f"{{{_DC}}}creator", f"{{{_CORE}}}lastModifiedBy", f"{{{_CORE}}}lastPrinted"])
_APP_IDENTIFYING = frozenset(["Company", "Manager"])  # by local name: transitional and strict namespaces differ


def _docx(data: bytes) -> bytes | None:
    """Only the two property parts are rewritten; every other member is copied under the same
    name, in the same order, with the same compression and the same content."""
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        members = package.infolist()
        names = [member.filename for member in members]
        if "[Content_Types].xml" not in names or "word/document.xml" not in names:
            return None
        if len(members) > _MAX_MEMBERS or len(set(names)) != len(names):
            return None
        if sum(member.file_size for member in members) > _MAX_UNPACKED:
            return None
        if any(member.flag_bits & 0x1 for member in members):  # encrypted members cannot be read
            return None
        core_parts, app_parts = _property_parts(package, names)
        replaced = {}
        for member in members:
            if member.filename in core_parts or member.filename in app_parts:
                if member.file_size > _MAX_PROPERTIES_PART:
                    return None
                core = member.filename in core_parts
                part = _without_identifying(package.read(member), _core_identifying if core else _app_identifying)
                if part is not None:
                    replaced[member.filename] = part
        if not replaced:
            return None
        written = io.BytesIO()
        with zipfile.ZipFile(written, "w") as copy:
            for member in members:
                content = replaced.get(member.filename)
                if content is None:
                    content = package.read(member)
                copy.writestr(_same_entry(member), content)
            copy.comment = package.comment
    result = written.getvalue()
    with zipfile.ZipFile(io.BytesIO(result)) as check:
        if [member.filename for member in check.infolist()] != names:
            return None
    return result


def _property_parts(package: zipfile.ZipFile, names: list[str]) -> tuple[set[str], set[str]]:
    """The parts the package's relationships name, and the usual names besides, so a document
    that files them elsewhere is still scrubbed."""
    core, app = {"docProps/core.xml"}, {"docProps/app.xml"}
    if "_rels/.rels" in names:
        relationships = _parsed(package.read("_rels/.rels"))
        if relationships is not None:
            for relationship in relationships.iter(f"{{{_RELATIONSHIPS}}}Relationship"):
                kind = relationship.get("Type", "")
                target = relationship.get("Target", "").lstrip("/")
                if kind.endswith("/metadata/core-properties"):
                    core.add(target)
                elif kind.endswith("/extended-properties"):
                    app.add(target)
    return core, app


def _core_identifying(element) -> bool:
    return element.tag in _CORE_IDENTIFYING


def _app_identifying(element) -> bool:
    tag = element.tag
    return isinstance(tag, str) and tag.rsplit("}", 1)[-1] in _APP_IDENTIFYING


def _without_identifying(part: bytes, identifying) -> bytes | None:
    from lxml import etree

    root = _parsed(part)
    if root is None:
        return None
    doomed = []
    for element in root:
        if not isinstance(element.tag, str) or len(element):
            continue
        text = (element.text or "").strip()
        if text and (identifying(element) or _EMAIL.search(text)):
            doomed.append(element)
    if not doomed:
        return None
    for element in doomed:
        _remove_keeping_layout(element)
    standalone = root.getroottree().docinfo.standalone
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=standalone)


def _remove_keeping_layout(element) -> None:
    """The whitespace after an element belongs to it in lxml (its tail): hand it on, or the
    next sibling's indentation goes with it."""
    parent = element.getparent()
    previous = element.getprevious()
    if element.tail:
        if previous is not None:
            previous.tail = element.tail
        else:
            parent.text = element.tail
    parent.remove(element)


def _parsed(part: bytes):
    """A property part never has a DTD; one that does is not read, so no entity is expanded."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(part, parser)
    except etree.XMLSyntaxError:
        return None
    if root.getroottree().docinfo.doctype:
        return None
    return root


def _same_entry(member: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """A fresh entry with the member's name, date, compression and attributes; its extra fields
    (which may hold a zip64 record for the old offsets, or a uid) are not carried over."""
    entry = zipfile.ZipInfo(member.filename, member.date_time)
    entry.compress_type = member.compress_type
    entry.comment = member.comment
    entry.create_system = member.create_system
    entry.external_attr = member.external_attr
    entry.internal_attr = member.internal_attr
    return entry
