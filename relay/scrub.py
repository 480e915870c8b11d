"""Find the parties' real addresses in text, however a reader would read them, and swap in aliases.

Two passes. The first works on bytes and knows how clients write an address
plainly: in `mailto:` links (sometimes with %40 for the @) and as HTML
character references (&#64;, &commat;). A text part in any ASCII-compatible
charset is scrubbed without being decoded, and its other bytes stay exactly
as they came.

The second reads text the way it is drawn (filters/reading.py): fullwidth
letters, `＠` and the Kelvin sign fold to their plain forms, soft hyphens,
zero-width spaces and control characters vanish, and in HTML tags and
comments put nothing between their neighbours. Only when that reading holds
a real address does the slow, exact pass run: it maps the folded text back
to the characters that drew it and replaces them, keeping the markup in
between, so `<b>ka</b>simir` becomes `<b>alias</b>`.
"""
from __future__ import annotations

import html as html_entities
import re
from dataclasses import dataclass, field
from functools import lru_cache

from filters.reading import comparable, fold_char

from .charsets import from_utf8, to_utf8

_AT = rb"(?:@|%40|&#0*64;|&#x0*40;|&commat;)"
_BEFORE = rb"(?<![A-Za-z0-9._%+\-])"
# An address ends where the domain ends: not before more domain characters.
# "ann@example.com.au" is then scrubbed too, which is the safe mistake; leaving
# "ann@example.com.Thanks" (a missing space) readable would not be.
_AFTER = rb"(?![A-Za-z0-9\-])"
_AT_FORMS = re.compile(_AT, re.IGNORECASE)
_READ_AT = r"(?:@|%40|&#0*64;?|&#x0*40;?|&commat;?)"
_READ_AT_FORMS = re.compile(_READ_AT)

_CHARACTER_REFERENCE = re.compile(
    rb"&#(?:[xX]([0-9a-fA-F]{1,6})|([0-9]{1,7}));?|&(commat|period|lowbar|hyphen|dash|plus|percnt);?")
_NAMED = {b"commat": "@", b"period": ".", b"lowbar": "_", b"hyphen": "-", b"dash": "-", b"plus": "+", b"percnt": "%"}
_ADDRESS_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._%+-")

# HTML as the exact pass cuts it: comments, tags and character references are markup, the rest is text.
# A comment or tag left open runs to the end or the next `<`, so every match is linear.
_MARKUP = re.compile(r"<!--.*?(?:-->|\Z)|<[A-Za-z/!?][^<>]*>?", re.DOTALL)
_HTML_TOKEN = re.compile(r"(<!--.*?(?:-->|\Z)|<[A-Za-z/!?][^<>]*>?)|(&#?[A-Za-z0-9]{1,32};?)", re.DOTALL)
_WINDOW, _OVERLAP = 32768, 4096


def _plain_reference(match: re.Match) -> bytes:
    hex_code, decimal, named = match.groups()
    char = _NAMED[named] if named else chr(min(int(hex_code, 16) if hex_code else int(decimal), 0x10FFFF))
    return char.encode("ascii") if char in _ADDRESS_CHARACTERS else match.group(0)


def _canonical(found: bytes) -> str:
    return _AT_FORMS.sub(b"@", found).decode("utf-8", "replace").lower()


def rendered(text: str) -> str:
    """HTML as a reader reads it for addresses: markup gone, character references resolved."""
    return html_entities.unescape(_MARKUP.sub("", text)) if "<" in text or "&" in text else text


