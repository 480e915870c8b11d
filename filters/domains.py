"""Is this a domain name? Judged against the public-suffix list, never by a guess at TLDs.

tldextract ships a snapshot of the list; it is told never to fetch a newer one,
so the relay makes no network calls and gives the same answer every time.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterator

import tldextract

# Text that hides a dot: example[.]com, example(.)com, example dot com,
# example-dot-com, "example . com" before a common suffix.
# Each pattern starts with a literal or a space, so a scan of a long text stays fast.
_BRACKET_DOT = re.compile(r"[\[({]\s*(?:\.|dot|punto|titik)\s*[\])}]", re.IGNORECASE)
_COMMON_SUFFIX = r"(?:com|net|org|shop|store|online|site|info|biz|co|es|it|id|uk|de|fr|io|me|us|ly)\b"
# "punto" and "titik" are also everyday words ("a las 9 en punto"): they stand for a dot only
# after a name of three letters or more.
_WORD_DOT = re.compile(r"(?:\s{1,3}(?:dot|\.)\s{1,3}|(?<=[\w\-]{3})\s{1,3}(?:punto|titik)\s{1,3}|-dot-)(?="
                       + _COMMON_SUFFIX + ")", re.IGNORECASE)
# "www punto shop punto com": the dot after www, spelled out.
_WWW_WORD_DOT = re.compile(r"(?i)\b(www\d{0,3})\s+(?:dot|punto|titik)\s+(?=[a-z0-9])")
_CANDIDATE = re.compile(
    r"(?<![\w@.\-])((?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_][\w\-]{0,62})(?![\w@\-]|\.\w)",
)
# Abbreviations and file names that happen to end in a real suffix.
_NOT_DOMAINS = {"gent.mo", "gent.ma", "gent.mi", "preg.mo", "preg.ma", "ill.mo", "ill.ma", "ch.mo", "ch.ma", "sig.na",
                "sig.ra", "egr.gio", "co.ltd", "s.p.a", "s.r.l"}
_FILE_SUFFIXES = {"ai", "zip", "mov", "md", "sh", "py", "pl", "rs", "ps", "cc", "so", "app"}


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=False)


def _dot_after_a_word(match: re.Match) -> str:
    start = match.start()
    return "." if start and match.string[start - 1].isalnum() else match.group(0)


# Characters that IGNORECASE matches to an ASCII letter of the patterns above although str.lower()
# does not make them that letter (dotless i, capital I with dot, long s, Kelvin sign): with one of
# them in the text, the literal checks in reveal() would not be exact, so every pattern runs.
_ODD_FOLDS = ("\u0131", "\u0130", "\u017f", "\u212a")
_SPACED_DOT = re.compile(r"\s\.\s")  # the spaced dot of _WORD_DOT, "example . com"


def reveal(text: str) -> str:
    """The text with obfuscated dots written as dots."""
    # Each pattern runs only where a literal it cannot match without is in the text: over a long
    # letter with none, the three scans cost a tenth of a second per megabyte.
    lowered = text.lower()
    every = not text.isascii() and any(odd in text for odd in _ODD_FOLDS)
    # "example [.] com" becomes "example . com", which the second pass joins.
    if every or "[" in text or "(" in text or "{" in text:
        text = _BRACKET_DOT.sub(".", text)
        lowered = text.lower()
    if every or "www" in lowered:
        text = _WWW_WORD_DOT.sub(r"\1.", text)
        lowered = text.lower()
    if every or "dot" in lowered or "punto" in lowered or "titik" in lowered or _SPACED_DOT.search(text):
        text = _WORD_DOT.sub(_dot_after_a_word, text)
    return text


@lru_cache(maxsize=1)
def _top_labels() -> frozenset[str]:
    """The last label of every public suffix: a name ending in anything else is no domain."""
    return frozenset(suffix.rsplit(".", 1)[-1].lower() for suffix in _extractor().tlds)


@lru_cache(maxsize=4096)
def registered_domain(host: str) -> str | None:
    """example.co.uk for shop.example.co.uk; None if host is not under a public suffix."""
    host = host.strip(".").lower()
    top = host.rsplit(".", 1)[-1]
    if top not in _top_labels() and not top.startswith("xn--"):
        return None  # "report.pdf", "v2.final": the common case, answered without the suffix list
    parts = _extractor()(host)
    if not parts.suffix or not parts.domain:
        return None
    return f"{parts.domain}.{parts.suffix}"


def _looks_like_a_domain(written: str) -> bool:
    # "word.Word" is a sentence without its space ("Thanks.See you", "hoy.Es un"),
    # not a domain: after a dot, a domain's labels are not capitalised words.
    if any(label[:1].isupper() and label[1:2].islower() for label in written.split(".")[1:]):
        return False
    lowered = written.lower()
    labels = lowered.split(".")
    if len(labels) == 2 and len(labels[0]) == 1 and len(labels[1]) == 2:
        return False  # "p.es", "c.so", "n.ro": abbreviations (a one-letter name under a country code is no shop)
    if lowered in _NOT_DOMAINS or (lowered.count(".") == 1 and lowered.rsplit(".", 1)[1] in _FILE_SUFFIXES):
        return False
    return registered_domain(written) is not None


def domains_in(text: str) -> Iterator[re.Match]:
    """Every bare domain name in text (group 1 is the name as written)."""
    for match in _CANDIDATE.finditer(text):
        if _looks_like_a_domain(match.group(1)):
            yield match
