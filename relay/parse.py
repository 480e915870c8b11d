"""The first look at a message's bytes: is it well-formed enough to handle, and which thread is it in?"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import mime

_MESSAGE_ID = re.compile(rb"<[^<>\s]{1,250}>")


def line_end_problem(data: bytes) -> str | None:
    """Why data is unsafe to pass on (RFC 5321 2.3.8; the SMTP smuggling class), or None.

    aiosmtpd ends DATA only at CRLF.CRLF, but a bare LF or CR inside the data
    could still be read as a line end by a later hop.
    """
    if b"\0" in data:
        return "a NUL character"
    line_ends = data.count(b"\r\n")  # counting is C-fast; a regex with lookbehind is not
    if data.count(b"\n") != line_ends:
        return "a bare LF line end"
    if data.count(b"\r") != line_ends:
        return "a bare CR"
    return None


@dataclass(frozen=True)
class ThreadIds:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]

    @property
    def all_referenced(self) -> list[str]:
        return list(dict.fromkeys(self.in_reply_to + self.references))


def _ids(raw: bytes | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    found = _MESSAGE_ID.findall(mime.field_value(raw))
    return tuple(dict.fromkeys(i.decode("utf-8", "replace") for i in found))


# The relay's own trace: "Received: by HOST (marketplace-relay) with ESMTP id X; date".
# It names only relay hosts, so it may travel on; counting it stops mail loops
# between relays that strip every other Received field.
TRACE_COMMENT = "(marketplace-relay)"
_RELAY_TRACE = re.compile(rb"(?i)\Areceived:\s*by\s+[^\s;()]+\s+\(marketplace-relay\)")


def relay_traces(entity: mime.Entity) -> list[bytes]:
    """The Received fields earlier relays (this one or another node) wrote."""
    return [raw for name, raw in entity.fields if name == "received" and _RELAY_TRACE.match(raw)]


def thread_ids(entity: mime.Entity) -> ThreadIds:
    own = _ids(entity.first("message-id"))
    return ThreadIds(own[0] if own else None, _ids(entity.first("in-reply-to")), _ids(entity.first("references")))
