"""What a content rule looks at: the readable text of a body or a text attachment."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from . import html as html_reader

# Between the subject and each body: a sentence break, so that "Re: Your order"
# and a body starting "Now that..." never read as "order now".
PART_BREAK = "\n.\n"
_QUOTED_LINE = re.compile(r"(?m)^[ \t]*>.*$")
# Format characters a reader never sees: soft hyphen, zero-width and direction marks, BOM.
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")


@dataclass(frozen=True)
class Finding:
    snippet: str
    reason: str


@dataclass
class Readable:
    """Plain text and, for HTML, what the parser found to follow."""

    text: str
    links: list[str] = field(default_factory=list)
    mailtos: list[str] = field(default_factory=list)
    own_text: str = ""
    """The text without quoted replies ("> " lines, HTML blockquotes): what the sender wrote now."""


def normalise(text: str) -> str:
    """Text as it looks on screen: compatibility forms folded (full-width letters and
    dots), invisible characters (soft hyphens, zero-width spaces) removed."""
    if text.isascii():
        return text
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text).replace("\u3002", "."))


def readable(texts, htmls=()) -> Readable:
    texts = [normalise(t) for t in texts]
    reading = Readable(PART_BREAK.join(texts), own_text=PART_BREAK.join(_QUOTED_LINE.sub("", t) for t in texts))
    for html in htmls:
        parsed = html_reader.read(html)
        reading.text += PART_BREAK + normalise(parsed.text)
        reading.own_text += PART_BREAK + normalise(parsed.own_text)
        reading.links += parsed.links
        reading.mailtos += parsed.mailtos
    return reading


def around(text: str, start: int, end: int, margin: int = 40) -> str:
    """The match with a little context, on one line, for a notice."""
    snippet = text[max(0, start - margin): end + margin]
    return " ".join(snippet.split())
