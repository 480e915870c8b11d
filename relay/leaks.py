"""A last look before a message leaves: read it as the recipient's client would.

The rewrite is meant to remove every real address; this check does not trust
it. It parses the outgoing bytes with the stdlib parser (a second, independent
reading of the MIME structure), decodes every header and every text part, and
names any real address still there. A hit stops the message.
"""
from __future__ import annotations

import email
from email.header import decode_header, make_header
from email.policy import compat32

from .scrub import AddressScrubber


def _header_text(value) -> str:
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        return str(value)


def leaked_addresses(outgoing: bytes, scrubber: AddressScrubber) -> list[str]:
    """Real addresses a client would show, except the recipient's own in the top-level To."""
    found: set[str] = set()
    message = email.message_from_bytes(outgoing, policy=compat32)
    for part in message.walk():
        for name, value in part.items():
            if part is message and name.lower() == "to":
                continue
            found.update(scrubber.found(_header_text(value).encode("utf-8", "surrogateescape")))
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True) or b""
        found.update(scrubber.found(payload))
        charset = part.get_content_charset() or ""
        if charset.startswith(("utf-16", "utf-32")):
            try:
                found.update(scrubber.found(payload.decode(charset).encode("utf-8")))
            except (LookupError, UnicodeDecodeError):
                pass
    return sorted(found)
