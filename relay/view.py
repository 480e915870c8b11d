"""Build the filters' view of a message: decoded text bodies and attachments, each with its place in the tree.

Attachment ids are dotted paths ("0" is the whole message, "0.2.1" the first
part of its second part); the rewrite walks the tree the same way and removes
the parts the filters stripped.
"""
from __future__ import annotations

from filters.view import Attachment, MessageView

from . import mime
from .mime import MAX_DEPTH, MalformedMessage

MAX_PARTS = 1000


def decoded_header(raw: bytes | None) -> str:
    if raw is None:
        return ""
    return mime.decode_words(mime.field_value(raw).decode("utf-8", "surrogateescape"))


def _text(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("latin-1")


def build(raw: bytes) -> MessageView:
    entity = mime.parse_entity(raw)
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    _walk(entity, "0", 0, texts, htmls, attachments)
    auto = decoded_header(entity.first("auto-submitted")).strip().lower()
    return MessageView(
        subject=decoded_header(entity.first("subject")),
        texts=tuple(texts), htmls=tuple(htmls), attachments=tuple(attachments),
        auto_submitted=bool(auto) and auto != "no",
    )


def part_ids(entity: mime.Entity, part_id: str) -> list[tuple[str, bytes]] | None:
    """The children of a multipart entity with their ids, or None if it is not a usable multipart."""
    headers = entity.headers
    boundary = headers.get_boundary()
    if not headers.get_content_type().startswith("multipart/") or not boundary:
        return None
    multipart = mime.split_multipart(entity.body, boundary.encode("utf-8", "surrogateescape"))
    if multipart is None:
        return None
    return [(f"{part_id}.{index + 1}", part) for index, part in enumerate(multipart.parts)]


def _walk(entity: mime.Entity, part_id: str, depth: int, texts, htmls, attachments) -> None:
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"MIME parts are nested more than {MAX_DEPTH} levels deep")
    children = part_ids(entity, part_id)
    if children is not None:
        if len(children) > MAX_PARTS:
            # Mail clients show a handful of parts; tens of thousands are only a way to burn CPU.
            raise MalformedMessage(f"a multipart has more than {MAX_PARTS} parts")
        for child_id, child in children:
            _walk(mime.parse_entity(child), child_id, depth + 1, texts, htmls, attachments)
        return
    headers = entity.headers
    content_type = headers.get_content_type()
    data = mime.decode_body(entity.body, mime.transfer_encoding(headers))
    if data is None:
        data = entity.body
    filename = headers.get_filename()
    disposition = (headers.get_content_disposition() or "").lower()
    readable = content_type.startswith("text/") or (
        content_type.startswith("message/") and content_type not in ("message/rfc822", "message/global"))
    if filename or disposition == "attachment" or not readable:
        name = filename or ("attached-message.eml" if content_type.startswith("message/") else "attachment")
        attachments.append(Attachment(part_id, str(name), content_type, data))
    elif content_type == "text/html":
        htmls.append(_text(data, headers.get_content_charset() or "utf-8"))
    else:
        texts.append(_text(data, headers.get_content_charset() or "us-ascii"))
