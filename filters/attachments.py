"""Attachments: only documents and images, whose bytes are what their names say.

The type is read from the content with `filetype` (magic numbers), never
trusted from the name or the declared Content-Type: a renamed executable, a
double extension, an archive or a macro-enabled document is removed. Over the
size limit, the whole message goes back.
"""
from __future__ import annotations

import io
import zipfile

import filetype

from .settings import AttachmentsRule
from .verdict import Verdict, bounce, strip
from .view import Attachment

# What the bytes of a file with each allowed extension may be, as filetype names them.
CONTENT_FOR = {
    "pdf": {"pdf"}, "doc": {"doc"}, "docx": {"docx"}, "jpg": {"jpg"}, "jpeg": {"jpg"}, "gif": {"gif"},
    "tif": {"tif"}, "tiff": {"tif"}, "bmp": {"bmp"}, "png": {"png"}, "txt": {None},
}
ARCHIVES = {"zip", "rar", "7z", "gz", "bz2", "xz", "tar", "cab", "zst", "lz", "lz4", "Z", "ar", "deb", "rpm"}
_OLE_MACROS = "_VBA_PROJECT".encode("utf-16-le")


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


def _has_macros(kind: str, data: bytes) -> bool:
    if kind == "doc":
        return _OLE_MACROS in data
    if kind == "docx":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return any(name.lower().endswith("vbaproject.bin") for name in archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return True  # claims to be a document, is not a readable one
    return False


def problem(attachment: Attachment, allowed: set[str]) -> str | None:
    """Why this attachment may not be delivered, or None."""
    extension = _extension(attachment.filename)
    if extension not in allowed or extension not in CONTENT_FOR:
        inner = _extension(attachment.filename[: -len(extension) - 1]) if extension else ""
        if inner in allowed:
            return f"its name hides the file type .{extension} behind .{inner}"
        return f"files of type .{extension or '(none)'} are not allowed" if extension else "a file without a type"
    kind = filetype.guess_extension(attachment.data)
    if kind in ARCHIVES:
        return "archives are not allowed"
    if kind not in CONTENT_FOR[extension]:
        if extension == "txt" and kind is None and _is_text(attachment.data):
            return None
        what = f"a .{kind} file" if kind else "not a .txt text file" if extension == "txt" else "unrecognised content"
        return f"it is named .{extension} but its content is {what}"
    if extension == "txt" and not _is_text(attachment.data):
        return "it is named .txt but its content is not text"
    if _has_macros(kind, attachment.data):
        return "documents with macros are not allowed"
    return None


def check(attachments: tuple[Attachment, ...], settings: AttachmentsRule) -> list[Verdict]:
    total = sum(len(a.data) for a in attachments)
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
    return verdicts
