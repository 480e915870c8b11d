"""MIME entities as bytes: split where the rewrite needs to look, keep the rest as it came.

The stdlib parser reads every line of every part and its generator writes
headers out again, refolded. The relay needs neither: it reads header blocks
(with the stdlib's header parser, for Content-Type parameters), splits
multiparts at their delimiters, and leaves every body it does not change as
the exact bytes that arrived. That keeps attachments byte for byte and a
10 MB message cheap.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass, field
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from functools import cached_property

CRLF = b"\r\n"
MAX_DEPTH = 40
MAX_PARTS = 1000


class MalformedMessage(ValueError):
    """Input the relay will not forward, with a reason fit for the sender."""

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"^(?=[^ \t\r\n])", re.MULTILINE)
_OBSOLETE_COLON = re.compile(rb"\A([!-9;-~]+)[ \t]+:")
_header_parser = BytesHeaderParser(policy=compat32)


@dataclass
class Entity:
    """One MIME entity: its raw header fields, the separator line, and its raw body."""

    fields: list[tuple[str, bytes]]
    """(lower-cased name, whole raw field including its line end), in order."""
    separator: bytes
    body: bytes

    @property
    def header_block(self) -> bytes:
        return b"".join(raw for _, raw in self.fields)

    @cached_property
    def headers(self) -> Message:
        """The header block parsed by the stdlib, for reading parameters; never re-serialised."""
        return _header_parser.parsebytes(self.header_block + CRLF)

    def first(self, name: str) -> bytes | None:
        for field_name, raw in self.fields:
            if field_name == name:
                return raw
        return None


def field_name(raw: bytes) -> str:
    return raw.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def field_value(raw: bytes) -> bytes:
    """A field's value, unfolded, without the name and line end."""
    value = raw.split(b":", 1)[1] if b":" in raw else b""
    return re.sub(rb"\r?\n(?=[ \t])", b"", value).strip()


def parse_entity(raw: bytes) -> Entity:
    """Split an entity into header fields, separator and body. Never fails.

    A block without a blank line is all header (RFC 5322 allows a message with
    no body); a first line that is not a header field starts the body.
    """
    match = _HEADER_END.search(raw)
    if raw.startswith((b"\r\n", b"\n")):
        head, separator, body = b"", raw[: 2 if raw.startswith(b"\r\n") else 1], raw[2 if raw.startswith(b"\r\n") else 1:]
    elif match:
        line_end = raw[match.start(): match.start() + (2 if raw[match.start()] == 13 else 1)]
        head, separator, body = raw[: match.start()] + line_end, raw[match.start() + len(line_end): match.end()], raw[match.end():]
    else:
        head, separator, body = raw, b"", b""
    fields: list[tuple[str, bytes]] = []
    for chunk in _FIELD_START.split(head):
        if not chunk or (not fields and chunk[:1] in b" \t\r\n"):
            # A continuation line before the first field belongs to nothing;
            # readers skip it as a defect, and so does the relay.
            continue
        if b":" not in chunk.split(b"\n", 1)[0]:
            # Not a header field: what follows belongs to the body (RFC 5322 2.2).
            at = head.index(chunk)
            return Entity(fields, CRLF, head[at:] + separator + body)
        # RFC 5322 4.5 obs-optional: "Name :" must be read as "Name:". The stdlib
        # header parser stops at such a line, so it is written the modern way.
        chunk = _OBSOLETE_COLON.sub(rb"\1:", chunk, count=1)
        fields.append((field_name(chunk), chunk if chunk.endswith(b"\n") else chunk + CRLF))
    return Entity(fields, separator, body)


@dataclass
class Multipart:
    """A multipart body cut at its delimiters; joining the pieces gives the bytes back."""

    preamble: bytes
    delimiters: list[bytes]
    parts: list[bytes]
    epilogue: bytes

    def to_bytes(self) -> bytes:
        out = [self.preamble]
        for delimiter, part in zip(self.delimiters, self.parts):
            out += [delimiter, part]
        out.append(self.epilogue)
        return b"".join(out)


def _delimiters(body: bytes, boundary: bytes):
    """(start, end, is_close) of each delimiter line, found with bytes.find: a regex
    anchored at line starts scans a 10 MB attachment far more slowly."""
    marker = b"--" + boundary
    position = 0
    while (found := body.find(marker, position)) != -1:
        position = found + len(marker)
        if found and body[found - 1] != 10:  # not at the start of a line
            continue
        end = position
        is_close = body[end:end + 2] == b"--"
        end += 2 if is_close else 0
        while end < len(body) and body[end] in b" \t":
            end += 1
        if end < len(body) and body[end] not in b"\r\n":
            continue  # "--boundary" followed by more text: not a delimiter
        end += 2 if body[end:end + 2] == b"\r\n" else 1 if end < len(body) else 0
        start = found - (2 if body[found - 2:found] == b"\r\n" else 1 if found else 0)
        yield start, end, is_close
        if is_close:
            return


def split_multipart(body: bytes, boundary: bytes) -> Multipart | None:
    """Cut a multipart body at its boundary, or None if the boundary never occurs.

    A missing close delimiter (a truncated or broken message) leaves the rest
    of the body as the last part, as mail clients read it.
    """
    found = list(_delimiters(body, boundary))
    if not found:
        return None
    multipart = Multipart(body[: found[0][0]], [], [], b"")
    for index, (start, end, is_close) in enumerate(found):
        if is_close:
            multipart.epilogue = body[start:]  # the close delimiter and whatever follows it
            break
        part_end = found[index + 1][0] if index + 1 < len(found) else len(body)
        multipart.delimiters.append(body[start:end])
        multipart.parts.append(body[end:part_end])
    return multipart


