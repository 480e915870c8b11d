"""MIME entities as bytes: split where the rewrite needs to look, keep the rest as it came.

The stdlib parser reads every line of every part and its generator writes
headers out again, refolded. The relay needs neither: it reads header blocks
itself (Content-* parameters with relay/params.py, in linear time), splits
multiparts at their delimiters, and leaves every body it does not change as
the exact bytes that arrived. That keeps attachments byte for byte and a
10 MB message cheap.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from functools import cached_property

from . import params
from .charsets import to_utf8
from .params import Parameters

CRLF = b"\r\n"
MAX_DEPTH = 40
MAX_PARTS = 1000
"""In the whole tree: a 1000-by-1000 tree once took a worker 1.2 GB."""


class MalformedMessage(ValueError):
    """Input the relay will not forward, with a reason fit for the sender."""

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"^(?=[^ \t\r\n])", re.MULTILINE)
_OBSOLETE_COLON = re.compile(rb"\A([!-9;-~]+)[ \t]+:")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_MEDIA_TYPE = re.compile(r"\A[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+\Z")
_TEXT_EXTENSIONS = (".txt", ".text", ".log", ".csv")
_SINGLE_FIELDS = ("content-type", "content-transfer-encoding", "content-disposition")
IDENTITY_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})
"""Transfer encodings that leave a body's bytes in the source as they are."""


@dataclass(frozen=True)
class Content:
    """What a part's Content-* fields say, read once for the filters' view, the rewrite and the leak check."""

    type: str
    """"text/plain" when absent or unreadable (RFC 2045 5.2): text is scrubbed, so that is the safe reading."""
    params: Parameters
    disposition: Parameters
    transfer_encoding: str

    @property
    def charset(self) -> str | None:
        return self.params.get("charset")

    @property
    def boundary(self) -> str | None:
        return self.params.get("boundary") if self.type.startswith("multipart/") else None

    @property
    def filename(self) -> str | None:
        """The file name a reader sees (a byte that is not UTF-8 shows as U+FFFD)."""
        name = self.disposition.get("filename") or self.params.get("name")
        name = name and to_utf8(name).decode("utf-8", "replace").strip()
        return name or None

    @property
    def embedded_message(self) -> bool:
        return self.type in ("message/rfc822", "message/global")

    @property
    def is_text(self) -> bool:
        """Read as text by a reader: text/*, reports (message/delivery-status...), or a file named as text."""
        if self.type.startswith("text/") or (self.type.startswith("message/") and not self.embedded_message):
            return True
        return (self.filename or "").lower().endswith(_TEXT_EXTENSIONS)

    @property
    def is_html(self) -> bool:
        return self.type == "text/html" or (self.filename or "").lower().endswith((".htm", ".html"))

    def ambiguity(self) -> str | None:
        """Why readers could disagree on what this part is, or None."""
        for name in ("boundary", "charset"):
            if self.params.conflicting(name):
                return f"a part gives two different {name} parameters"
        return None


def _content(fields: list[tuple[str, bytes]]) -> tuple[Content, str | None]:
    values: dict[str, list[str]] = {}
    for name, raw in fields:
        if name in _SINGLE_FIELDS:
            values.setdefault(name, []).append(field_value(raw).decode("utf-8", "surrogateescape"))
    problem = next((f"a part has two different {name} fields" for name, found in values.items()
                    if len(set(found)) > 1), None)

    def first(name: str) -> str:
        return values.get(name, [""])[0]

    content_type = params.parse(first("content-type"))
    media_type = re.sub(r"\s*/\s*", "/", content_type.value)
    content = Content(
        type=media_type if _MEDIA_TYPE.match(media_type) else "text/plain",
        params=content_type, disposition=params.parse(first("content-disposition")),
        transfer_encoding=first("content-transfer-encoding").strip().lower(),
    )
    return content, problem or content.ambiguity()


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
    def _content(self) -> tuple[Content, str | None]:
        return _content(self.fields)

    @property
    def content(self) -> Content:
        return self._content[0]

    @property
    def content_problem(self) -> str | None:
        """Why readers could disagree on this part's Content-* fields, or None."""
        return self._content[1]

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
    return _FOLD.sub(b"", value).strip()


