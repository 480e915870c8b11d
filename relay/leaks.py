"""A last look before a message leaves: read it as the recipient would.

The rewrite is meant to remove every real address; this check does not trust
it. It splits the outgoing bytes into their MIME tree again and reads every
place a reader could look, the way a reader reads it (filters/reading.py:
compatibility forms folded, invisible characters gone): the raw source ("view
source"), every header field and parameter decoded (RFC 2047 and RFC 2231),
every text part in its own charset (by type or by a text file's name), HTML
as rendered text with its character references resolved, and messages
attached inside messages. A hit stops the message.
"""
from __future__ import annotations

from filters import html as html_reader

from . import mime
from .charsets import resolve, shown
from .scrub import AddressScrubber
from .view import decoded_header


def _part_texts(part: mime.Part, top: bool, depth: int = 0):
    entity = part.entity
    content = entity.content
    for name, raw in entity.fields:
        if not (top and name == "to"):  # the recipient's own address, written there on purpose
            yield decoded_header(raw), False
    for parameter in content.params.items + content.disposition.items:
        yield parameter.value, False
    if part.multipart is not None:
        yield shown(part.multipart.preamble + part.multipart.epilogue, None), False
        for child in part.children:
            yield from _part_texts(child, False, depth + 1)
        return
    data = mime.decode_body(entity.body, content.transfer_encoding)
    data = entity.body if data is None else data
    if content.embedded_message:
        yield from _part_texts(mime.embedded(part, data, depth), False, depth + 1)
    elif content.is_text or content.type.startswith("multipart/"):
        for reading in resolve(content.charset).readings(data):
            text = data.decode(reading, "replace")
            yield text, False
            if content.is_html:
                yield html_reader.read(text).joined, False
                yield text, True


def leaked_addresses(outgoing: bytes, scrubber: AddressScrubber) -> list[str]:
    """Real addresses a reader could read, except the recipient's own in the top-level To."""
    top = mime.parse_entity(outgoing)
    source = b"".join(raw for name, raw in top.fields if name != "to") + top.separator + top.body
    # "View source" (Gmail's "show original" reads it as UTF-8), less the recipient's own To;
    # then what a reader reads: every field, parameter and text part decoded.
    found: set[str] = set(scrubber.found(source))
    found.update(scrubber.readable(shown(source, "utf-8")))
    try:
        root = mime.tree(top)
    except mime.MalformedMessage:
        return sorted(found | {"(the outgoing message is not well-formed MIME)"})
    for text, html in _part_texts(root, True):
        found.update(scrubber.readable(text, html))
    return sorted(found)
