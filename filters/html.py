"""Read an HTML body the way a buyer's mail client would render it, with a real HTML parser.

Only what a reader can see or follow counts: visible text, web link targets,
form actions and remote images (also in srcset and inline style url(...)).
Style sheets, namespace declarations (Outlook's xmlns:o="urn:..."), tel: and
calendar links, and Gmail's emoji images are markup, not ways off the
marketplace.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, Comment

from . import domains

_WEB = re.compile(r"(?i)^\s*(?:https?:|ftp:|//|www\.)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_STYLE_URL = re.compile(r"(?i)url\(\s*['\"]?([^'\")\s]+)")
_TARGETS = ("href", "xlink:href", "src", "data", "background", "action", "poster")


@dataclass
class HtmlReading:
    text: str
    own_text: str = ""
    """The visible text without quoted replies (blockquote, Gmail's quote block)."""
    links: list[str] = field(default_factory=list)
    """Targets a reader could follow off the message: web links, form actions, remote images."""
    mailtos: list[str] = field(default_factory=list)


def _followable(target: str) -> bool:
    """A web address, or a scheme-less target naming a domain (myshop.com/x)."""
    if _WEB.match(target):
        return True
    if _SCHEME.match(target) or target.startswith(("#", "/")):
        return False  # cid:, tel:, calendar links, anchors, relative paths
    return domains.registered_domain(target.split("/")[0].split("?")[0]) is not None


def read(html: str) -> HtmlReading:
    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup(["style", "script", "head", "title", "template"]):
        hidden.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    reading = HtmlReading(text=soup.get_text(" "))
    for tag in soup.find_all(True):
        if tag.name == "form":
            reading.links.append(tag.get("action") or "<form>")
        if tag.name == "img" and tag.get("data-emoji"):
            continue  # Gmail draws picked emoji as images from its own font server
        targets = [tag.get(a) for a in _TARGETS]
        targets += (tag.get("srcset") or "").split(",")
        targets += _STYLE_URL.findall(tag.get("style") or "")
        for value in targets:
            if not isinstance(value, str) or not value.strip():
                continue
            target = value.strip().split()[0]
            if target.lower().startswith("mailto:"):
                reading.mailtos.append(target[7:].split("?")[0])
            elif _followable(target):
                reading.links.append(target)
    for quoted in soup.find_all(["blockquote"]) + soup.find_all(class_="gmail_quote"):
        quoted.decompose()
    reading.own_text = soup.get_text(" ")
    return reading
