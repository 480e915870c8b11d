"""The rewrite: a pure function from the message that arrived to the message that leaves.

It edits and never decides. Every header it writes is built from validated
parts (a display name from the store, an address the store knows, ids the
relay made), never by re-serialising a header the sender wrote: Python 3.11.7
predates the fixes for CVE-2023-27043, CVE-2024-6923 and gh-121284, and
refolding an encoded display name can turn it into a second, real address.
Headers the sender wrote pass an allow-list and are copied as raw bytes, or
re-encoded from scratch when a real address had to come out of them.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate
from urllib.parse import quote, unquote_to_bytes

from . import charsets, metadata, mime
from .parse import relay_traces
from .scrub import AddressScrubber
from .view import decoded_header

CONTENT_FIELDS = frozenset({
    "content-type", "content-transfer-encoding", "content-disposition", "content-language", "content-description",
    "content-id",
})
PARAMETER_FIELDS = frozenset({"content-type", "content-disposition"})
PART_KEPT = CONTENT_FIELDS | {"mime-version"}
TOP_LEVEL_KEPT = PART_KEPT | {"subject", "date", "auto-submitted"}
# A forwarded message/rfc822 keeps the fields a reader needs to recognise it.
EMBEDDED_KEPT = PART_KEPT | {"subject", "date", "from", "to", "cc"}
MAX_LINE = 998  # octets, RFC 5322 2.1.1
_CID_REFERENCE = re.compile(rb"(?i)\bcid:([^\s\"'<>)]+)")


@dataclass(frozen=True)
class Plan:
    """Everything the rewrite needs, decided beforehand by the store and the session."""

    sender_name: str
    sender_alias: str
    recipient_address: str
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    scrubber: AddressScrubber
    domain: str
    cid_key: bytes
    """Per-message secret: renamed Content-IDs cannot be traced back to the originals."""
    stripped: frozenset[str] = frozenset()
    """Ids of the parts the filters removed ("0" is the whole body, "0.2" the second part...)."""
    note: str | None = None
    """A plain note for the recipient, added as a last part, saying what was removed."""
    trace: str | None = None
    """The value of the relay's own Received field (RFC 5321 4.4), written above the others."""
    scrub_metadata: bool = True
    """Binary parts lose what identifies their author (relay/metadata.py)."""


