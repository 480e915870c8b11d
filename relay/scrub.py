"""Find the parties' real addresses in text, however a client wrote them, and swap in aliases.

Clients write an address plainly, in `mailto:` links (sometimes with %40 for
the @), and as HTML entities (&#64;, &commat;). The match works on bytes, so a
text part in any ASCII-compatible charset is scrubbed without being decoded
and its other bytes stay exactly as they came.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_AT = rb"(?:@|%40|&#0*64;|&#x0*40;|&commat;)"
_BEFORE = rb"(?<![A-Za-z0-9._%+\-])"
# An address ends where the domain ends: not before more domain characters.
# "ann@example.com.au" is then scrubbed too, which is the safe mistake; leaving
# "ann@example.com.Thanks" (a missing space) readable would not be.
_AFTER = rb"(?![A-Za-z0-9\-])"
_AT_FORMS = re.compile(_AT, re.IGNORECASE)


_CHARACTER_REFERENCE = re.compile(
    rb"&#(?:[xX]([0-9a-fA-F]{1,6})|([0-9]{1,7}));?|&(commat|period|lowbar|hyphen|dash|plus|percnt);?")
_NAMED = {b"commat": "@", b"period": ".", b"lowbar": "_", b"hyphen": "-", b"dash": "-", b"plus": "+", b"percnt": "%"}
_ADDRESS_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._%+-")


def _plain_reference(match: re.Match) -> bytes:
    hex_code, decimal, named = match.groups()
    char = _NAMED[named] if named else chr(min(int(hex_code, 16) if hex_code else int(decimal), 0x10FFFF))
    return char.encode("ascii") if char in _ADDRESS_CHARACTERS else match.group(0)


def _canonical(found: bytes) -> str:
    return _AT_FORMS.sub(b"@", found).decode("utf-8", "replace").lower()


@dataclass(frozen=True)
class AddressScrubber:
    """Replaces each real address (lower-cased key) with its alias."""

    replacements: dict[str, str]
    _pattern: re.Pattern | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        alternatives = []
        # Longest first, so a.b@x.example is not matched as b@x.example.
        for address in sorted(self.replacements, key=len, reverse=True):
            local, _, domain = address.encode("utf-8").rpartition(b"@")
            alternatives.append(re.escape(local) + _AT + re.escape(domain))
        if alternatives:
            pattern = re.compile(_BEFORE + rb"(?:" + rb"|".join(alternatives) + rb")" + _AFTER, re.IGNORECASE)
            object.__setattr__(self, "_pattern", pattern)

    def _swap(self, match: re.Match) -> bytes:
        return self.replacements[_canonical(match.group(0))].encode("utf-8")

    def scrub(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        return self._pattern.sub(self._swap, data)

    def scrub_text(self, text: str) -> str:
        return self.scrub(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")

    def scrub_html(self, data: bytes) -> bytes:
        """HTML scrubbed as a browser shows it: character references that spell out an
        address (&#97;nn&#64example.com, with or without ;) are written plainly first,
        but only when they hide a real address, so other HTML stays as it came."""
        if b"&" in data:
            revealed = _CHARACTER_REFERENCE.sub(_plain_reference, data)
            if revealed != data and self.found(revealed):
                data = revealed
        return self.scrub(data)

    def found(self, data: bytes) -> list[str]:
        """The real addresses present in data, canonical form."""
        if self._pattern is None:
            return []
        return sorted({_canonical(m.group(0)) for m in self._pattern.finditer(data)})
