"""RFC 2047 encoded words, decoded as a mail client shows them; never raises.

Clients are lenient and so is this: a word is decoded wherever it stands
(also inside a parameter value or against other text), adjacent words of one
charset are joined before decoding (senders split UTF-8 characters between
words), white space between two words disappears (RFC 2047 6.2), and a
charset the relay does not know is read as relay/charsets.py says. A word
whose base64 is broken stays as it was written.
"""
from __future__ import annotations

import base64
import binascii
import re

from .charsets import shown

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")


def _octets(kind: str, text: str) -> bytes | None:
    try:
        if kind in "bB":
            compact = re.sub(r"[^A-Za-z0-9+/]", "", text)
            return base64.b64decode(compact + "=" * (-len(compact) % 4))
        return binascii.a2b_qp(text.encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return None


def decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    out: list[str] = []
    run_charset, run = None, b""  # consecutive words in one charset, decoded together
    position = 0

    def flush() -> None:
        nonlocal run_charset, run
        if run_charset is not None:
            out.append(shown(run, run_charset))
        run_charset, run = None, b""

    for match in _ENCODED_WORD.finditer(value):
        between = value[position:match.start()]
        charset, kind, text = match.groups()
        charset = charset.split("*", 1)[0]  # RFC 2231 language suffix
        octets = _octets(kind, text)
        position = match.end()
        if octets is None:
            flush()
            out += [between, match.group(0)]
            continue
        if run_charset is None or between.strip(" \t\r\n"):
            flush()
            out.append(between)
        elif charset.lower() != run_charset.lower():
            flush()
        if run_charset is None:
            run_charset = charset
        run += octets
    flush()
    out.append(value[position:])
    return "".join(out)
