"""The text of PDF and Word attachments, so that the content rules judge an invoice as they judge a body.

A seller who may not write a phone number or a link in the message can still attach them in a document, so
the rules must see the document's text and its link targets (a link's visible words need not be its target).

Everything a sender controls is bounded: pages, characters, links and the uncompressed size of a Word
package. A reading never raises: a file that cannot be read whole is a reading with `readable=False` and a
short reason, and what the caller does with it (strip, bounce, let through) is the caller's policy.

Legacy .doc text is read here from the WordDocument stream's piece table ([MS-DOC] 2.4.1), with `olefile`
for the compound file: no maintained pure-Python .doc reader exists, and a subprocess (antiword, catdoc)
would be a system package the relay's machines do not have and a second parser of hostile input.
"""
from __future__ import annotations

import io
import logging
import re
import struct
import zipfile
from dataclasses import dataclass

MAX_UNCOMPRESSED = 50 * 1024 * 1024  # a Word package, all parts added up; python-docx holds every part in memory
MAX_ZIP_ENTRIES = 10_000
MAX_LINKS = 10_000
MAX_ANNOTATIONS_PER_PAGE = 10_000
MAX_FIELD_DEPTH = 64

ENCRYPTED = "encrypted"
TOO_MANY_PAGES = "too many pages"
TOO_MUCH_TEXT = "too much text"
DAMAGED = "damaged"
TOO_LARGE = "too large when uncompressed"
NO_DOC_READER = "no reader for .doc files older than Word 97"

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""A compound file's first bytes: a legacy .doc, .xls or .ppt."""
_OLE_MAGIC = OLE2_MAGIC
# pypdf warns (and "errs") once for each broken object of the sender's file: a hostile PDF would write thousands of lines
# into the relay's log, and the reading's `why` already says what the relay needs to know.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class DocumentReading:
    """`readable` says the text is the whole document's; when it is not, `text` holds what was read before
    the reader stopped, since a partial text is still worth judging."""

    text: str
    readable: bool
    why: str | None = None  # when not readable: one of the short reasons above
    links: tuple[str, ...] = ()


