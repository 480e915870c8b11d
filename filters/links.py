"""Links: no way off the marketplace in a seller's message.

Caught: http(s):// and www. addresses, bare domains judged against the public
suffix list (so "e.g." and "3.5" are not domains), hxxp:// and hidden dots
(example[.]com, example dot com), and in HTML every link target, form and
remote image. Domains in the allow-list pass.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from . import domains
from .content import Finding, Readable, around
from .settings import LinksRule

_URL = re.compile(r"(?i)\b(?:h[tx]{2}ps?|ftp)\s*(?::|\[:\])\s*//\s*[^\s<>\"')\]]+")
_WWW = re.compile(r"(?i)(?<![\w.])www\d{0,3}\s*(?:\.|\[\.\]|\(\.\))\s*[a-z0-9\-]+[^\s<>\"')\]]*")


class LinkDetector:
    def __init__(self, settings: LinksRule):
        self.allowed = {d.lower().strip(".") for d in settings.allowed_domains}

    def _allowed(self, host: str) -> bool:
        host = host.lower().strip(".")
        registered = domains.registered_domain(host)
        return any(host == a or host.endswith("." + a) or registered == a for a in self.allowed)

    def _host(self, target: str) -> str:
        target = re.sub(r"(?i)^h[tx]{2}p", "http", target.strip())
        if target.startswith("//"):
            target = "http:" + target
        if "://" not in target:
            target = "http://" + target
        try:
            return urlsplit(target).hostname or ""
        except ValueError:
            return ""

    def check(self, content: Readable) -> Finding | None:
        for target in content.links:
            if not self._allowed(self._host(target)):
                return Finding(target[:120], "a link in the HTML of the message")
        text = domains.reveal(content.text)
        for pattern, reason in ((_URL, "a web address"), (_WWW, "a web address")):
            for match in pattern.finditer(text):
                if not self._allowed(self._host(match.group(0))):
                    return Finding(around(text, match.start(), match.end()), reason)
        for match in domains.domains_in(text):
            if not self._allowed(match.group(1)):
                return Finding(around(text, match.start(), match.end()), f"the domain name {match.group(1)}")
        return None
