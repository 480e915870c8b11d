"""Off-platform contact: any way to reach a party other than through the marketplace.

An email address other than the conversation's own (hidden forms too: name
[at] gmail [dot] com, name at gmail.com); a phone number in any format, digits
written as words included (filters/phones.py); a messaging app, or a handle on
one or on a social network ("Telegram: @bottega_rossi", "IG rossi.shop", a bare
"@name"); and an invitation to continue elsewhere ("write me directly",
"fuori dalla piattaforma", "japri"), from the `offplatform` lists in
filters/phrases/*.toml. The conversation's aliases and the two parties' real
addresses are fine: the rewrite turns the real ones into aliases.
"""
from __future__ import annotations

import re

from . import domains, phones, phrases
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


# Apps whose name alone says "let's talk there": no one mentions them to a buyer for another reason.
_MESSAGING_APP = re.compile(r"(?i)(?<![\w.@])(?:whats\s?app|wh?ats?app|wasap|watsap|wazap|telegram|we\s?chat|weixin|viber|"
                            r"kakao\s?talk|threema|wickr|imo)(?![\w])")
# Platforms whose name is also a word ("line", "signal", "wa" in Indonesian is just "WA"): a handle must follow.
_PLATFORM = (r"(?:whats\s?app|wa|wasap|wsp|telegram|tele|tg|signal|we\s?chat|weixin|line|viber|skype|instagram|insta|ig|"
             r"facebook|fb|messenger|tik\s?tok|tiktok|snapchat|discord|twitter)")
# A handle: "@name", or a name with a digit, dot or underscore in it ("rossi.shop", "tom_1988").
_HANDLE = r"(?:@[a-z0-9_][\w.]{1,30}[\w]|(?=[\w.]*[a-z])[a-z0-9_][\w]*[\d_.][\w.]*[a-z0-9_])"
_HANDLE_AFTER = re.compile(
    r"(?i)(?<![\w.@])" + _PLATFORM + r"(?![\w])\s*(?:id|account|akun|username|user|handle|nick|name)?\s*"
    # "Instagram: rossishop" names an account; "IG rossi.shop", "Telegram @rossi" too; and up to
    # five words later "... as rossi.shop" ("mi trovi come", "me encuentras como", "cari dengan nama").
    r"(?:[:=]\s*(?:@?[a-z][\w.]{2,30})(?![\w@])|(?:[-]|is|es|e|è|adalah|di|al|at|on|su|en|ke)?\s*" + _HANDLE
    + r"(?![\w@])|(?:\S+\s+){0,5}?(?:as|como|come|sebagai|dengan nama|nama|named|called)\s+" + _HANDLE + r"(?![\w@]))"
)
_BARE_HANDLE = re.compile(r"(?i)(?<![\w@.+\-])@([a-z_][\w.]{1,29}[\w])(?![\w@])(?!\.[a-z]{2,}\b)")
# A number for the carrier ("call the courier on ...") is the carrier's, not a way to the seller.
_CARRIER_BEFORE = re.compile(
    r"(?i)\b(?:courier|driver|carrier|delivery (?:company|service)|ups|dhl|fedex|dpd|gls|usps|royal mail|evri|hermes|"
    r"corriere|autista|brt|bartolini|sda|poste|repartidor|mensajero|transportista|correos|seur|mrw|nacex|kurir|"
    r"ekspedisi|jne|j&t|sicepat|anteraja|pos indonesia)\b[^.!?\n]{0,60}$")


def _part_of_an_address(text: str, match: re.Match, allowed: frozenset[str]) -> bool:
    """"@seller-shop.example" after markup ("<b>orders</b>@seller-shop.example"), or an allowed
    mailbox's own name: the domain half of an address, not an account name."""
    tail = re.match(r"[\w.\-]+", text[match.start() + 1:]).group(0).rstrip(".").lower()
    return "-" in tail or any(a.endswith("@" + tail) or a.startswith(tail + "@") for a in allowed)


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
    return _elsewhere(text, allowed)


def _elsewhere(text: str, allowed: frozenset[str]) -> Finding | None:
    """The ways off the platform that are not an email address."""
    read = phones.spelled_out(text)
    for start, end in phones.numbers_in(read):
        if not _CARRIER_BEFORE.search(read[max(0, start - 80):start]):
            return Finding(around(read, start, end), "a phone number")
    for pattern, reason in ((_MESSAGING_APP, "a messaging app outside the marketplace"),
                            (_HANDLE_AFTER, "an account on a messaging app or social network"),
                            (_BARE_HANDLE, "an account name (@name) on another service")):
        for match in pattern.finditer(text):
            if pattern is _BARE_HANDLE and _part_of_an_address(text, match, allowed):
                continue
            return Finding(around(text, match.start(), match.end()), reason)
    found = phrases.book("offplatform").find(text)
    if found:
        return Finding(found, "an invitation to continue outside the marketplace")
    return None
