"""Read an HTML body the way a buyer's mail client would render it, with a real HTML parser.

Only what a reader can see or follow counts: visible text, link targets, form
actions and remote images. Style sheets, namespace declarations (Outlook's
xmlns:o="urn:...") and CSS url(...) are markup, not links.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bs4 import BeautifulSoup, Comment

_FOLLOWABLE = {("a", "href"), ("area", "href"), ("iframe", "src"), ("embed", "src"), ("object", "data"),
               ("frame", "src"), ("base", "href")}
_REMOTE = ("http://", "https://", "//", "ftp://", "www.")


@dataclass
class HtmlReading:
    text: str
    links: list[str] = field(default_factory=list)
    """Targets a reader could follow off the message: hrefs, form actions, remote images."""
    mailtos: list[str] = field(default_factory=list)


def read(html: str) -> HtmlReading:
    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup(["style", "script", "head", "title", "template"]):
        hidden.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    reading = HtmlReading(text=soup.get_text(" "))
    for tag in soup.find_all(True):
        name = tag.name.lower()
        if name == "form":
            reading.links.append(tag.get("action") or "<form>")
        for attribute in ("href", "src", "data", "background", "action"):
            value = tag.get(attribute)
            if not isinstance(value, str) or not value.strip():
                continue
            target = value.strip()
            lowered = target.lower()
            if lowered.startswith("mailto:"):
                reading.mailtos.append(target[7:].split("?")[0])
            elif (name, attribute) in _FOLLOWABLE and not lowered.startswith(("#", "cid:", "data:")):
                reading.links.append(target)
            elif lowered.startswith(_REMOTE):  # a remote image, background or other fetched resource
                reading.links.append(target)
    return reading
