"""Links: no way off the marketplace in a seller's message.

Caught: http(s):// and www. addresses, bare domains judged against the public
suffix list (so "e.g." and "3.5" are not domains), hxxp:// and hidden dots
(example[.]com, example dot com), and in HTML every link target, form and
remote image. Domains in the allow-list pass.
"""
from __future__ import annotations

import hashlib
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

    def _found(self, text: str, links: list[str]):
        """(finding, host) for every link not on the allow-list: HTML targets, then the text's."""
        for target in links:
            host = self._host(target)
            if not self._allowed(host):
                yield Finding(target[:120], "a link in the HTML of the message"), host or target
        text = domains.reveal(text)
        for pattern, reason in ((_URL, "a web address"), (_WWW, "a web address")):
            for match in pattern.finditer(text):
                host = self._host(match.group(0))
                if not self._allowed(host):
                    yield Finding(around(text, match.start(), match.end()), reason), host or match.group(0)
        for match in domains.domains_in(text):
            if not self._allowed(match.group(1)):
                yield (Finding(around(text, match.start(), match.end()), f"the domain name {match.group(1)}"),
                       match.group(1))

    def check(self, content: Readable, written: frozenset[str] = frozenset()) -> Finding | None:
        """written: fingerprints of the links the other party wrote. A link in a quote of them is theirs;
        one the sender wrote now, or in a quote the other party never wrote, is the sender's."""
        own = [link for link in content.links if link not in content.quoted_links]
        for finding, _ in self._found(content.own_text if written else content.text, own if written else content.links):
            return finding
        if written:
            for finding, host in self._found(content.text, content.links):
                if fingerprint(host) not in written:
                    return finding
        return None

    def written(self, content: Readable) -> frozenset[str]:
        """Fingerprints of every link in content, for telling later quotes of it from the sender's own."""
        return frozenset(fingerprint(host) for _, host in self._found(content.text, content.links))


def fingerprint(host: str) -> str:
    """A link's registered domain, hashed: the store keeps which links a party wrote, not the links."""
    host = host.lower().strip(".")
    return hashlib.sha256((domains.registered_domain(host) or host).encode("utf-8", "replace")).hexdigest()[:16]
