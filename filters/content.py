"""What a content rule looks at: the readable text of a body or a text attachment."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import html as html_reader


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


def readable(texts: tuple[str, ...] | list[str], htmls: tuple[str, ...] | list[str] = ()) -> Readable:
    reading = Readable("\n".join(texts))
    for html in htmls:
        parsed = html_reader.read(html)
        reading.text += "\n" + parsed.text
        reading.links += parsed.links
        reading.mailtos += parsed.mailtos
    return reading


def around(text: str, start: int, end: int, margin: int = 40) -> str:
    """The match with a little context, on one line, for a notice."""
    snippet = text[max(0, start - margin): end + margin]
    return " ".join(snippet.split())
