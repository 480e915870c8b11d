"""A last look before a message leaves: read it as the recipient's client would.

The rewrite is meant to remove every real address; this check does not trust
it. It parses the outgoing bytes with the stdlib parser (a second, independent
reading of the MIME structure) and looks everywhere a reader could: the raw
bytes ("view source"), every decoded header and parameter (RFC 2047 and
RFC 2231), every text part in its own charset, and HTML with its character
references resolved. A hit stops the message.
"""
from __future__ import annotations

import email
import html
from email.policy import compat32
from email.utils import collapse_rfc2231_value

from .mime import decode_words, parse_entity, text_codec
from .scrub import AddressScrubber


def _text_forms(part) -> list[str]:
    payload = part.get_payload(decode=True) or b""
    codec, _ = text_codec(part.get_content_charset() or "us-ascii")
    text = payload.decode(codec or "utf-8", "replace")
    return [text, html.unescape(text)] if part.get_content_subtype() == "html" else [text]


def leaked_addresses(outgoing: bytes, scrubber: AddressScrubber) -> list[str]:
    """Real addresses a reader could see, except the recipient's own in the top-level To."""
    top = parse_entity(outgoing)
    source = b"".join(raw for name, raw in top.fields if name != "to") + top.separator + top.body
    found: set[str] = set(scrubber.found(source))  # "view source", less the recipient's own To
    message = email.message_from_bytes(outgoing, policy=compat32)
    for part in message.walk():
        texts = [decode_words(str(value)) for name, value in part.items()
                 if not (part is message and name.lower() == "to")]
        for header in ("content-type", "content-disposition"):
            texts += [decode_words(collapse_rfc2231_value(value)) for _, value in part.get_params([], header=header)
                      if value]
        if part.get_content_maintype() == "text":
            texts += _text_forms(part)
        for text in texts:
            found.update(scrubber.found(text.encode("utf-8", "surrogateescape")))
    return sorted(found)
