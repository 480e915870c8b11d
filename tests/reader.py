"""An independent reader for the tests: what a recipient could read in a delivered message.

It shares no code with the relay. The stdlib parser splits the message, every
part that is text by type or by file name is decoded (unknown charsets as
UTF-8, else Latin-1), HTML is rendered with the stdlib's HTMLParser (tags and
comments join their neighbours, references resolved), and the text is
NFKC-normalised, case-folded and stripped of characters no renderer draws.
An address a person could read anywhere in that is a leak.
"""
from __future__ import annotations

import email
import email.errors
import re
import unicodedata
from email.header import decode_header
from email.policy import compat32
from html.parser import HTMLParser

_NOT_DRAWN = {0x34F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0, *range(0x180B, 0x1810), *range(0xFE00, 0xFE10)}


def drawn(text: str) -> str:
    """NFKC, case-folded, without what is never drawn (format and control characters, fillers, selectors)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if c in "\t\n\r" or not (
        unicodedata.category(c) in ("Cf", "Cc", "Cs") or ord(c) in _NOT_DRAWN or 0xE0000 <= ord(c) <= 0xE0FFF))


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []

    def handle_data(self, data):
        self.pieces.append(data)


def rendered(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.pieces)


def _decode(data: bytes, charset: str | None) -> list[str]:
    readings = []
    for codec in (charset, "utf-8", "latin-1"):
        if not codec:
            continue
        try:
            readings.append(data.decode(codec))
        except (LookupError, UnicodeError, ValueError, TypeError):
            continue
    return readings or [data.decode("latin-1")]


def _header_text(value: str) -> str:
    out = [value]
    try:
        pieces = decode_header(value)
    except (ValueError, LookupError, email.errors.MessageError):  # the stdlib gives up on some broken words
        return value
    for chunk, charset in pieces:
        out += _decode(chunk, charset) if isinstance(chunk, bytes) else [chunk]
    return " ".join(out)


def texts(message: bytes) -> list[str]:
    """Every text a reader could read, except the top-level To (the recipient's own address)."""
    found = [message.decode("utf-8", "replace")]
    found[0] = "\n".join(line for line in found[0].split("\n") if not line.lower().startswith("to:"))
    root = email.message_from_bytes(message, policy=compat32)
    for part in root.walk():
        for name, value in part.items():
            if not (part is root and name.lower() == "to"):
                found.append(_header_text(str(value)))
        for header in ("content-type", "content-disposition"):
            for _, value in part.get_params([], header=header):
                found.append(_header_text(email.utils.collapse_rfc2231_value(value)))
        if part.is_multipart():
            continue
        filename = (part.get_filename() or "").lower()
        if part.get_content_maintype() in ("text", "message") or filename.endswith((".txt", ".htm", ".html")):
            if part.get_content_type() == "message/rfc822" or isinstance(part._payload, list):
                continue
            try:
                payload = part.get_payload(decode=True) or b""
            except (LookupError, UnicodeError, ValueError):  # the stdlib trips on some charsets
                payload = str(part._payload).encode("utf-8", "surrogateescape")
            for text in _decode(payload, part.get_content_charset()):
                found.append(text)
                if part.get_content_subtype() == "html" or filename.endswith((".htm", ".html")):
                    found.append(rendered(text))
    return found


def readable_addresses(message: bytes, addresses) -> set[str]:
    """Which of addresses a reader could read somewhere in message, as a word of its own."""
    seen = [drawn(text) for text in texts(message)]
    found = set()
    for address in addresses:
        pattern = re.compile(r"(?<![a-z0-9._%+\-])" + re.escape(address.casefold()) + r"(?![a-z0-9\-])")
        if any(pattern.search(text) for text in seen):
            found.add(address)
    return found
