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
# The WHATWG encoding standard's encodings (browsers, Thunderbird, Gmail), as Python names them.
_WELL_KNOWN = frozenset({
    "utf-8", "cp866", "iso8859-2", "iso8859-3", "iso8859-4", "iso8859-5", "iso8859-6", "iso8859-7", "iso8859-8",
    "iso8859-10", "iso8859-13", "iso8859-14", "iso8859-15", "iso8859-16", "koi8-r", "koi8-u", "mac-roman", "cp874",
    "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "mac-cyrillic", "gbk",
    "gb18030", "big5", "euc_jp", "iso2022_jp", "shift_jis", "euc_kr", "utf-16-be", "utf-16-le", "utf-16", "iso8859-1",
})
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
        return decoded(data, self.codec_for(data))

    def writing(self, text: str, data: bytes) -> bytes:
        """Text back into the bytes `reading` read it from."""
        return encoded(text, self.codec_for(data))

    def readings(self, data: bytes) -> list[str]:
        """Every codec a reader might read these bytes with: the declared one first, then what clients
        sniff. Bytes that are mostly UTF-8 are read as UTF-8 by many clients whatever the label says,
        and bytes under a label many clients do not know are read the way they fall back. An address
        must be safe in each reading. (The source as it stands, which "show original" reads as UTF-8,
        is read by the rewrite and the leak check on their own.)"""
        first = self.codec_for(data)
        if data.isascii() and self.ascii_compatible:
            return [first]
        found = [first]
        if self.ascii_compatible:
            found.append("utf-8")
        if self.name not in _WELL_KNOWN:  # a label many clients do not know: they fall back
            found += ["utf-8", "latin-1"]
        return list(dict.fromkeys(found))

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


def _keep(error: UnicodeError):
    """Errors handler "keep": an undecodable byte becomes a surrogate escape and back (surrogateescape),
    and a lone surrogate, which UTF-7 and UTF-16 can spell, is written as itself (surrogatepass)."""
    first, second = ("surrogateescape", "surrogatepass") if isinstance(error, UnicodeEncodeError) \
        else ("surrogatepass", "surrogateescape")
    try:
        return codecs.lookup_error(first)(error)
    except UnicodeError:
        return codecs.lookup_error(second)(error)


codecs.register_error("keep", _keep)


def to_utf8(text: str) -> bytes:
    """Text as UTF-8 bytes, whatever surrogates it holds; from_utf8 gives it back."""
    return text.encode("utf-8", "keep")


def from_utf8(data: bytes) -> str:
    return data.decode("utf-8", "keep")


def decoded(data: bytes, codec: str) -> str:
    """data read with codec, each undecodable byte kept as a surrogate escape where the codec allows it.
    UTF-7 and UTF-16 cannot escape a broken ASCII byte; there it shows as U+FFFD, as a reader sees it."""
    try:
        return data.decode(codec, "surrogateescape")
    except UnicodeDecodeError:
        return data.decode(codec, "replace")


def encoded(text: str, codec: str) -> bytes:
    try:
        return text.encode(codec, "surrogateescape")
    except UnicodeEncodeError:
        return text.encode(codec, "replace")


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
