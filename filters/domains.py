"""Is this a domain name? Judged against the public-suffix list, never by a guess at TLDs.

tldextract ships a snapshot of the list; it is told never to fetch a newer one,
so the relay makes no network calls and gives the same answer every time.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterator

import tldextract

# Text that hides a dot: example[.]com, example(.)com, example dot com.
_BRACKET_DOT = re.compile(r"\s*[\[({]\s*(?:\.|dot|punto|titik)\s*[\])}]\s*", re.IGNORECASE)
_WORD_DOT = re.compile(
    r"(?<=\w)\s+(?:dot|punto|titik)\s+(?=(?:com|net|org|shop|store|online|site|info|biz|co|es|it|id|uk|de|fr|io|me|us)\b)",
    re.IGNORECASE,
)
_CANDIDATE = re.compile(
    r"(?<![\w@.\-])((?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9\-]{0,62})(?![\w@\-]|\.[a-z0-9])",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=False)


def reveal(text: str) -> str:
    """The text with obfuscated dots written as dots."""
    return _WORD_DOT.sub(".", _BRACKET_DOT.sub(".", text))


def registered_domain(host: str) -> str | None:
    """example.co.uk for shop.example.co.uk; None if host is not under a public suffix."""
    parts = _extractor()(host.strip(".").lower())
    if not parts.suffix or not parts.domain:
        return None
    return f"{parts.domain}.{parts.suffix}"


def domains_in(text: str) -> Iterator[re.Match]:
    """Every bare domain name in text (group 1 is the name as written)."""
    for match in _CANDIDATE.finditer(text):
        if registered_domain(match.group(1)):
            yield match
