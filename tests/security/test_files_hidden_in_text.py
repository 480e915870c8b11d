"""Issue 13.4: a file in any wrapping is an attachment to the attachment rule.

In the message's own text a forbidden file bounces the message (the seller
hears why and what to do); in a text attachment, that attachment is removed
and the rest delivered; a wrapping of a file (a forwarded message, TNEF, an
archive, an object inside a document or an image) is judged by what it holds.
"""
from __future__ import annotations

import base64
import binascii
import io
import zipfile
from email.message import EmailMessage

import pytest
from conftest import BUYER, SELLER, open_conversation, send, settled
from test_filters import EXE, PDF, _docx
from test_policy import as_bytes, notice_parts, parse

EXE = EXE + bytes(range(256)) * 2  # long enough to make a few lines in every wrapping


def _uuencode(name: str, data: bytes) -> str:
    lines = "".join(binascii.b2a_uu(data[i:i + 45]).decode() for i in range(0, len(data), 45))
    return f"begin 644 {name}\n{lines}`\nend\n"


def _yenc(name: str, data: bytes) -> str:
    out = bytearray()
    for byte in data:
        coded = (byte + 42) & 0xFF
        out += b"=" + bytes([(coded + 64) & 0xFF]) if coded in (0, 10, 13, 61) else bytes([coded])
    body = out.decode("latin-1")
    lines = "\n".join(body[i:i + 128] for i in range(0, len(body), 128))
    return f"=ybegin line=128 size={len(data)} name={name}\n{lines}\n=yend size={len(data)}\n"


def _pasted(data: bytes, prefix: str = "") -> str:
    return "".join(f"{prefix}{line}\n" for line in base64.encodebytes(data).decode().splitlines())


BINHEX = ("(This file must be converted with BinHex 4.0)\n"
          ":$f*TEQKPH#jdCA0d,R0TG!\"6594%8dP8)3#3\"!&m!*!%EMa6593K!!%!!!&mFNaKG3,r!*!$&[rr$3d,BQPZD'9i,R4TB\")!N!0S!!!\n"
          ":\n")

IN_TEXT = {
    "uuencode": _uuencode("setup.exe", EXE),
    "uuencode, renamed as a PDF": _uuencode("invoice.pdf", EXE),
    "begin-base64": "begin-base64 644 tool.exe\n" + _pasted(EXE) + "====\n",
    "yEnc": _yenc("tool.exe", EXE),
    "BinHex": BINHEX,
    "pasted base64": "Here is the program, decode it:\n\n" + _pasted(EXE),
    "pasted base64 in a quote": "Thanks!\n\n> " + _pasted(EXE, "> ")[2:],
}