def read_document(data: bytes, *, max_pages: int = 50, max_chars: int = 1_000_000) -> DocumentReading | None:
    """None when the bytes are not a PDF, a .docx or a legacy .doc."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        return None
    try:
        # The signatures at the start first, as the attachment rule (filetype) judges the kind: a zip or an
        # OLE2 file with "%PDF-" in its first KiB is read as what Word would open it as.
        if data.startswith(_OLE_MAGIC):
            return _read_doc(data, max_chars)
        if data.startswith(b"PK\x03\x04"):
            reading = _read_docx(data, max_chars)
            if reading is not None:
                return reading
        if b"%PDF-" in data[:1024]:  # where PDF readers look for the header
            return _read_pdf(data, max_pages, max_chars)
        return None
    except ImportError as exc:  # a missing package is no verdict on the file
        return DocumentReading("", False, f"no reader: {exc.name or 'a reader'} is not installed")
    except Exception:  # the readers are third-party parsers of hostile bytes: any failure is a damaged file
        return DocumentReading("", False, DAMAGED)


class _Text:
    """Text gathered piece by piece, cut at the limit so that a hostile file never makes a large string."""

    def __init__(self, max_chars: int) -> None:
        self.parts: list[str] = []
        self.room = max(0, max_chars)
        self.full = False

    def add(self, piece: str) -> None:
        if self.full or not piece:
            return
        if len(piece) > self.room:
            piece, self.full = piece[: self.room], True
        self.parts.append(piece)
        self.room -= len(piece)

    def line(self, piece: str) -> None:
        if piece:
            self.add(piece)
            self.add("\n")


class _Links:
    """Distinct link targets in the order met, bounded in count and in characters."""

    def __init__(self, max_chars: int) -> None:
        self.found: dict[str, None] = {}
        self.room = max(0, max_chars)

    def add(self, target: object) -> None:
        if isinstance(target, bytes):
            target = target.decode("latin-1")  # a PDF URI is 7-bit ASCII; latin-1 keeps any byte readable
        if not isinstance(target, str):
            return
        target = target.strip()
        if not target or target in self.found or len(self.found) >= MAX_LINKS or len(target) > self.room:
            return
        self.found[target] = None
        self.room -= len(target)

    def __iter__(self):
        return iter(self.found)


def _reading(text: _Text, links: _Links, why: str | None = None) -> DocumentReading:
    """The links go into the text too: the rules that look for links in text then see them like any other."""
    body_full = text.full
    for target in links:
        text.line(target)
    why = why or (TOO_MUCH_TEXT if body_full else None)
    return DocumentReading("".join(text.parts), why is None, why, tuple(links))


# -- PDF ---------------------------------------------------------------------------------------------------

def _read_pdf(data: bytes, max_pages: int, max_chars: int) -> DocumentReading:
    import pypdf  # imported on first use: most messages carry no PDF

    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")  # an owner password alone restricts printing, not reading
        except Exception:
            opened = None
        if not opened:
            return DocumentReading("", False, ENCRYPTED)
    pages = reader.pages
    count = len(pages)
    text, links = _Text(max_chars), _Links(max_chars)
    damaged = False
    for index in range(min(count, max(0, max_pages))):
        try:
            page = pages[index]
            for target in _pdf_uris(page):
                links.add(target)
            if not text.full:
                text.line(page.extract_text() or "")
        except Exception:
            damaged = True
    why = DAMAGED if damaged else TOO_MANY_PAGES if count > max_pages else None
    return _reading(text, links, why)


def _pdf_uris(page) -> list[object]:
    """Targets of link annotations with a URI action: what a click opens, whatever words lie under it."""
    from pypdf.generic import DictionaryObject

    annotations = page.get("/Annots")
    annotations = annotations.get_object() if annotations is not None else None
    if not isinstance(annotations, list):
        return []
    targets = []
    for reference in annotations[:MAX_ANNOTATIONS_PER_PAGE]:
        annotation = reference.get_object()
        if not isinstance(annotation, DictionaryObject) or annotation.get("/Subtype") != "/Link":
            continue
        action = annotation.get("/A")
        action = action.get_object() if action is not None else None
        if isinstance(action, DictionaryObject) and action.get("/S") == "/URI" and "/URI" in action:
            targets.append(action["/URI"].get_object())
    return targets


# -- .docx -------------------------------------------------------------------------------------------------

_TEXT_PARTS = (  # the main text first, as a reader meets it
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.endnotes+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.comments+xml",
)


def _read_docx(data: bytes, max_chars: int) -> DocumentReading | None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    with archive:
        infos = archive.infolist()
        names = {info.filename.lower() for info in infos}
        if "[content_types].xml" not in names or "word/document.xml" not in names:
            return None
        # The sizes in the zip directory bound what zipfile will inflate, so a bomb is refused before reading.
        if len(infos) > MAX_ZIP_ENTRIES or sum(info.file_size for info in infos) > MAX_UNCOMPRESSED:
            return DocumentReading("", False, TOO_LARGE)

    import docx  # imported on first use, like pypdf
    from docx.oxml.ns import qn
    from docx.oxml.parser import parse_xml

    document = docx.Document(io.BytesIO(data))
    parts = list(document.part.package.iter_parts())
    text, links = _Text(max_chars), _Links(max_chars)
    for part in [document.part] + [part for part in parts if part is not document.part]:
        for rel in part.rels.values():
            if rel.reltype.endswith("/hyperlink") and rel.is_external:
                links.add(rel.target_ref)
    rank = {content_type: index for index, content_type in enumerate(_TEXT_PARTS)}
    for part in sorted((part for part in parts if part.content_type in rank), key=lambda p: rank[p.content_type]):
        element = getattr(part, "element", None)
        if element is None:  # footnotes and endnotes have no python-docx part class; its parser resolves no entities
            element = parse_xml(part.blob)
        # Every paragraph in the part, in order: body, table cells at any depth, text boxes.
        for paragraph in element.iter(qn("w:p")):
            if text.full:
                break
            if any(ancestor.tag == _MC_FALLBACK for ancestor in paragraph.iterancestors()):
                continue  # the same text box again, for readers that know no DrawingML
            text.line(_paragraph_text(paragraph))
            # A link can also be a field (HYPERLINK "url", INCLUDEPICTURE "url"), its target in no relationship.
            codes = [node.text or "" for node in paragraph.iter(qn("w:instrText"))]
            codes += [node.get(qn("w:instr"), "") for node in paragraph.iter(qn("w:fldSimple"))]
            if codes:
                links.add(_field_target("".join(codes)))
    return _reading(text, links)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_W_P = _W + "p"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_W_TEXT = {_W + "t": None, _W + "delText": None, _W + "tab": "\t", _W + "ptab": "\t", _W + "br": "\n",
           _W + "cr": "\n", _W + "noBreakHyphen": "-"}


def _paragraph_text(paragraph) -> str:
    """All of a paragraph's text, wherever its runs sit: python-docx's Paragraph.text reads only the runs
    directly in the paragraph or a hyperlink, and so misses a field's result, a content control, a tracked
    insertion; deleted text is kept too, since Word shows it with the changes. A paragraph inside (a text box)
    is read on its own."""
    pieces = []
    for node in paragraph.iter(*_W_TEXT):
        if next(node.iterancestors(_W_P), None) is not paragraph:
            continue
        shown = _W_TEXT[node.tag]
        pieces.append(node.text or "" if shown is None else shown)
    return "".join(pieces)


# -- legacy .doc -------------------------------------------------------------------------------------------

# [MS-DOC] 2.9.73: one byte a character is Windows-1252 for these bytes and Latin-1 for the rest.
_COMPRESSED = str.maketrans({
    0x82: "\u201a", 0x83: "\u0192", 0x84: "\u201e", 0x85: "\u2026", 0x86: "\u2020", 0x87: "\u2021",
    0x88: "\u02c6", 0x89: "\u2030", 0x8A: "\u0160", 0x8B: "\u2039", 0x8C: "\u0152", 0x91: "\u2018",
    0x92: "\u2019", 0x93: "\u201c", 0x94: "\u201d", 0x95: "\u2022", 0x96: "\u2013", 0x97: "\u2014",
    0x98: "\u02dc", 0x99: "\u2122", 0x9A: "\u0161", 0x9B: "\u203a", 0x9C: "\u0153", 0x9F: "\u0178",
})
# Word's marks in the text stream: paragraph and cell ends, breaks, hyphens; other controls are anchors.
_DOC_MARKS = {0x0D: "\n", 0x0A: "\n", 0x07: "\t", 0x0B: "\n", 0x0C: "\n", 0x1E: "-", 0x09: "\t"}
_DOC_CLEAN = str.maketrans({code: _DOC_MARKS.get(code, "") for code in range(0x20) if code not in (0x13, 0x14, 0x15)})
_FIELD_MARK = re.compile(r"([\x13\x14\x15])")


def _read_doc(data: bytes, max_chars: int) -> DocumentReading | None:
    import olefile  # imported on first use, like pypdf

    # A file object, never the bytes: olefile takes bytes shorter than 1536 for a file name.
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        if not ole.exists("WordDocument"):
            # An encrypted .docx is an OLE2 file holding the package encrypted.
            return DocumentReading("", False, ENCRYPTED) if ole.exists("EncryptedPackage") else None
        word = _ole_stream(ole, "WordDocument")
        if word is None or len(word) < 34 or struct.unpack_from("<H", word, 0)[0] != 0xA5EC:
            return DocumentReading("", False, DAMAGED)
        n_fib, flags = struct.unpack_from("<H", word, 2)[0], struct.unpack_from("<H", word, 0x0A)[0]
        if flags & 0x0100:  # fEncrypted
            return DocumentReading("", False, ENCRYPTED)
        if n_fib < 0x00C0:  # Word 6 and 95 have another FIB and no piece table in a table stream
            return DocumentReading("", False, NO_DOC_READER)
        table = _ole_stream(ole, "1Table" if flags & 0x0200 else "0Table")  # fWhichTblStm
    if table is None:
        return DocumentReading("", False, DAMAGED)
    raw = _piece_text(word, table, max_chars)
    if raw is None:
        return DocumentReading("", False, DAMAGED)
    text, links = _Text(max_chars), _Links(max_chars)
    text.add(_without_field_codes(raw[0], links))
    text.full = text.full or raw[1]
    return _reading(text, links)


def _ole_stream(ole, name: str) -> bytes | None:
    if not ole.exists(name) or ole.get_size(name) > MAX_UNCOMPRESSED:
        return None
    with ole.openstream(name) as stream:
        return stream.read(MAX_UNCOMPRESSED)


def _piece_text(word: bytes, table: bytes, max_chars: int) -> tuple[str, bool] | None:
    """The text of every piece in CP order (main text, then notes, headers, comments, text boxes), and whether
    it was cut at max_chars; None when the FIB or the piece table does not hold together."""
    position = 32
    csw = struct.unpack_from("<H", word, position)[0]
    position += 2 + 2 * csw
    cslw = struct.unpack_from("<H", word, position)[0]
    position += 2 + 4 * cslw
    cb_rg_fc_lcb = struct.unpack_from("<H", word, position)[0]
    if cb_rg_fc_lcb < 34 or position + 2 + 34 * 8 > len(word):
        return None
    fc_clx, lcb_clx = struct.unpack_from("<II", word, position + 2 + 33 * 8)  # FibRgFcLcb97.fcClx
    clx = table[fc_clx:fc_clx + lcb_clx]
    index = 0
    while index < len(clx) and clx[index] == 0x01:  # Prc: property modifiers, skipped
        if index + 3 > len(clx):
            return None
        index += 3 + struct.unpack_from("<H", clx, index + 1)[0]
    if index + 5 > len(clx) or clx[index] != 0x02:  # Pcdt
        return None
    lcb = struct.unpack_from("<I", clx, index + 1)[0]
    plc = clx[index + 5:index + 5 + lcb]
    if len(plc) != lcb or lcb < 4 or (lcb - 4) % 12:
        return None
    count = (lcb - 4) // 12
    cps = struct.unpack_from(f"<{count + 1}I", plc, 0)
    pieces, room = [], max(0, max_chars)
    for number in range(count):
        length = cps[number + 1] - cps[number]
        if length <= 0:
            continue
        if room <= 0:
            return "".join(pieces), True
        fc = struct.unpack_from("<I", plc, 4 * (count + 1) + 8 * number + 2)[0]
        take = min(length, room)
        if fc & 0x40000000:  # fCompressed: one byte a character, at half the offset
            start = (fc & 0x3FFFFFFF) // 2
            piece = word[start:start + take].decode("latin-1").translate(_COMPRESSED)
        else:
            start = fc & 0x3FFFFFFF
            piece = word[start:start + 2 * take].decode("utf-16-le", errors="replace")
        pieces.append(piece)
        room -= len(piece)
        if take < length:
            return "".join(pieces), True
    return "".join(pieces), False


def _without_field_codes(raw: str, links: _Links) -> str:
    """Fields show their result, not their code; the target a code opens or fetches goes to the links."""
    shown: list[str] = []
    fields: list[list[str] | None] = []  # open fields, innermost last; None once its result began
    coding: list[list[str]] = []  # the open fields still in their code part
    for piece in _FIELD_MARK.split(raw):
        if piece == "\x13" and len(fields) < MAX_FIELD_DEPTH:
            fields.append([])
            coding.append(fields[-1])
        elif piece == "\x14" and fields and fields[-1] is not None:
            links.add(_field_target("".join(coding.pop())))
            fields[-1] = None
        elif piece == "\x15" and fields:
            code = fields.pop()
            if code is not None:
                links.add(_field_target("".join(coding.pop())))
        elif piece not in ("\x13", "\x14", "\x15"):
            (coding[-1] if coding else shown).append(piece.translate(_DOC_CLEAN))
    for code in coding:  # a field never closed: Word shows its code, and so does the reading
        shown.extend(code)
    return "".join(shown)


_FIELD_ARGUMENT = re.compile(r'"([^"]*)"|(\S+)')
# Location in the document, tooltip, target frame, graphics filter.
_SWITCHES_WITH_ARGUMENT = {"\\l", "\\o", "\\t", "\\c"}
_FETCHING_FIELDS = {"INCLUDEPICTURE", "INCLUDETEXT"}  # Word fetches what they name when it opens the file


def _field_target(code: str) -> str | None:
    """What a HYPERLINK field opens ('HYPERLINK "https://…" \\o "tip"'), or a URL that INCLUDEPICTURE or
    INCLUDETEXT fetches (a local path there is no link); None for other fields."""
    words = [quoted or bare for quoted, bare in _FIELD_ARGUMENT.findall(code)]
    if not words or words[0].upper() not in _FETCHING_FIELDS | {"HYPERLINK"}:
        return None
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
        elif word.lower() in _SWITCHES_WITH_ARGUMENT:
            skip = True
        elif not word.startswith("\\"):
            return word if words[0].upper() == "HYPERLINK" or "://" in word else None
    return None
