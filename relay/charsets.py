"""Which codec reads a declared charset: one answer for the view, the rewrite, the leak check and notices.

Python's codec registry is wider than the charsets mail uses: rot13, base64,
hex, quopri, uu, zip and bz2 turn bytes into bytes, and idna, punycode and
unicode_escape are text transforms no mail client offers. A label that names
one of those, or nothing at all, is read the way a client reads a charset it
does not know: as UTF-8 when the bytes are valid UTF-8, else byte for byte as
Latin-1. `us-ascii` with 8-bit bytes in it is read the same way, as Gmail and
Apple Mail do. A byte-order mark wins over the label, as in the WHATWG
decode algorithm browsers and Thunderbird follow.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from functools import lru_cache

# Labels mail clients (following the WHATWG encoding standard) accept that Python does not.
_WHATWG_LABELS = {
    "unicode": "utf-16-le", "ucs-2": "utf-16-le", "csunicode": "utf-16-le", "iso-10646-ucs-2": "utf-16-le",
    "unicodefeff": "utf-16-le", "unicodefffe": "utf-16-be",
    "unicode-1-1-utf-8": "utf-8", "unicode11utf8": "utf-8", "unicode20utf8": "utf-8", "x-unicode20utf8": "utf-8",
}
# Text codecs that are not charsets, and codecs that exist only on Windows.
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem",
                           "charmap", "palmos"})
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_PROBE = "Az09 @.%&#;:+-_<>="
_ALL_BYTES = bytes(range(256))


@dataclass(frozen=True)
class Codec:
    """How to read and write the bytes of one text part."""

    name: str | None
    """The Python codec; None means "not a charset the relay knows": sniffed as UTF-8, else Latin-1."""
    ascii_compatible: bool
    """ASCII text is the same bytes in this codec, so an ASCII address can be found and replaced in the bytes."""

    def shown(self, data: bytes) -> str:
        """The text a reader sees; a byte that means nothing shows as U+FFFD."""
        return data.decode(self.codec_for(data), "replace")

    def reading(self, data: bytes) -> str:
        """The text with every byte kept (undecodable ones as surrogate escapes), for `writing` to undo."""
        return data.decode(self.codec_for(data), "surrogateescape")

    def writing(self, text: str, data: bytes) -> bytes:
        """Text back into the bytes `reading` read it from."""
        return text.encode(self.codec_for(data), "surrogateescape")

    def codec_for(self, data: bytes) -> str:
        for bom, name in _BOMS:
            if data.startswith(bom):
                return name
        if self.name is not None:
            return self.name
        try:
            data.decode("utf-8")
            return "utf-8"
        except UnicodeDecodeError:
            return "latin-1"


UNKNOWN = Codec(None, True)


def _usable(name: str) -> bool:
    try:
        info = codecs.lookup(name)
        if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
            return False
        _ALL_BYTES.decode(info.name, "replace")
        return True
    except (LookupError, UnicodeError, ValueError, TypeError):
        return False


@lru_cache(maxsize=512)
def resolve(label: str | None) -> Codec:
    """The codec for a declared charset label (None or empty: US-ASCII, sniffed)."""
    cleaned = (label or "").strip().strip('"').strip().lower()
    name = _WHATWG_LABELS.get(cleaned, cleaned)
    if not name or not _usable(name):
        return UNKNOWN
    name = codecs.lookup(name).name
    if name == "ascii":
        return UNKNOWN  # 8-bit bytes under us-ascii are read as clients read them
    try:
        compatible = _PROBE.encode(name) == _PROBE.encode("ascii") and _PROBE.encode("ascii").decode(name) == _PROBE
    except (UnicodeError, LookupError):
        compatible = False
    return Codec(name, compatible)


def shown(data: bytes, label: str | None) -> str:
    """Bytes in a declared charset as a reader sees them; never raises."""
    return resolve(label).shown(data)
