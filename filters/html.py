"""Read an HTML body the way a buyer's mail client renders it, with a real HTML parser.

Only what a reader can see or follow counts: visible text, web link targets,
form actions and remote images (also in srcset and inline style url(...)).
Style sheets, namespace declarations (Outlook's xmlns:o="urn:..."), tel: and
calendar links, and Gmail's emoji images are markup, not ways off the
marketplace.

libxml2 (through lxml) parses, and the reader only listens to its events: no
tree is built, so memory grows with the visible text, not with the markup
(10 MB of tags once took BeautifulSoup 1.5 GB). Text is joined as it is drawn:
inline elements (`<span>`, `<b>`, a comment) put nothing between their
neighbours, so `ka<span></span>simir` reads as one word; block elements
start a new line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from . import domains

_WEB = re.compile(r"(?i)^\s*(?:https?:|ftp:|//|www\.)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_STYLE_URL = re.compile(r"(?i)url\(\s*['\"]?([^'\")\s]+)")
_TARGETS = ("href", "xlink:href", "src", "data", "background", "action", "poster")
_HIDDEN = frozenset({"style", "script", "head", "title", "template"})
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "center", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul",
})
_CELLS = frozenset({"td", "th"})
_PLAIN = (False, False)
_CHUNK = 1 << 16
_SURROGATE = re.compile("[\ud800-\udfff]")  # UTF-7 can spell a lone one; libxml2 takes UTF-8 only
MAX_TAGS = 100_000
"""More than this is markup nobody reads as mail; reading it would cost seconds per message."""


class TooMuchMarkup(ValueError):
    """HTML with more tags than a message reasonably has (MAX_TAGS)."""


def check_size(html: str) -> None:
    """Raise TooMuchMarkup before any parsing if html has more than MAX_TAGS tags (counted as `<`)."""
    if html.count("<") > MAX_TAGS:
        raise TooMuchMarkup(f"an HTML part has more than {MAX_TAGS:,} tags")


@dataclass
class HtmlReading:
    text: str
    """The visible text, a line per block."""
    own_text: str = ""
    """The visible text without quoted replies (blockquote, Gmail's quote block)."""
    joined: str = ""
    """The visible text with nothing at all between elements: the widest reading of what runs together."""
    links: list[str] = field(default_factory=list)
    """Targets a reader could follow off the message: web links, form actions, remote images."""
    mailtos: list[str] = field(default_factory=list)
    quoted_links: list[str] = field(default_factory=list)
    """Those of `links` inside a quoted reply."""


def _followable(target: str) -> bool:
    """A web address, or a scheme-less target naming a domain (myshop.com/x)."""
    if _WEB.match(target):
        return True
    if _SCHEME.match(target) or target.startswith(("#", "/")):
        return False  # cid:, tel:, calendar links, anchors, relative paths
    return domains.registered_domain(target.split("/")[0].split("?")[0]) is not None


def _quote_container(tag: str, attrib) -> bool:
    return tag == "blockquote" or "gmail_quote" in (attrib.get("class") or "").split()


class _Listener:
    """lxml parser target: collects what a reader sees and can follow."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.own: list[str] = []
        self.joined: list[str] = []
        self.links: list[str] = []
        self.mailtos: list[str] = []
        self.quoted_links: list[str] = []
        self.stack: list[tuple[bool, bool]] = []  # (hidden, quote) of each open element
        self.hidden = 0
        self.quoted = 0

    def _break(self, separator: str) -> None:
        self.text.append(separator)
        if not self.quoted:
            self.own.append(separator)

    def start(self, tag: str, attrib) -> None:
        if not attrib and tag not in _HIDDEN and tag != "blockquote":  # most tags: nothing to follow or hide
            self.stack.append(_PLAIN)
            if tag in _BLOCKS or tag in _CELLS:
                self._break("\n" if tag in _BLOCKS else " ")
            if tag == "form":
                self.links.append("<form>")
            return
        attrib = dict(attrib)
        hidden, quote = tag in _HIDDEN, _quote_container(tag, attrib)
        self.stack.append((hidden, quote))
        self.hidden += hidden
        if tag in _BLOCKS or tag in _CELLS:
            self._break("\n" if tag in _BLOCKS else " ")
        self.quoted += quote
        if tag == "form":
            self.links.append(attrib.get("action") or "<form>")
        if tag == "img" and attrib.get("data-emoji"):
            return  # Gmail draws picked emoji as images from its own font server
        targets = [attrib.get(name) for name in _TARGETS]
        targets += (attrib.get("srcset") or "").split(",")
        targets += _STYLE_URL.findall(attrib.get("style") or "")
        for value in targets:
            if not value or not value.strip():
                continue
            target = value.strip().split()[0]
            if target.lower().startswith("mailto:"):
                self.mailtos.append(target[7:].split("?")[0])
            elif _followable(target):
                self.links.append(target)
                if self.quoted:
                    self.quoted_links.append(target)

    def end(self, tag: str) -> None:
        if not self.stack:
            return
        hidden, quote = self.stack.pop()
        self.hidden -= hidden
        self.quoted -= quote
        if tag in _BLOCKS:
            self._break("\n")

    def data(self, data: str) -> None:
        if self.hidden:
            return
        self.text.append(data)
        self.joined.append(data)
        if not self.quoted:
            self.own.append(data)

    def comment(self, text: str) -> None:
        pass  # not drawn, and nothing between its neighbours

    def close(self) -> HtmlReading:
        return HtmlReading(text="".join(self.text), own_text="".join(self.own), joined="".join(self.joined),
                           links=self.links, mailtos=self.mailtos, quoted_links=self.quoted_links)


def read(html: str) -> HtmlReading:
    check_size(html)
    if not html.isascii() and _SURROGATE.search(html):
        html = _SURROGATE.sub("\ufffd", html)
    listener = _Listener()
    parser = etree.HTMLParser(target=listener, no_network=True, recover=True)
    try:
        for start in range(0, len(html), _CHUNK):
            parser.feed(html[start:start + _CHUNK])
        parser.close()
    except etree.LxmlError:
        pass  # libxml2 gives up only on input that is not HTML at all; what it saw is read
    return listener.close()