@dataclass(frozen=True)
class AddressScrubber:
    """Replaces each real address (lower-cased key) with its alias."""

    replacements: dict[str, str]
    _pattern: re.Pattern | None = field(init=False, repr=False, compare=False, default=None)
    _reading: re.Pattern | None = field(init=False, repr=False, compare=False, default=None)
    _aliases: dict[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)
    _read_locals: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())
    """Every reading begins with one of these: text holding none of them holds no address (str.find is
    a hundred times faster than the reading pattern over a long text)."""

    def __post_init__(self) -> None:
        alternatives, readings = [], []
        # Longest first, so a.b@x.example is not matched as b@x.example.
        for address in sorted(self.replacements, key=len, reverse=True):
            local, _, domain = address.encode("utf-8").rpartition(b"@")
            alternatives.append(re.escape(local) + _AT + re.escape(domain))
            folded = comparable(address)
            self._aliases[folded] = self.replacements[address]
            read_local, _, read_domain = folded.rpartition("@")
            readings.append(re.escape(read_local) + _READ_AT + re.escape(read_domain))
        if alternatives:
            pattern = re.compile(_BEFORE + rb"(?:" + rb"|".join(alternatives) + rb")" + _AFTER, re.IGNORECASE)
            object.__setattr__(self, "_pattern", pattern)
            reading = re.compile(r"(?<![a-z0-9._%+\-])(?:" + "|".join(readings) + r")(?![a-z0-9\-])")
            object.__setattr__(self, "_reading", reading)
            object.__setattr__(self, "_read_locals", tuple({comparable(a).rpartition("@")[0] for a in self.replacements}))

    # -- first pass: bytes, plain spellings --------------------------------------

    def _swap(self, match: re.Match) -> bytes:
        return self.replacements[_canonical(match.group(0))].encode("utf-8")

    def scrub(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        return self._pattern.sub(self._swap, data)

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
        """The real addresses spelled plainly in data, canonical form."""
        if self._pattern is None:
            return []
        return sorted({_canonical(m.group(0)) for m in self._pattern.finditer(data)})

    # -- second pass: text as it is read ----------------------------------------

    def readable(self, text: str, html: bool = False) -> list[str]:
        """The real addresses a reader would read in text (or in rendered HTML), canonical form."""
        if self._reading is None:
            return []
        folded = comparable(rendered(text) if html else text)
        if not any(local in folded for local in self._read_locals):
            return []
        return sorted({_READ_AT_FORMS.sub("@", m.group(0)) for m in self._reading.finditer(folded)})

    def scrub_text(self, text: str, html: bool = False) -> str:
        """Every real address a reader could read in text replaced by its alias."""
        text = from_utf8(self.scrub(to_utf8(text)))
        if not self.readable(text, html):
            return text
        spans: dict[tuple[int, int], str] = {}
        for start in range(0, max(len(text), 1), _WINDOW):
            window = text[start:start + _WINDOW + _OVERLAP]
            if self.readable(window, html):
                for (begin, end), alias in self._exact(window, html).items():
                    spans[(start + begin, start + end)] = alias
        if not spans:  # spread wider than a window: read it whole
            spans = self._exact(text, html)
        return _replaced(text, spans, html)

    def _exact(self, text: str, html: bool) -> dict[tuple[int, int], str]:
        """(start, end) in text of each readable real address, with its alias."""
        folded: list[str] = []
        origin: list[tuple[int, int]] = []  # for each folded character, the source span that drew it
        for token_start, token_end, kind in _tokens(text, html):
            if kind == "markup":
                continue
            if kind == "reference":
                piece = "".join(fold_char(c) for c in html_entities.unescape(text[token_start:token_end]))
                folded.append(piece)
                origin += [(token_start, token_end)] * len(piece)
                continue
            for index in range(token_start, token_end):
                piece = fold_char(text[index])
                if piece:
                    folded.append(piece)
                    origin += [(index, index + 1)] * len(piece)
        spans = {}
        for match in self._reading.finditer("".join(folded)):
            alias = self._aliases.get(_READ_AT_FORMS.sub("@", match.group(0)))
            if alias:
                spans[(origin[match.start()][0], origin[match.end() - 1][1])] = alias
        return spans


def _tokens(text: str, html: bool):
    """(start, end, kind) over text: kind is text, markup or reference (HTML only)."""
    if not html:
        yield 0, len(text), "text"
        return
    position = 0
    for match in _HTML_TOKEN.finditer(text):
        if match.start() > position:
            yield position, match.start(), "text"
        yield match.start(), match.end(), "markup" if match.group(1) else "reference"
        position = match.end()
    if position < len(text):
        yield position, len(text), "text"


def _replaced(text: str, spans: dict[tuple[int, int], str], html: bool) -> str:
    """Each span's readable characters replaced by its alias; markup inside a span stays, so tags still pair."""
    out, position = [], 0
    for (start, end), alias in sorted(spans.items()):
        if start < position:
            continue  # overlaps one already replaced (windows overlap)
        out += [text[position:start], alias]
        if html:
            out += [text[m.start() + start:m.end() + start] for m in _MARKUP.finditer(text[start:end])]
        position = end
    out.append(text[position:])
    return "".join(out)


def for_route(route) -> AddressScrubber:
    """Both parties' addresses, each replaced by the party's own alias in this conversation."""
    return _scrubber(tuple(sorted({
        **{address: route.sender_alias for address in route.sender.sender_addresses},
        **{address: route.recipient_alias for address in route.recipient.sender_addresses},
    }.items())))


@lru_cache(maxsize=4096)
def _scrubber(replacements: tuple[tuple[str, str], ...]) -> AddressScrubber:
    """One per conversation's addresses, built once: compiling its patterns cost more than using them."""
    return AddressScrubber(dict(replacements))