@dataclass
class Part:
    """An entity and its place in the tree ("0" is the message, "0.2.1" the first part of its
    second part); a usable multipart also has its cut body and its children. Read-only once built:
    the filters' view and the rewrite both walk the same tree."""

    entity: Entity
    id: str
    multipart: Multipart | None = None
    children: list[Part] = field(default_factory=list)


def tree(entity: Entity, part_id: str = "0", depth: int = 0) -> Part:
    """Split an entity into its MIME tree, once. Never descends into message/rfc822."""
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"MIME parts are nested more than {MAX_DEPTH} levels deep")
    part = Part(entity, part_id)
    headers = entity.headers
    boundary = headers.get_boundary()
    if headers.get_content_type().startswith("multipart/") and boundary:
        part.multipart = split_multipart(entity.body, boundary.encode("utf-8", "surrogateescape"))
    if part.multipart is not None:
        if len(part.multipart.parts) > MAX_PARTS:
            # Mail clients show a handful of parts; tens of thousands are only a way to burn CPU.
            raise MalformedMessage(f"a multipart has more than {MAX_PARTS} parts")
        part.children = [tree(parse_entity(child), f"{part_id}.{index + 1}", depth + 1)
                         for index, child in enumerate(part.multipart.parts)]
    return part


def decode_body(body: bytes, transfer_encoding: str) -> bytes | None:
    """The body's octets, or None if its transfer encoding is unknown or broken."""
    if transfer_encoding == "base64":
        try:
            compact = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
            return base64.b64decode(compact + b"=" * (-len(compact) % 4))
        except (binascii.Error, ValueError):
            return None
    if transfer_encoding == "quoted-printable":
        return binascii.a2b_qp(body)
    if transfer_encoding in ("", "7bit", "8bit", "binary"):
        return body
    return None


def encode_body(data: bytes, transfer_encoding: str) -> bytes:
    if transfer_encoding == "base64":
        encoded = base64.b64encode(data)
        return CRLF.join(encoded[i: i + 76] for i in range(0, len(encoded), 76)) + CRLF
    if transfer_encoding == "quoted-printable":
        # b2a_qp keeps CRLF line ends but writes its soft breaks as bare LF
        # when the text has no line end to copy; mail wants CRLF everywhere.
        return re.sub(rb"(?<!\r)\n", CRLF, binascii.b2a_qp(data, istext=True))
    return data


def transfer_encoding(headers: Message) -> str:
    return str(headers.get("content-transfer-encoding", "")).strip().lower()


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded as a reader would show them; never raises.

    A charset Python does not know is read as UTF-8 (WHATWG-based clients have
    many labels for it); if the stdlib gives up on a broken word, each word is
    decoded on its own so that one bad word cannot hide a good one.
    """
    try:
        pieces = [(data, text_codec(charset)[0] or "utf-8" if charset else None)
                  for data, charset in decode_header(value)]
        return str(make_header(pieces))
    except (MessageError, ValueError, LookupError, UnicodeError):
        return _ENCODED_WORD_GAP.sub("", _ENCODED_WORD.sub(_decode_word, value))


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_ENCODED_WORD_GAP = re.compile(r"(?<=\x00)\s+(?=\x00)|\x00")


def _decode_word(match: re.Match) -> str:
    charset, kind, text = match.groups()
    try:
        if kind in "bB":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = binascii.a2b_qp(text.replace("_", " ").encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    # NUL marks word edges so that whitespace between two words can be dropped (RFC 2047 6.2).
    return "\x00" + data.decode(text_codec(charset.split("*")[0])[0] or "utf-8", "replace") + "\x00"


# Labels mail clients (following the WHATWG encoding standard) accept that Python does not.
_WHATWG_LABELS = {
    "unicode": "utf-16-le", "ucs-2": "utf-16-le", "csunicode": "utf-16-le", "iso-10646-ucs-2": "utf-16-le",
    "unicodefeff": "utf-16-le", "unicodefffe": "utf-16-be",
    "unicode-1-1-utf-8": "utf-8", "unicode11utf8": "utf-8", "unicode20utf8": "utf-8", "x-unicode20utf8": "utf-8",
}
_PROBE = "Az09 @.%&#;:+-_<>="


def text_codec(charset: str) -> tuple[str | None, bool]:
    """(Python codec, whether ASCII text is the same bytes in it); (None, False) for an unknown charset."""
    label = charset.strip().strip('"').lower()
    try:
        name = codecs.lookup(_WHATWG_LABELS.get(label, label)).name
    except (LookupError, UnicodeError):  # unknown, or not even a well-formed name
        return None, False
    try:
        compatible = _PROBE.encode(name) == _PROBE.encode("ascii") and _PROBE.encode("ascii").decode(name) == _PROBE
    except (UnicodeError, LookupError):
        compatible = False
    return name, compatible


def through_codec(data: bytes, codec: tuple[str | None, bool], change) -> bytes:
    """Apply change, written for ASCII-compatible bytes, to text in any charset.

    Most charsets keep ASCII as ASCII, so the bytes are changed as they are and
    every other byte stays exactly as it came. In UTF-16, UTF-7 and the like an
    address has no ASCII bytes: the text is decoded, changed as UTF-8, and
    encoded back, only if something changed. An unknown charset is treated as
    ASCII-compatible, as mail clients fall back to.
    """
    name, ascii_compatible = codec
    if name is None or ascii_compatible:
        return change(data)
    utf8 = data.decode(name, "replace").encode("utf-8", "surrogateescape")
    changed = change(utf8)
    return data if changed == utf8 else changed.decode("utf-8", "surrogateescape").encode(name)
