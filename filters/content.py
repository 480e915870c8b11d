"""What a content rule looks at: the readable text of a body or a text attachment."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import html as html_reader
from .reading import on_screen

# Between the subject and each body: a sentence break, so that "Re: Your order"
# and a body starting "Now that..." never read as "order now".
PART_BREAK = "\n.\n"
_QUOTED_LINE = re.compile(r"(?m)^[ \t]*>.*$")


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
    quoted_links: list[str] = field(default_factory=list)
    """Those of `links` inside a quoted reply."""


def readable(texts, htmls=()) -> Readable:
    texts = [on_screen(t) for t in texts]
    reading = Readable(PART_BREAK.join(texts), own_text=PART_BREAK.join(_QUOTED_LINE.sub("", t) for t in texts))
    for html in htmls:
        parsed = html_reader.read(html)
        reading.text += PART_BREAK + on_screen(parsed.text)
        reading.own_text += PART_BREAK + on_screen(parsed.own_text)
        reading.links += parsed.links
        reading.mailtos += parsed.mailtos
        reading.quoted_links += parsed.quoted_links
    return reading


def around(text: str, start: int, end: int, margin: int = 40) -> str:
    """The match with a little context, on one line, for a notice."""
    snippet = text[max(0, start - margin): end + margin]
    return " ".join(snippet.split())
