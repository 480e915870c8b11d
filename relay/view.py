"""Build the filters' view of a message: decoded text bodies and attachments, each with its place in the tree.

Attachment ids are the parts' ids in the MIME tree (relay/mime.py `tree`),
which the rewrite walks too, removing the parts the filters stripped.
"""
from __future__ import annotations

from filters.html import TooMuchMarkup, check_size
from filters.view import Attachment, MessageView, WrappedFile

from . import mime, wrapped
from .charsets import shown
from .words import decode_words


def decoded_header(raw: bytes | None) -> str:
    """A field's value as a reader sees it: unfolded, 8-bit text read as UTF-8, encoded words decoded."""
    if raw is None:
        return ""
    return decode_words(shown(mime.field_value(raw), "utf-8"))


def build(root: mime.Part) -> MessageView:
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    files: list[WrappedFile] = []
    _walk(root, texts, htmls, attachments, files)
    auto = decoded_header(root.entity.first("auto-submitted")).strip().lower()
    return MessageView(
        subject=decoded_header(root.entity.first("subject")),
        texts=tuple(texts), htmls=tuple(htmls), attachments=tuple(attachments),
        auto_submitted=bool(auto) and auto != "no", wrapped=tuple(files),
    )


def _wrapped(text: str, container: str, in_body: bool, files: list[WrappedFile]) -> None:
    files.extend(WrappedFile(container, in_body, found.filename, found.wrapping, found.data)
                 for found in wrapped.find(text))


def _walk(part: mime.Part, texts, htmls, attachments, files) -> None:
    if part.multipart is not None:
        for child in part.children:
            _walk(child, texts, htmls, attachments, files)
        return
    entity, part_id = part.entity, part.id
    content = entity.content
    data = mime.decode_body(entity.body, content.transfer_encoding)
    if data is None:
        data = entity.body
    filename = content.filename
    if filename or content.disposition.value == "attachment" or not content.is_text:
        name = filename or ("attached-message.eml" if content.type.startswith("message/") else "attachment")
        text = shown(data, content.charset) if content.is_text else None
        attachments.append(Attachment(part_id, name, content.type, data, text))
        if text is not None:
            _wrapped(text, part_id, False, files)
    elif content.is_html:
        html = shown(data, content.charset)
        try:
            check_size(html)
        except TooMuchMarkup as exc:
            raise mime.MalformedMessage(str(exc)) from None
        htmls.append(html)
        _wrapped(html, part_id, True, files)
    else:
        texts.append(shown(data, content.charset))
        _wrapped(texts[-1], part_id, True, files)
