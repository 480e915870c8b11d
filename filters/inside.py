"""What an image or a document attachment says, for the content rules.

A link printed in a photo, a QR code on a flyer, a web shop in an invoice's
footer: the rules judge text, so an attachment that is not text is read first,
in the worker process that judges the message. Images by OCR and their QR and
bar codes (filters/images.py), PDF and Word files by their text and link
targets (filters/documents.py). The kind is read from the bytes, never the name.
"""
from __future__ import annotations

from dataclasses import dataclass

from .documents import OLE2_MAGIC
from .settings import FiltersConfig

IMAGE = "image"
DOCUMENT = "document"
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM")


@dataclass(frozen=True)
class Inside:
    kind: str
    text: str
    links: tuple[str, ...]
    readable: bool
    why: str | None


def kind_of(data: bytes) -> str | None:
    if data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return IMAGE
    if data.startswith((b"%PDF-", b"PK\x03\x04", OLE2_MAGIC)) or b"%PDF-" in data[:1024]:
        return DOCUMENT
    return None


def read(data: bytes, config: FiltersConfig, seconds_left: float | None = None) -> Inside | None:
    """None for anything that is neither an image nor a document, or whose reading is turned off.
    seconds_left: what remains of the message's time for images."""
    kind = kind_of(data)
    if kind == IMAGE and config.images.enabled:
        from .images import read_image  # Pillow and the OCR engine load only where images arrive

        settings = config.images
        timeout = min(settings.timeout_seconds, settings.seconds_per_message if seconds_left is None else seconds_left)
        if timeout <= 0:
            return Inside(IMAGE, "", (), False, "the message's time for reading images was spent")
        seen = read_image(data, min_bytes=settings.min_bytes, max_pixels=settings.max_pixels,
                          timeout=timeout, languages=settings.languages)
        return Inside(IMAGE, seen.text, (), seen.readable, seen.why)
    if kind == DOCUMENT and config.documents.enabled:
        from .documents import read_document

        settings = config.documents
        document = read_document(data, max_pages=settings.max_pages, max_chars=settings.max_chars)
        if document is None:
            return None
        return Inside(DOCUMENT, document.text, document.links, document.readable, document.why)
    return None
