"""Text as a reader sees it on screen, in bounded time and memory.

The content rules ask "is there a link here?" and the rewrite and the leak
check ask "is a party's address readable here?"; both must read text the way
a mail client shows it, or a sender can write `ann＠example.com`,
`a\u00adnn@example.com` or `ᴋasimir` and be read one way by the relay and
another by the buyer. Three things happen on screen:

- compatibility forms look like their plain letters (NFKC: fullwidth letters,
  `＠`, `﹫`, the Kelvin sign, ligatures);
- default-ignorable characters (soft hyphen, zero-width space, word joiner,
  variation selectors, tag characters) and control characters are not drawn;
- `。` and `｡` end a sentence the way `.` does.

Each character is folded on its own through a translation table, so the cost
is one pass and the growth is bounded: the few characters NFKC spells with
more than MAX_EXPANSION letters (U+FDFA is eighteen) become a space, since no
reader takes them for part of an address or a link. Whole-text NFKC would let
12 MB of U+FDFA grow into hundreds of megabytes.
"""
from __future__ import annotations

import re
import unicodedata

MAX_EXPANSION = 4
_CACHE_LIMIT = 200_000  # distinct code points remembered per table; the rest are folded each time

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt), which renderers do not draw.
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
_KEPT_CONTROLS = frozenset("\t\n\r\x0c")
_NEEDS_FOLDING_ASCII = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# Runs of what folding may change; mail is mostly ASCII, so the rest is left as it is in one C scan.
_FOLDABLE = re.compile(r"[^\t\n\x0c\r\x20-\x7e]+")
_FULL_STOPS = {"\u3002": ".", "\uff61": "."}


def ignorable(code: int) -> bool:
    """Drawn as nothing: a default-ignorable code point or a control character other than white space."""
    if code < 0x20 or 0x7F <= code < 0xA0:
        return chr(code) not in _KEPT_CONTROLS
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def _drawn(char: str) -> str:
    return _FULL_STOPS.get(char) or unicodedata.normalize("NFKC", char)


def _compared(char: str) -> str:
    return _drawn(char).casefold()


def _unaccented(char: str) -> str:
    """Case and accents folded away: the form phrase lists are written in ("Reseña" is "resena")."""
    decomposed = unicodedata.normalize("NFKD", _compared(char))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class _FoldTable(dict):
    """A str.translate table filled in as characters are met."""

    def __init__(self, fold):
        super().__init__()
        self.fold = fold

    def __missing__(self, code: int):
        value = None if ignorable(code) else self.fold(chr(code))
        if value is not None and len(value) > MAX_EXPANSION:
            value = " "
        if len(self) < _CACHE_LIMIT:
            self[code] = value
        return value


_ON_SCREEN = _FoldTable(_drawn)
_COMPARABLE = _FoldTable(_compared)
_UNACCENTED = _FoldTable(_unaccented)


def _folded(text: str, table: _FoldTable) -> str:
    if text.isascii() and not _NEEDS_FOLDING_ASCII.search(text):
        return text
    return _FOLDABLE.sub(lambda run: run.group(0).translate(table), text)


def on_screen(text: str) -> str:
    """The text as drawn: compatibility forms folded, invisible characters gone; case kept."""
    return _folded(text, _ON_SCREEN)


def comparable(text: str) -> str:
    """The text as drawn and case-folded: the form in which two spellings of an address are the same."""
    return _folded(text, _COMPARABLE).lower()


def unaccented(text: str) -> str:
    """Lower case, accents removed, invisible characters gone, one pass and bounded."""
    return _folded(text, _UNACCENTED).lower()


def fold_char(char: str) -> str:
    """One character's comparable form ('' for an invisible one)."""
    value = _COMPARABLE[ord(char)]
    return "" if value is None else value
