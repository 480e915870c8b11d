"""Build the filters' view of a message: decoded text bodies and attachments, each with its place in the tree.

Attachment ids are the parts' ids in the MIME tree (relay/mime.py `tree`),
which the rewrite walks too, removing the parts the filters stripped.
"""
from __future__ import annotations

from filters.view import Attachment, MessageView

from . import mime


def decoded_header(raw: bytes | None) -> str:
    if raw is None:
        return ""
    return mime.decode_words(mime.field_value(raw).decode("utf-8", "surrogateescape"))


def _text(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("latin-1")


def build(root: mime.Part) -> MessageView:
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    _walk(root, texts, htmls, attachments)
    auto = decoded_header(root.entity.first("auto-submitted")).strip().lower()
    return MessageView(
        subject=decoded_header(root.entity.first("subject")),
        texts=tuple(texts), htmls=tuple(htmls), attachments=tuple(attachments),
        auto_submitted=bool(auto) and auto != "no",
    )


def _walk(part: mime.Part, texts, htmls, attachments) -> None:
    if part.multipart is not None:
        for child in part.children:
            _walk(child, texts, htmls, attachments)
        return
    entity, part_id = part.entity, part.id
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
