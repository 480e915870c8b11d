"""Attachments: only documents and images, whose bytes are what their names say.

The type is read from the content with `filetype` (magic numbers), never
trusted from the name or the declared Content-Type: a renamed executable, a
double extension, an archive or a macro-enabled document is removed. A file in
any wrapping is an attachment here: a forwarded message (message/rfc822), a
file wrapped in text (uuencode, yEnc, BinHex, pasted base64), a file inside an
allowed one (an object embedded in a document, an archive appended to an
image). Over the size limit, the whole message goes back.
"""
from __future__ import annotations

import io
import zipfile

import filetype

from .documents import OLE2_MAGIC
from .settings import AttachmentsRule
from .verdict import Verdict, bounce, strip
from .view import Attachment, WrappedFile

# What the bytes of a file with each allowed extension may be, as filetype names them.
CONTENT_FOR = {
    "pdf": {"pdf"}, "doc": {"doc"}, "docx": {"docx"}, "jpg": {"jpg"}, "jpeg": {"jpg"}, "gif": {"gif"},
    "tif": {"tif"}, "tiff": {"tif"}, "bmp": {"bmp"}, "png": {"png"}, "txt": {None},
}
ARCHIVES = {"zip", "rar", "7z", "gz", "bz2", "xz", "tar", "cab", "zst", "lz", "lz4", "Z", "ar", "deb", "rpm"}
_OLE_MACROS = "_VBA_PROJECT".encode("utf-16-le")


_OLE_STREAMS = (("WordDocument", "doc"), ("PowerPoint Document", "ppt"), ("Workbook", "xls"), ("Book", "xls"))


def _kind(data: bytes) -> str | None:
    """The file type the bytes are. An OLE2 compound file is what its streams say: filetype guesses
    from a few bytes and calls many Word 97 files .ppt."""
    if data.startswith(OLE2_MAGIC):
        import olefile

        try:
            with olefile.OleFileIO(io.BytesIO(data)) as ole:
                return next((kind for stream, kind in _OLE_STREAMS if ole.exists(stream)), "ole")
        except Exception:  # a damaged compound file is no document a reader could open
            return "ole"
    return filetype.guess_extension(data)


def _extension(filename: str) -> str:
    return filename.rsplit(".", 1)[1].lower() if "." in filename else ""


def _is_text(data: bytes) -> bool:
    if b"\0" in data[:65536]:
        return False
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        sample = data[:65536]
        controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
        return controls <= len(sample) // 100