def _message(text: str, html: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Shop <{SELLER}>"
    message["Subject"] = "The file you asked for"
    message["Date"] = "Wed, 02 Dec 2026 10:00:00 +0000"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


async def _sent(relay, sink, message: EmailMessage, count: int):
    opened = await open_conversation(relay)
    reply = await send(relay, SELLER, opened.buyer_alias, as_bytes(message))
    arrived = await sink.wait_for(count)
    await settled(relay)
    return reply, {tuple(m.rcpt_tos): m for m in arrived}


def _carries(content: bytes, data: bytes) -> bool:
    """Whether the file's bytes can be read out of a message, in any part, however encoded."""
    payloads = [content] + [p.get_payload(decode=True) or b"" for p in parse(content).walk() if not p.is_multipart()]
    return any(data[:64] in payload for payload in payloads)


@pytest.mark.parametrize("wrapping", IN_TEXT, ids=list(IN_TEXT))
async def test_a_file_wrapped_in_the_message_text_bounces_with_a_reason(relay, sink, wrapping):
    reply, arrived = await _sent(relay, sink, _message("Hello,\n\n" + IN_TEXT[wrapping] + "\nRegards\n"), 1)
    assert reply.startswith("2.0.0 Received but not delivered")
    assert list(arrived) == [(SELLER,)], "nothing reaches the buyer"
    text = notice_parts(arrived[(SELLER,)])["text"]
    assert "No files written out as text" in text and "(in the text)" not in text
    label = {"begin-base64": "uuencode", "pasted base64": "base64", "pasted base64 in a quote": "base64"}
    assert f"({label.get(wrapping, wrapping.split(',')[0])} in the text)" in text


async def test_a_data_uri_in_html_carrying_a_program_bounces(relay, sink):
    html = f'<p>Install this</p><a href="data:application/octet-stream;base64,{base64.b64encode(EXE).decode()}">x</a>'
    reply, arrived = await _sent(relay, sink, _message("Install this", html), 1)
    assert reply.startswith("2.0.0 Received but not delivered") and list(arrived) == [(SELLER,)]


@pytest.mark.parametrize("text", [
    _uuencode("invoice.pdf", PDF * 4),
    "-----BEGIN PGP SIGNATURE-----\n\n" + _pasted(bytes(range(7, 250)) * 2) + "-----END PGP SIGNATURE-----\n",
    "Tracking: 1Z999AA10123456784\nbegin the return by printing the label\nend of message\n",
], ids=["a uuencoded PDF", "a PGP signature", "words begin and end"])
async def test_text_that_is_no_forbidden_file_is_delivered(relay, sink, text):
    reply, arrived = await _sent(relay, sink, _message("Hello\n\n" + text), 1)
    assert reply.startswith("2.0.0 Queued") and list(arrived) == [(BUYER,)]


async def test_a_file_wrapped_in_a_text_attachment_removes_that_attachment_only(relay, sink):
    message = _message("Notes and the invoice attached.")
    message.add_attachment(("Notes\n" + _uuencode("setup.exe", EXE)).encode(), maintype="text", subtype="plain",
                           filename="notes.txt")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice.pdf")
    reply, arrived = await _sent(relay, sink, message, 2)
    assert reply.startswith("2.0.0 Queued")
    delivered = arrived[(BUYER,)]
    names = [p.get_filename() for p in parse(delivered.content).walk() if p.get_filename()]
    assert names == ["invoice.pdf"]
    assert not _carries(delivered.content, binascii.b2a_uu(EXE[:45]))
    assert "notes.txt: No files written out as text" in notice_parts(arrived[(SELLER,)])["text"]


def _forwarded(filename: str | None) -> EmailMessage:
    inner = _message("Forwarded: the tool.")
    inner.add_attachment(EXE, maintype="application", subtype="octet-stream", filename="tool.exe")
    message = _message("See the forwarded message.")
    message.add_attachment(inner, filename=filename) if filename else message.add_attachment(inner)
    return message


def _ooxml(extra: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO(_docx())
    with zipfile.ZipFile(buffer, "a") as archive:
        for name, data in extra.items():
            archive.writestr(name, data)
    return buffer.getvalue()


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(200) + b"\xff\xd9"
TNEF = b"\x78\x9f\x3e\x22" + b"\x01\x00" + bytes(64) + b"tool.exe\x00" + EXE
WRAPPINGS = {
    "a forwarded message with a program": (_forwarded(None), "tool.exe"),
    "a forwarded message named as text": (_forwarded("note.txt"), "note.txt"),
    "TNEF winmail.dat": ({"data": TNEF, "type": ("application", "ms-tnef"), "name": "winmail.dat"}, "winmail.dat"),
    "TNEF renamed as a PDF": ({"data": TNEF, "type": ("application", "pdf"), "name": "invoice.pdf"}, "invoice.pdf"),
    "a zip named .docx": ({"data": _ooxml({}).replace(b"word/document.xml", b"word/documenx.xml"),
                           "type": ("application", "octet-stream"), "name": "letter.docx"}, "letter.docx"),
    "a document carrying a program": ({"data": _ooxml({"word/embeddings/oleObject1.bin": EXE}),
                                       "type": ("application", "octet-stream"), "name": "letter.docx"},
                                      "letter.docx"),
    "a photo with an archive appended": ({"data": JPEG + _docx(), "type": ("image", "jpeg"), "name": "photo.jpg"},
                                         "photo.jpg"),
    "a PDF carrying a file": ({"data": PDF.replace(b"<<>>", b"<</Type/EmbeddedFile>>", 1),
                               "type": ("application", "pdf"), "name": "invoice.pdf"}, "invoice.pdf"),
}


@pytest.mark.parametrize("wrapping", WRAPPINGS, ids=list(WRAPPINGS))
async def test_a_wrapping_is_judged_by_what_it_holds(relay, sink, wrapping):
    carrier, name = WRAPPINGS[wrapping]
    if isinstance(carrier, dict):
        message = _message("The file is attached.")
        message.add_attachment(carrier["data"], maintype=carrier["type"][0], subtype=carrier["type"][1],
                               filename=carrier["name"])
    else:
        message = carrier
    reply, arrived = await _sent(relay, sink, message, 2)
    assert reply.startswith("2.0.0 Queued")
    delivered = arrived[(BUYER,)]
    assert not _carries(delivered.content, EXE), "the program reached the buyer"
    assert "The file is attached." in delivered.content.decode() or "forwarded" in delivered.content.decode()
    assert name in notice_parts(arrived[(SELLER,)])["text"] or "attached-message" in notice_parts(
        arrived[(SELLER,)])["text"]


async def test_an_honest_document_and_photo_are_delivered_whole(relay, sink):
    message = _message("The file is attached.")
    docx = _ooxml({"word/media/image1.png": b"\x89PNG\r\n\x1a\n", "docProps/core.xml": b"<x/>"})
    message.add_attachment(docx, maintype="application", subtype="octet-stream", filename="letter.docx")
    message.add_attachment(JPEG, maintype="image", subtype="jpeg", filename="photo.jpg")
    reply, arrived = await _sent(relay, sink, message, 1)
    assert reply.startswith("2.0.0 Queued")
    names = [p.get_filename() for p in parse(arrived[(BUYER,)].content).walk() if p.get_filename()]
    assert names == ["letter.docx", "photo.jpg"]
