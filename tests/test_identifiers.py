"""Identifiers the sender's software wrote are renamed; text is scrubbed wherever it is text (issue 8)."""
from __future__ import annotations

import base64
import email
import struct
import zlib
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from conftest import BUYER, NO_POLICY, SELLER, SELLER_DOMAIN, crlf, fixture_text, send


@pytest.fixture
def relay_sections():
    """The rewrite alone: these messages (real clients' output) hold links the policy would bounce."""
    return {"filters": NO_POLICY}

def tiny_png(marker: bytes = b"") -> bytes:
    """A valid 1x1 PNG, with an optional text chunk (metadata the rewrite takes out)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    text = chunk(b"tEXt", b"Comment\x00" + marker) if marker else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + text
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def parse(content: bytes):
    return email.message_from_bytes(content, policy=default_policy)


async def test_inline_image_content_id_is_renamed_consistently(relay, sink, conversation):
    png = tiny_png()
    text = (fixture_text("thunderbird-inline-image.eml")
            .replace("__FROM__", SELLER).replace("__TO__", conversation.buyer_alias)
            .replace("__PNG__", base64.encodebytes(png).decode().strip()))
    await send(relay, SELLER, conversation.buyer_alias, crlf(text))
    [arrived] = await sink.wait_for(1)

    delivered = parse(arrived.content)
    html, image = list(delivered.iter_parts())
    content_id = image["Content-ID"]
    assert content_id.endswith("@relay.test>") and SELLER_DOMAIN not in content_id
    assert f'src="cid:{content_id.strip("<>")}"' in html.get_content()
    assert image.get_content() == png
    assert conversation.seller_alias in html.get_content()
    assert SELLER_DOMAIN.encode() not in arrived.content
    assert delivered["Content-Language"] == "en-US"
    assert "User-Agent" not in delivered


async def test_text_attachment_is_scrubbed_and_binary_attachment_is_untouched(relay, sink, conversation):
    png, tagged = tiny_png(), tiny_png(f"Shot by {SELLER}".encode())
    message = EmailMessage()
    message["From"] = SELLER
    message["Subject"] = "Invoice and photo"
    message.set_content("See attached.\n")
    message.add_attachment(f"Invoice A-1001\nQuestions: {SELLER}\nBuyer: {BUYER}\n", filename="invoice.txt")
    message.add_attachment(f"Base64 copy: {SELLER}\n".encode(), maintype="text", subtype="plain",
                           filename="copy.txt")
    message.add_attachment(png, maintype="image", subtype="png", filename="photo.png")
    message.add_attachment(tagged, maintype="image", subtype="png", filename="tagged.png")
    await send(relay, SELLER, conversation.buyer_alias, message.as_bytes(policy=default_policy.clone(linesep="\r\n")))
    [arrived] = await sink.wait_for(1)

    parts = {part.get_filename(): part for part in parse(arrived.content).iter_attachments()}
    invoice = parts["invoice.txt"].get_content()
    assert f"Questions: {conversation.seller_alias}" in invoice
    assert f"Buyer: {conversation.buyer_alias}" in invoice
    assert parts["copy.txt"]["Content-Transfer-Encoding"] == "base64"
    assert parts["copy.txt"].get_content() == f"Base64 copy: {conversation.seller_alias}\n"
    assert parts["photo.png"].get_content() == png  # nothing to take out: byte for byte
    assert parts["tagged.png"].get_content() == png  # its text chunk, metadata naming the seller, is gone


async def test_unknown_thread_ids_are_dropped(relay, sink, conversation):
    message = crlf(
        f"From: {SELLER}\nSubject: Hello\nMessage-ID: <m1@{SELLER_DOMAIN}>\n"
        f"In-Reply-To: <1234.5678@{SELLER_DOMAIN}>\n"
        f"References: <CAF-unknown@mail.gmail.com> <1234.5678@{SELLER_DOMAIN}>\n\nHi\n"
    )
    await send(relay, SELLER, conversation.buyer_alias, message)
    [arrived] = await sink.wait_for(1)
    delivered = parse(arrived.content)
    assert "In-Reply-To" not in delivered and "References" not in delivered
    assert SELLER_DOMAIN.encode() not in arrived.content


async def test_encoded_subject_and_boundary_with_the_senders_host_are_rewritten(relay, sink, conversation):
    boundary = f"----=_Part_1_2.3@{SELLER_DOMAIN}"
    encoded_subject = "=?utf-8?b?" + base64.b64encode(f"Pedido para {SELLER} ✓".encode()).decode() + "?="
    message = crlf(
        f"From: {SELLER}\nSubject: {encoded_subject}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        f"Escr=C3=ADbeme a {SELLER.replace('@', '=40')}\n"
        f"--{boundary}--\n"
    )
    await send(relay, SELLER, conversation.buyer_alias, message)
    [arrived] = await sink.wait_for(1)
    delivered = parse(arrived.content)
    assert delivered["Subject"] == f"Pedido para {conversation.seller_alias} ✓"
    assert delivered.get_body().get_content() == f"Escríbeme a {conversation.seller_alias}"
    assert SELLER_DOMAIN.encode() not in arrived.content
