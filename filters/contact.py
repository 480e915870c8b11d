"""Off-platform contact: an email address other than the conversation's own.

The conversation's aliases and the two parties' real addresses are fine: the
rewrite turns the real ones into aliases, so a signature with the seller's own
address is not a way around the marketplace. Hidden forms count too:
name [at] gmail [dot] com, name at gmail.com.
"""
from __future__ import annotations

import re

from . import domains
from .content import Finding, Readable, around
from .view import Facts

_ADDRESS = re.compile(r"(?i)(?<![\w.+\-])[\w.+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+")
# Inside a lookahead, so matches may overlap: in "write directly at x [at] gmail
# [dot] com", the failed candidate "directly at x" must not use up "x".
_HIDDEN = re.compile(
    r"(?i)(?=(?<![\w.+\-])([\w.+\-]+)(\s*(?:\[\s*(?:at|@)\s*\]|\(\s*(?:at|@)\s*\)|\{\s*at\s*\})\s*|\s+at\s+)"
    r"([a-z0-9\-]+(?:(?:\.|\s*\[\s*(?:\.|dot)\s*\]\s*|\s*\(\s*(?:\.|dot)\s*\)\s*|\s+dot\s+)[a-z0-9\-]+)+))"
)


# "name at domain" is also how people say where things are ("photos at myshop.com"
# is a link, not an address); it counts as an address only when the name looks
# like a mailbox or the domain is a mail provider.
_MAILBOX_LIKE = re.compile(r"[._+\-\d]")
_MAIL_PROVIDERS = {"gmail", "googlemail", "outlook", "hotmail", "live", "msn", "yahoo", "ymail", "icloud", "me", "aol",
                   "proton", "protonmail", "gmx", "libero", "virgilio", "tiscali", "zoho", "yandex", "mail"}


# "My gmail is lindacrafts88": a mailbox named by its provider instead of its domain.
# The handle must look like one (a digit, dot or underscore) so "my gmail is slow" passes.
_PROVIDER = r"(?:gmail|googlemail|hotmail|outlook|yahoo|icloud|proton(?:mail)?|gmx|libero)"
_PROVIDER_HANDLE = re.compile(
    r"(?i)\b(?:(?:my|our) " + _PROVIDER + r"(?: account| address| id)? (?:is|:)|(?:mi|nuestro) " + _PROVIDER
    + r" es|(?:il )?(?:mio|nostro) " + _PROVIDER + r" (?:e|è)|" + _PROVIDER + r" (?:saya|kami)(?: adalah)?)"
    r"\s*:?\s*([\w.+\-]*[\d._][\w.+\-]*)"
)


def _plausible(local: str, joiner: str, domain: str) -> bool:
    if not joiner.strip().lower() == "at":  # bracketed forms are deliberate
        return True
    return bool(_MAILBOX_LIKE.search(local)) or domain.split(".")[0].lower() in _MAIL_PROVIDERS


def check(content: Readable, facts: Facts) -> Finding | None:
    allowed = facts.conversation_aliases | facts.party_addresses
    for address in content.mailtos:
        if address.strip().lower() not in allowed:
            return Finding(address[:120], "an email address outside the marketplace (a mailto: link)")
    text = content.text
    for match in _ADDRESS.finditer(text):
        if match.group(0).lower().rstrip(".") not in allowed:
            return Finding(around(text, match.start(), match.end()), "an email address outside the marketplace")
    for match in _PROVIDER_HANDLE.finditer(text):
        if len(match.group(1).strip("._")) >= 3:
            return Finding(around(text, match.start(), match.end()), "an email address outside the marketplace")
    for match in _HIDDEN.finditer(text):
        domain = re.sub(r"\s+", "", domains.reveal(re.sub(r"(?i)\s+dot\s+", ".", match.group(3))))
        if not _plausible(match.group(1), match.group(2), domain):
            continue
        if domains.registered_domain(domain) and f"{match.group(1)}@{domain}".lower() not in allowed:
            return Finding(around(text, match.start(), match.start() + len(match.group(1)) + 30),
                           "a disguised email address")
    return None
