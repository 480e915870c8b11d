"""Who a message says it is from, read as a mail client shows it, without the stdlib's address parser.

Python 3.11.7 predates the fix for CVE-2023-27043: `email.utils.parseaddr`
and `getaddresses` read `"a@evil.example"@good.example`-style values as a
different address than clients show, so no decision here leans on them. This
reader walks the value once: comments go, quoted strings stay whole, mailboxes
are split at commas outside quotes and angle brackets, a group's name and
semicolon are dropped. What it returns is everything a reader could take for
the sender: each address, and each display name that is itself an address
(Outlook shows `"orders@seller-shop.example" <x@elsewhere.example>` as the
first), and then anything else in the value that looks like an address: in a
comment (clients show `a@x (b@y)` as b@y), after a closing bracket, or with a
second `@` (`a@good.example@evil.example`). The first is the address a client
sends replies to; the rest only ever add refusals.
"""
from __future__ import annotations

import re

from filters.reading import comparable

from .words import decode_words

_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"@]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+", re.IGNORECASE)
# Anything a reader might take for an address, a second @ included.
_LOOSE = re.compile(r"[^\s<>()\[\],;:\"]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+", re.IGNORECASE)


def _without_comments(value: str) -> str:
    out, depth, quoted, escaped = [], 0, False, False
    for char in value:
        if escaped:
            escaped = False
            if not depth:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if not depth:
                out.append(char)
            continue
        if char == '"' and not depth:
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            continue
        elif not quoted and char == ")" and depth:
            depth -= 1
            continue
        if not depth:
            out.append(char)
    return "".join(out)


def _mailboxes(value: str) -> list[str]:
    pieces, current, quoted, angle = [], [], False, False
    for char in value:
        if char == '"' and not angle:
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        elif char in ",;" and not quoted and not angle:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return [p.strip() for p in pieces if p.strip()]


def shown_senders(value: str) -> list[str]:
    """Every address a reader could take for the sender in a From value (folded, lower case)."""
    found: list[str] = []
    decoded = decode_words(value)
    text = _without_comments(decoded)
    for mailbox in _mailboxes(text):
        if ":" in mailbox.split("<", 1)[0] and '"' not in mailbox.split(":", 1)[0]:
            mailbox = mailbox.split(":", 1)[1]  # "Group: a@b" keeps a@b
        if "<" in mailbox:
            display, _, rest = mailbox.partition("<")
            address = rest.split(">", 1)[0]
        else:
            display, address = "", mailbox
        for candidate in (address.strip().strip('"'), display.strip().strip('"')):
            folded = comparable(candidate)
            found += [match.group(0) for match in _ADDRESS.finditer(folded)]
    everything = comparable(decoded)
    found += [match.group(0) for pattern in (_ADDRESS, _LOOSE) for match in pattern.finditer(everything)]
    return list(dict.fromkeys(found))


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(".").lower()