def parse_head(raw: bytes) -> Entity:
    """The header fields of raw, with a view of its body rather than a copy: what the main
    process reads of a message (thread ids, traces, a notice's quoted headers) while a
    worker reads the rest."""
    length = _head_length(raw)
    entity = parse_entity(raw[:length])
    entity.body = memoryview(raw)[length - len(entity.body):]  # what the head's parse took for body, and the rest
    return entity


def _head_length(raw: bytes) -> int:
    match = _HEADER_END.search(raw)
    return match.end() if match else len(raw)


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
            # "--boundary" and more on the line: RFC 2046 says it is not a delimiter, but readers that
            # match the boundary as a prefix (and a nested boundary that extends this one) cut here.
            raise MalformedMessage("a line in a multipart part starts like its boundary but is not one, "
                                   "so mail programs would split the message differently")
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
    if not multipart.parts:
        # Only a close delimiter: the relay would see no part, a reader that shows the preamble a message.
        raise MalformedMessage("a multipart part has no parts, only a closing boundary")
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
    budget: _Budget | None = field(default=None, repr=False, compare=False)


class _Budget:
    """Parts left for the whole tree, embedded messages included."""

    def __init__(self, parts: int = MAX_PARTS):
        self.parts = parts

    def take(self, count: int) -> None:
        self.parts -= count
        if self.parts < 0:
            # Mail clients show a handful of parts; thousands are only a way to burn CPU and memory.
            raise MalformedMessage(f"the message has more than {MAX_PARTS} MIME parts")


def tree(entity: Entity, part_id: str = "0", depth: int = 0, budget: _Budget | None = None,
         boundaries: tuple[bytes, ...] = ()) -> Part:
    """Split an entity into its MIME tree, once. Never descends into message/rfc822 (see `embedded`).

    Where the relay and another reader (the stdlib, a mail client) could see different parts,
    the message is refused rather than judged as one of them: see `_ambiguous`.
    """
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"MIME parts are nested more than {MAX_DEPTH} levels deep")
    budget = budget or _Budget()
    problem = entity.content_problem
    if problem:
        raise MalformedMessage(problem)
    part = Part(entity, part_id, budget=budget)
    boundary = entity.content.boundary
    if boundary:
        marker = to_utf8(boundary)
        _ambiguous(entity.content, marker, boundaries)
        part.multipart = split_multipart(entity.body, marker)
        boundaries += (marker,)
    if part.multipart is not None:
        budget.take(len(part.multipart.parts))
        part.children = [tree(parse_entity(child), f"{part_id}.{index + 1}", depth + 1, budget, boundaries)
                         for index, child in enumerate(part.multipart.parts)]
    return part


def _ambiguous(content: Content, boundary: bytes, enclosing: tuple[bytes, ...]) -> None:
    """Refuses a multipart that readers could cut differently from the relay."""
    if content.transfer_encoding not in IDENTITY_ENCODINGS:
        # RFC 2045 6.4: a multipart is never encoded; some readers decode it anyway, others do not.
        raise MalformedMessage(f"a multipart part is encoded as {content.transfer_encoding}, "
                               "which mail programs read differently")
    for outer in enclosing:
        if boundary.startswith(outer) or outer.startswith(boundary):
            raise MalformedMessage("one multipart boundary begins with another, "
                                   "so mail programs would split the message differently")


def embedded(part: Part, data: bytes, depth: int) -> Part:
    """The tree of a message/rfc822 part's decoded body, counted against the same budget."""
    part.budget.take(1)
    return tree(parse_entity(data), part.id + ".m", depth + 1, part.budget)


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
    if transfer_encoding in IDENTITY_ENCODINGS:
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