def clean_display_name(name: str) -> str:
    """A display name with line breaks and every other control or format character removed, and
    without @ < > (a name a client could show as an address would be a sender's disguise)."""
    kept = "".join(" " if ch in "\r\n\t@<>＠﹫" else ch for ch in name
                   if unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\r\n\t")
    return " ".join(kept.split())[:100]


def rewrite(message: bytes | mime.Part, plan: Plan) -> bytes:
    """The outgoing message, from the raw bytes or from the tree the filters' view already walked."""
    root = message if isinstance(message, mime.Part) else mime.tree(mime.parse_entity(message))
    entity = root.entity
    relay_fields = _relay_fields(plan, entity)
    if plan.note is None:
        return relay_fields + _rewrite_entity(root, TOP_LEVEL_KEPT, plan)
    # The note goes in a multipart/mixed around whatever the message was: the
    # top-level Content-* fields move down to the part that keeps the body.
    outer = b"".join(_kept_fields(entity, TOP_LEVEL_KEPT - CONTENT_FIELDS, plan, None))
    boundary = "=_note_" + _cid_token(b"note", plan)
    parts = [] if "0" in plan.stripped else [_rewrite_entity(root, CONTENT_FIELDS, plan)]
    # The note names the removed files as their sender did: an address in a name is replaced too.
    parts.append(_header("Content-Type", 'text/plain; charset="utf-8"') + _header("Content-Transfer-Encoding", "base64")
                 + mime.CRLF + mime.encode_body(plan.scrubber.scrub_text(plan.note).encode("utf-8"), "base64"))
    delimiter = f"--{boundary}".encode("ascii")
    body = b"".join(delimiter + mime.CRLF + part + mime.CRLF for part in parts) + delimiter + b"--" + mime.CRLF
    return (relay_fields + outer + _header("MIME-Version", "1.0") * (entity.first("mime-version") is None)
            + _header("Content-Type", f'multipart/mixed; boundary="{boundary}"') + mime.CRLF + body)


def _rewrite_entity(part: mime.Part, allowed: frozenset[str], plan: Plan, depth: int = 0) -> bytes:
    body, new_encoding = _rewrite_body(part, plan, depth)
    fields = _kept_fields(part.entity, allowed, plan, new_encoding)
    return b"".join(fields) + (part.entity.separator or mime.CRLF) + body


def _header(name: str, value: str) -> bytes:
    return f"{name}: {value}".encode("utf-8") + mime.CRLF


def _relay_fields(plan: Plan, entity: mime.Entity) -> bytes:
    name = plan.scrubber.scrub_text(clean_display_name(plan.sender_name))
    # Trace fields: the relay's own, then those earlier relays wrote (they name
    # relay hosts only). Every other Received field names the sender's side.
    lines = [_header("Received", plan.trace)] if plan.trace else []
    lines += relay_traces(entity)
    lines += [
        _header("From", formataddr((name, plan.sender_alias), charset="utf-8")),
        _header("To", plan.recipient_address),
        _header("Message-ID", plan.message_id),
    ]
    if plan.in_reply_to:
        lines.append(_header("In-Reply-To", " ".join(plan.in_reply_to)))
    if plan.references:
        lines.append(_header("References", "\r\n ".join(plan.references)))
    if entity.first("date") is None:
        lines.append(_header("Date", formatdate(localtime=False, usegmt=True)))
    return b"".join(lines)


def _kept_fields(entity: mime.Entity, allowed: frozenset[str], plan: Plan, new_encoding: str | None) -> list[bytes]:
    kept = []
    for name, raw in entity.fields:
        if name not in allowed or (new_encoding and name == "content-transfer-encoding"):
            continue
        if name == "content-id":
            field = _header("Content-ID", _renamed_cid(mime.field_value(raw).decode("ascii", "replace"), plan))
        elif name in PARAMETER_FIELDS:
            field = _scrub_parameters(name, raw, entity, plan)
        else:
            field = _scrub_field(name, raw, plan.scrubber)
        if _has_long_line(field):
            # RFC 5322 2.1.1: no line over 998 octets; next hops refuse them. Written again, folded.
            field = (_scrub_parameters(name, raw, entity, plan, rebuild=True) if name in PARAMETER_FIELDS
                     else _encoded_field(_title(raw), plan.scrubber.scrub_text(decoded_header(raw))))
        kept.append(field)
    if new_encoding:
        kept.append(_header("Content-Transfer-Encoding", new_encoding))
    return kept


def _one_line(text: str) -> str:
    """Text for a header field: control and line-break characters a reader never sees become spaces."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def _encoded_field(title: str, text: str) -> bytes:
    encoded = Header(_one_line(text), charset="utf-8", header_name=title).encode(linesep="\r\n")
    return f"{title}: {encoded}".encode("ascii") + mime.CRLF


def _scrub_field(name: str, raw: bytes, scrubber: AddressScrubber) -> bytes:
    """An unstructured field as it came, unless a reader could read a real address in it.

    A plain spelling in plain text is replaced in the bytes; anything else (encoded
    words, 8-bit text, a folded or disguised spelling) is re-encoded from the text a
    reader sees, with the aliases in place.
    """
    shown = decoded_header(raw)
    if not scrubber.readable(shown):
        return scrubber.scrub(raw)
    scrubbed = scrubber.scrub(raw)
    if b"=?" not in raw and raw.isascii() and not scrubber.readable(decoded_header(scrubbed)):
        return scrubbed
    return _encoded_field(_title(raw), scrubber.scrub_text(shown))


def _title(raw: bytes) -> str:
    return raw.split(b":", 1)[0].decode("ascii", "replace").strip()


def _scrub_parameters(name: str, raw: bytes, entity: mime.Entity, plan: Plan, rebuild: bool = False) -> bytes:
    """Content-Type and Content-Disposition, whose parameters (a file name) may hold an address.

    Values are read as a client reads them (relay/params.py: RFC 2231 and the
    RFC 2047 words clients put there anyway). The field is rebuilt from its
    parsed parts only if a reader could read a real address in a value or a
    boundary carries a host name; otherwise it leaves as it came.
    """
    content = entity.content
    parsed = content.params if name == "content-type" else content.disposition
    boundary = content.boundary if name == "content-type" else None
    tainted = any(plan.scrubber.readable(p.value) or plan.scrubber.found(charsets.to_utf8(p.value))
                  for p in parsed.items)
    if not rebuild and (not parsed.items or not (tainted or (boundary and "@" in boundary))):
        return plan.scrubber.scrub(raw)
    parts = [content.type if name == "content-type" else parsed.value or "attachment"]
    for parameter in parsed.items:
        key, value = parameter.name, parameter.value
        if key == "boundary" and "@" in value:
            value = _renamed_boundary(value, plan)
        elif key != "boundary":
            value = _one_line(plan.scrubber.scrub_text(value))
        parts += _parameter(key, value, structural=key == "boundary")
    return charsets.to_utf8(f"{_title(raw)}: " + ";\r\n ".join(parts)) + mime.CRLF


def _parameter(key: str, value: str, structural: bool = False) -> list[str]:
    """One parameter as folded lines: quoted if short and ASCII (a boundary always), else RFC 2231 sections."""
    if structural or (value.isascii() and len(value) <= 200 and value.isprintable()):
        return ['%s="%s"' % (key, value.replace("\\", "\\\\").replace('"', '\\"'))]
    encoded = quote(charsets.to_utf8(value), safe="")
    sections, start = [], 0
    while start < len(encoded):
        end = min(start + 60, len(encoded))
        while "%" in encoded[end - 2:end] and end < len(encoded):  # never cut a %XX in two
            end -= 1
        sections.append(encoded[start:end])
        start = end
    return [f"{key}*{index}*={'utf-8' + chr(39) * 2 if index == 0 else ''}{section}"
            for index, section in enumerate(sections)]


def _renamed_cid(value: str, plan: Plan) -> str:
    return f"<{_cid_token(value.strip().strip('<>').strip().encode('utf-8', 'surrogateescape'), plan)}@{plan.domain}>"


def _cid_token(old: bytes, plan: Plan) -> str:
    return hmac.new(plan.cid_key, old, hashlib.sha256).hexdigest()[:24]


def _renamed_boundary(boundary: str, plan: Plan) -> str:
    return "=_" + _cid_token(b"boundary:" + charsets.to_utf8(boundary), plan)


def _rewrite_body(part: mime.Part, plan: Plan, depth: int) -> tuple[bytes, str | None]:
    """The new body, and a new transfer encoding if the body needed one."""
    entity = part.entity
    content = entity.content
    if content.type.startswith("multipart/"):
        return _rewrite_multipart(part, plan, depth), None
    if content.embedded_message:
        return _transcode(entity.body, content, lambda data: _rewrite_embedded(part, data, plan, depth)), None
    if content.is_text:
        # message/delivery-status and the like are text with addresses in it, and so is
        # a file named .txt whatever its declared type: a reader opens it as text.
        # The raw bytes are scrubbed too: a body that does not decode as its
        # declared encoding says (plain text marked base64) is shown as it is.
        body = _transcode(entity.body, content, lambda data: _scrub_text(data, content.charset, content.is_html, plan))
        # "Show original" reads the body as it stands in the source, as UTF-8, whatever the
        # transfer encoding claims (8-bit bytes in a "quoted-printable" body stay readable).
        body = _scrub_readings(body, charsets.resolve("utf-8"), content.is_html, plan)
        if content.is_html:  # and the source is plain text there, attributes and all (src="cid:a@b")
            body = _scrub_readings(body, charsets.resolve("utf-8"), False, plan)
        if _has_long_line(body):
            # Clients (Outlook's HTML, for one) write lines longer than RFC 5322's
            # 998; the next hop may refuse them, quoted-printable folds them safely.
            data = mime.decode_body(body, content.transfer_encoding)
            return mime.encode_body(body if data is None else data, "quoted-printable"), "quoted-printable"
        return body, None
    if plan.scrub_metadata and metadata.handled(_first_bytes(entity.body, content.transfer_encoding)):
        data = mime.decode_body(entity.body, content.transfer_encoding)
        cleaned = metadata.scrubbed(content.filename or "", content.type, data) if data is not None else None
        if cleaned is not None:
            return mime.encode_body(cleaned, "base64"), "base64"
    if _has_long_line(entity.body):
        # Written with lines over 998 octets, which next hops refuse: base64 in 76-octet lines instead.
        data = mime.decode_body(entity.body, content.transfer_encoding)
        return mime.encode_body(entity.body if data is None else data, "base64"), "base64"
    return entity.body, None  # a binary part leaves exactly as it came


def _first_bytes(body: bytes, encoding: str | None) -> bytes:
    """Enough of the decoded body to tell its kind, without decoding a large attachment to find out."""
    head = mime.decode_body(body[:96], encoding) if encoding in ("base64", "quoted-printable") else body[:72]
    return head or b""


def _has_long_line(body: bytes) -> bool:
    # Splitting is C-fast; a regex for 999 non-line-end octets restarts at every position.
    return len(body) > MAX_LINE and max(map(len, body.split(b"\n"))) > MAX_LINE + 1


def _rewrite_multipart(part: mime.Part, plan: Plan, depth: int) -> bytes:
    multipart = part.multipart
    if multipart is None:
        # No usable boundary: a client would show this as text, so scrub it as text.
        return _scrub_text(part.entity.body, part.entity.content.charset, False, plan)
    boundary = part.entity.content.boundary
    delimiters = multipart.delimiters
    marker = charsets.to_utf8(boundary)
    if "@" in boundary:
        old, marker = marker, _renamed_boundary(boundary, plan).encode("ascii")
        delimiters = [d.replace(old, marker) for d in delimiters]
    kept = [(delimiter, child) for delimiter, child in zip(delimiters, part.children) if child.id not in plan.stripped]
    # What stands before the first delimiter and after the close one is for no reader (RFC 2046 5.1.1),
    # yet some show it, and the filters do not judge it: it goes. The close delimiter is always
    # written, so a message that lacked one is read the same way by everyone after the relay.
    parts = [_rewrite_entity(child, PART_KEPT, plan, depth + 1) for _, child in kept]
    delimiters = [delimiter for delimiter, _ in kept]
    if not parts:  # every part was removed: a multipart still has one (RFC 2046 5.1.1), empty
        delimiters, parts = [b"--" + marker + mime.CRLF], [_header("Content-Type", "text/plain; charset=utf-8")]
    return mime.Multipart(preamble=b"", delimiters=delimiters, parts=parts,
                          epilogue=b"\r\n--" + marker + b"--\r\n").to_bytes()


def _rewrite_embedded(part: mime.Part, data: bytes, plan: Plan, depth: int) -> bytes:
    return _rewrite_entity(mime.embedded(part, data, depth), EMBEDDED_KEPT, plan, depth + 1)


def _transcode(body: bytes, content: mime.Content, change) -> bytes:
    """Decode the transfer encoding, apply change, encode again only if something changed."""
    data = mime.decode_body(body, content.transfer_encoding)
    if data is None:
        return change(body)  # unknown or broken encoding: the best we can do is the raw text
    changed = change(data)
    return body if changed == data else mime.encode_body(changed, content.transfer_encoding)


def _scrub_text(data: bytes, charset: str | None, html: bool, plan: Plan) -> bytes:
    """Text in its own charset with every real address a reader could read in it replaced.

    In a charset that keeps ASCII as ASCII the plain spellings are replaced in the
    bytes, and every other byte stays as it came; in UTF-16, UTF-7 and the like an
    address has no ASCII bytes, so the text is decoded, changed and encoded back.
    Then the text is read as it is drawn, and only if a real address is still
    readable is it decoded and rewritten exactly there.
    """
    codec = charsets.resolve(charset)

    def change(raw: bytes) -> bytes:
        if not html:
            return plan.scrubber.scrub(raw)
        # Content-IDs were renamed; the HTML that shows them follows.
        return _CID_REFERENCE.sub(lambda m: _cid_reference(m, plan), plan.scrubber.scrub_html(raw))

    if codec.ascii_compatible:
        data = change(data)
    else:
        text = codec.reading(data)
        changed = charsets.from_utf8(change(charsets.to_utf8(text)))
        data = data if changed == text else codec.writing(changed, data)
    return _scrub_readings(data, codec, html, plan)


def _scrub_readings(data: bytes, codec: charsets.Codec, html: bool, plan: Plan) -> bytes:
    """Replace each real address still readable in any way a reader may read the bytes, in that reading."""
    for reading in codec.readings(data):
        text = charsets.decoded(data, reading)
        if plan.scrubber.readable(text, html):
            data = charsets.encoded(plan.scrubber.scrub_text(text, html), reading)
    return data


def _cid_reference(match: re.Match, plan: Plan) -> bytes:
    return b"cid:" + f"{_cid_token(unquote_to_bytes(match.group(1)), plan)}@{plan.domain}".encode("ascii")