_OLE_PACKAGE = "Ole10Native".encode("utf-16-le")
# An archive's own signatures; inside an image or a PDF they are a second file riding along. Six
# bytes do not occur by chance in compressed image data; a zip is known by its end record, which
# zip readers look for in the last 64 KiB, and a first entry.
_ARCHIVE_MARKS = (b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c")
_ZIP_END, _ZIP_ENTRY = b"PK\x05\x06", b"PK\x03\x04"


def _archive_inside(data: bytes) -> bool:
    if any(data.find(mark, 1) != -1 for mark in _ARCHIVE_MARKS):
        return True
    return data.find(_ZIP_END, max(1, len(data) - 65_557)) != -1 and data.find(_ZIP_ENTRY, 1) != -1
_OOXML_PARTS = ("[content_types].xml", "word/document.xml")
_OOXML_MEDIA = {"png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "emf", "wmf", "svg", "xml", "rels"}


def _docx_problem(data: bytes) -> str | None:
    """A .docx is an OOXML word-processing package, and carries nothing but its text, styles and pictures."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [name.lower() for name in archive.namelist()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return "it is named .docx but is not a readable Word document"
    if not all(part in names for part in _OOXML_PARTS):
        return "it is named .docx but its content is a zip archive, not a Word document"
    if any(name.endswith("vbaproject.bin") for name in names):
        return "documents with macros are not allowed"
    carried = [name for name in names if name.startswith(("word/embeddings/", "word/activex/"))
               or (not name.endswith("/") and name.rsplit(".", 1)[-1] not in _OOXML_MEDIA)]
    if carried:
        return f"the document carries another file ({carried[0].rsplit('/', 1)[-1]})"
    return None


def _carried(kind: str, data: bytes) -> str | None:
    """Why an allowed file carries another file inside it, or None."""
    if kind == "doc":
        if _OLE_MACROS in data:
            return "documents with macros are not allowed"
        if _OLE_PACKAGE in data:
            return "the document carries another file (an embedded package)"
    elif kind == "docx":
        return _docx_problem(data)
    elif kind == "pdf":
        if b"/EmbeddedFile" in data or b"/Launch" in data:
            return "the PDF carries another file or a command to start one"
    if kind != "docx" and _archive_inside(data):
        return f"the .{kind} file has an archive hidden inside it"
    return None


def problem(attachment: Attachment, allowed: set[str]) -> str | None:
    """Why this attachment may not be delivered, or None."""
    extension = _extension(attachment.filename)
    if extension not in allowed or extension not in CONTENT_FOR:
        inner = _extension(attachment.filename[: -len(extension) - 1]) if extension else ""
        if inner in allowed:
            return f"its name hides the file type .{extension} behind .{inner}"
        return f"files of type .{extension or '(none)'} are not allowed" if extension else "a file without a type"
    if attachment.content_type in ("message/rfc822", "message/global"):
        return "forwarded messages are not allowed as attachments (copy the text into your message instead)"
    kind = _kind(attachment.data)
    if kind in ARCHIVES:
        return "archives are not allowed"
    if kind not in CONTENT_FOR[extension]:
        if extension == "txt" and kind is None and _is_text(attachment.data):
            return None
        what = f"a .{kind} file" if kind else "not a .txt text file" if extension == "txt" else "unrecognised content"
        return f"it is named .{extension} but its content is {what}"
    if extension == "txt" and not _is_text(attachment.data):
        return "it is named .txt but its content is not text"
    return _carried(kind, attachment.data) if kind else None


def wrapped_problem(found: WrappedFile, allowed: set[str]) -> str | None:
    if found.data is None:
        return f"a file wrapped in {found.wrapping}, which cannot be checked"
    return problem(Attachment(found.container, found.filename, "", found.data), allowed)


def check(attachments: tuple[Attachment, ...], settings: AttachmentsRule,
          wrapped: tuple[WrappedFile, ...] = ()) -> list[Verdict]:
    total = sum(len(a.data) for a in attachments) + sum(len(w.data or b"") for w in wrapped)
    if total > settings.max_total_bytes:
        limit_mb = settings.max_total_bytes / (1024 * 1024)
        return [bounce("attachments_too_large",
                       f"the attachments total {total / (1024 * 1024):.1f} MB, more than the {limit_mb:g} MB allowed",
                       ", ".join(a.filename for a in attachments))]
    allowed = {e.lower().lstrip(".") for e in settings.allowed_extensions}
    verdicts = []
    for attachment in attachments:
        why = problem(attachment, allowed)
        if why:
            verdicts.append(strip("attachment_type", why, attachment.id, attachment.filename))
    names = {a.id: a.filename for a in attachments}
    stripped = {i for v in verdicts for i in v.attachments}
    for found in wrapped:
        why = wrapped_problem(found, allowed)
        if not why or found.container in stripped:
            continue
        what = f"{found.filename} ({found.wrapping} in the text)"
        if found.in_body:
            # Taking it out would change what the sender wrote; the sender hears what to do instead.
            return [*verdicts, bounce("file_in_text", f"the message text carries a file, {what}: {why}", what)]
        verdicts.append(strip("file_in_text", f"{names[found.container]} carries a file, {what}: {why}",
                              found.container, what))
        stripped.add(found.container)
    return verdicts
