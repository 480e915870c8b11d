"""The masked forward path end to end: real SMTP in, real SMTP out, nothing of either real address across."""
from __future__ import annotations

import asyncio
import email
import re
from email.message import EmailMessage
from email.policy import default as default_policy

import aiosmtplib
import pytest
from conftest import (
    BUYER,
    NO_POLICY,
    SELLER,
    SELLER_DOMAIN,
    both_backends,
    bounce_address,
    crlf,
    fixture_text,
    open_conversation,
    send,
)

backend = both_backends


@pytest.fixture
def relay_sections():
    """The rewrite alone: these messages (real clients' output) hold links the policy would bounce."""
    return {"filters": NO_POLICY, "server": {"max_recipients": 2}}


def parse(content: bytes):
    return email.message_from_bytes(content, policy=default_policy)


def readable_texts(content: bytes) -> list[str]:
    """Everything a mail client could show: raw bytes, every decoded header, every decoded text part."""
    message = parse(content)
    texts = [content.decode("utf-8", "replace")]
    for part in message.walk():
        texts += [f"{name}: {value}" for name, value in part.items()]
        if part.get_content_maintype() == "text":
            texts.append(part.get_content())
    return texts


def assert_nowhere(content: bytes, *needles: str, except_to: str | None = None) -> None:
    """No needle in the bytes or any decoded part; the recipient's own To header may hold except_to."""
    if except_to:
        head, body = content.split(b"\r\n\r\n", 1)
        head = head.replace(f"To: {except_to}\r\n".encode(), b"")
        content = head + b"\r\n\r\n" + body
    for text in readable_texts(content):
        for needle in needles:
            assert needle.lower() not in text.lower(), f"{needle!r} leaked in: {text[:300]!r}"


async def test_buyer_message_reaches_seller_from_the_buyer_alias(relay, sink, conversation):
    message = crlf(
        f"Received: from pc.example.com (pc.example.com [203.0.113.7])\n"
        f"X-Originating-IP: [203.0.113.7]\n"
        f"From: Ann Privatename <{BUYER}>\n"
        f"Reply-To: {BUYER}\n"
        f"Sender: {BUYER}\n"
        f"Cc: friend@example.org\n"
        f"To: {conversation.seller_alias}\n"
        f"Subject: Where is my order A-1001?\n"
        f"Message-ID: <buyer-1@example.com>\n"
        f"Date: Mon, 30 Nov 2026 10:00:00 +0000\n"
        f"DKIM-Signature: v=1; d=example.com; b=abc\n"
        f"Disposition-Notification-To: {BUYER}\n"
        f"\n"
        f"Hello, has my order shipped? You can reach me at {BUYER}.\n"
    )
    reply = await send(relay, BUYER, conversation.seller_alias, message)
    [arrived] = await sink.wait_for(1)

    assert bounce_address(arrived.mail_from)  # reports about it come back to the relay, not the buyer
    assert arrived.rcpt_tos == [SELLER]
    delivered = parse(arrived.content)
    assert delivered["From"].addresses[0].addr_spec == conversation.buyer_alias
    assert delivered["From"].addresses[0].display_name == "Ann Buyer"
    assert str(delivered["To"]) == SELLER
    assert delivered["Subject"] == "Where is my order A-1001?"
    assert delivered["Date"] == "Mon, 30 Nov 2026 10:00:00 +0000"
    assert delivered["Message-ID"].endswith("@relay.test>") and delivered["Message-ID"] in reply
    for dropped in ("X-Originating-IP", "Reply-To", "Sender", "Cc", "DKIM-Signature", "Disposition-Notification-To"):
        assert dropped not in delivered, dropped
    # Only the relay's own trace is left (RFC 5321 4.4): it names the relay, not the sender's side.
    [trace] = delivered.get_all("Received")
    assert trace.startswith("by relay.localhost (marketplace-relay) with ESMTP id ")
    assert f"reach me at {conversation.buyer_alias}." in delivered.get_content()
    assert_nowhere(arrived.content, BUYER, "203.0.113.7", "friend@example.org", "Privatename")


def _buyer_first_message(conversation) -> bytes:
    return crlf(
        f"From: Ann <{BUYER}>\nTo: {conversation.seller_alias}\nSubject: Test\n"
        f"Message-ID: <CAbuyer-original@mail.example.com>\nDate: Mon, 2 Apr 2012 18:26:00 +0400\n\nHi\n"
    )


@pytest.mark.parametrize("fixture,quoted,own", [
    # Gmail: "On ..., Megan One <xxx@gmail.com> wrote:" in text and a mailto: link in HTML.
    ("gmail-reply.eml", ["xxx@gmail.com"], []),
    # Outlook: the "From: x [mailto:x] Sent: To:" block, ISO-8859-1, XML namespaces, addresses in URLs.
    ("outlook-reply.eml", ["xxx@xxx.mailgun.org"], ["dan.le@example.com"]),
])
async def test_seller_reply_threads_and_leaks_nothing(relay, sink, conversation, fixture, quoted, own):
    await send(relay, BUYER, conversation.seller_alias, _buyer_first_message(conversation))
    [to_seller] = await sink.wait_for(1)
    relay_id = parse(to_seller.content)["Message-ID"]

    text = fixture_text(fixture)
    for address in quoted:
        text = text.replace(address, "__QUOTED__")
    for address in own:
        text = text.replace(address, "__OWN__")
    reply = _reply_from_text(text, conversation, relay_id)
    await send(relay, SELLER, conversation.buyer_alias, reply)
    arrived = (await sink.wait_for(2))[1]

    assert arrived.rcpt_tos == [BUYER]
    delivered = parse(arrived.content)
    # Threads on the buyer's side: it answers the id the buyer's own client wrote.
    assert delivered["In-Reply-To"] == "<CAbuyer-original@mail.example.com>"
    # The seller's own older id was never issued by the relay: dropped, not copied.
    assert delivered["References"] == "<CAbuyer-original@mail.example.com>"
    assert delivered["From"].addresses[0].addr_spec == conversation.seller_alias
    assert delivered["From"].addresses[0].display_name == "Seller Shop"
    texts = [p.get_content() for p in delivered.walk() if p.get_content_maintype() == "text"]
    assert texts and all(conversation.buyer_alias in t for t in texts), "quoted address replaced by the alias"
    assert_nowhere(arrived.content, SELLER, SELLER_DOMAIN, "Fullname", except_to=BUYER)
    assert sum(t.lower().count(BUYER) for t in readable_texts(arrived.content)[1:]) == 1  # the To header only


def _reply_from_text(text: str, conversation, relay_id: str) -> bytes:
    head, body = re.split(r"\r?\n\r?\n", text, maxsplit=1)
    head = re.sub(r"(?mi)^(From|To|Message-Id):.*\n?", "", head)
    head = (
        f"From: Shop Owner Fullname <{SELLER}>\nTo: Buyer <{conversation.buyer_alias}>\n"
        f"Message-ID: <1234.5678@{SELLER_DOMAIN}>\n"
        f"In-Reply-To: {relay_id}\nReferences: <older.thread@{SELLER_DOMAIN}> {relay_id}\n"
        f"Received: from mail.{SELLER_DOMAIN} by mx.example.net\n" + head
    )
    return crlf(head + "\n\n" + body.replace("__QUOTED__", BUYER).replace("__OWN__", SELLER))


async def test_reply_to_a_reply_threads_back_to_the_seller(relay, sink, conversation):
    """Both directions: the seller's next message references its own original, seen by the buyer as the relay's id."""
    await send(relay, BUYER, conversation.seller_alias, _buyer_first_message(conversation))
    first_relay_id = parse((await sink.wait_for(1))[0].content)["Message-ID"]
    await send(relay, SELLER, conversation.buyer_alias, crlf(
        f"From: {SELLER}\nSubject: Re: Test\nMessage-ID: <s1@{SELLER_DOMAIN}>\nIn-Reply-To: {first_relay_id}\n\nShipped.\n"))
    seller_reply = parse((await sink.wait_for(2))[1].content)
    await send(relay, BUYER, conversation.seller_alias, crlf(
        f"From: {BUYER}\nSubject: Re: Test\nMessage-ID: <b2@example.com>\n"
        f"In-Reply-To: {seller_reply['Message-ID']}\n"
        f"References: <CAbuyer-original@mail.example.com> {seller_reply['Message-ID']}\n\nThanks!\n"))
    to_seller = parse((await sink.wait_for(3))[2].content)
    assert to_seller["In-Reply-To"] == f"<s1@{SELLER_DOMAIN}>"
    assert to_seller["References"].split() == [first_relay_id, f"<s1@{SELLER_DOMAIN}>"]


async def test_refused_at_rcpt_and_nothing_delivered(relay, sink, conversation):
    async def rcpt_reply(sender: str, recipient: str):
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
            await client.mail(sender)
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
                await client.rcpt(recipient)
            return refused.value.code, refused.value.message

    code, text = await rcpt_reply(BUYER, "nobody0000000000@relay.test")
    assert code == 550 and text.startswith("5.1.1")
    code, text = await rcpt_reply("stranger@example.net", conversation.seller_alias)
    assert code == 550 and text.startswith("5.7.1") and "other party" in text
    code, text = await rcpt_reply(BUYER, "someone@elsewhere.example")
    assert code == 550 and text.startswith("5.7.1") and "Relay access denied" in text
    code, text = await rcpt_reply("", conversation.seller_alias)  # a delivery report from the other side
    assert code == 550 and text.startswith("5.7.1")

    # The only message that arrives is the one sent afterwards by the rightful sender.
    await send(relay, BUYER, conversation.seller_alias, _buyer_first_message(conversation))
    await sink.wait_for(1)
    assert len(sink.messages) == 1 and sink.messages[0].rcpt_tos == [SELLER]


async def test_several_aliases_in_one_transaction_each_get_their_own_copy(relay, sink, conversation):
    other = await open_conversation(relay, order_id="A-2002")
    third = await open_conversation(relay, order_id="A-3003")
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        ehlo = await client.ehlo()
        for extension in ("SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING"):
            assert extension in ehlo.message
        helped = await client.execute_command(b"HELP")
        assert {"MAIL", "RCPT", "DATA", "RSET"} <= set(helped.message.split(": ", 1)[1].split())
        await client.mail(BUYER)
        await client.rcpt(conversation.seller_alias)
        await client.rcpt(other.seller_alias)
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as deferred:  # [server] max_recipients = 2 here
            await client.rcpt(third.seller_alias)
        assert deferred.value.code == 452 and deferred.value.message.startswith("4.5.3")
        reply = await client.data(_buyer_first_message(conversation))
    assert reply.code == 250 and reply.message == "2.0.0 Queued for 2 recipients"
    arrived = await sink.wait_for(2)
    senders = sorted(parse(m.content)["From"].addresses[0].addr_spec for m in arrived)
    assert senders == sorted([conversation.buyer_alias, other.buyer_alias])  # each as the buyer of its conversation
    assert all(m.rcpt_tos == [SELLER] for m in arrived) and len(sink.messages) == 2


async def test_display_name_is_the_role_in_the_readers_language(relay, sink):
    unnamed = await open_conversation(relay, order_id="B-1", seller_locale="es")
    message = crlf(f"From: {BUYER} <{BUYER}>\nSubject: hola\n\nHola\n")  # Outlook's default name: the address
    await send(relay, BUYER, unnamed.seller_alias, message)
    [arrived] = await sink.wait_for(1)
    sender = parse(arrived.content)["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Comprador", unnamed.buyer_alias)
    assert_nowhere(arrived.content, BUYER)


async def test_charsets_smtputf8_and_a_9_mb_attachment_arrive_intact(relay, sink, conversation):
    attachment = bytes(range(256)) * (9 * 1024 * 1024 // 256)
    message = EmailMessage()
    message["From"] = BUYER
    message["Subject"] = "Pedido ✓ 東京 — ¿dónde está?"
    message.set_content(f"Olá señor, ça coûte 12,50 EUR. ¿Qué tal? {BUYER}\n", charset="iso-8859-1", cte="8bit")
    message.add_attachment(attachment, maintype="application", subtype="pdf", filename="factura.pdf")
    await send(relay, BUYER, conversation.seller_alias, message.as_bytes(policy=default_policy.clone(linesep="\r\n")))

    utf8 = f"From: Jörg <{BUYER}>\r\nSubject: Grüße aus Köln ✓\r\nContent-Type: text/plain; charset=utf-8\r\n" \
           f"Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße, {BUYER}\r\n".encode("utf-8")
    await send(relay, BUYER, conversation.seller_alias, utf8, mail_options=["SMTPUTF8"])

    arrived = await sink.wait_for(2)  # delivered side by side: the small one may come first
    first, second = sorted(arrived, key=lambda m: -len(m.content))
    delivered = parse(first.content)
    assert delivered["Subject"] == "Pedido ✓ 東京 — ¿dónde está?"
    body, attached = list(delivered.iter_parts())
    assert body.get_content_charset() == "iso-8859-1"
    assert body.get_content().replace("\r\n", "\n") == f"Olá señor, ça coûte 12,50 EUR. ¿Qué tal? {conversation.buyer_alias}\n"
    assert "¿Qué tal?".encode("iso-8859-1") in first.content  # 8-bit Latin-1 bytes kept as they came
    assert attached.get_filename() == "factura.pdf"
    assert attached.get_content() == attachment
    delivered_utf8 = parse(second.content)
    assert delivered_utf8["Subject"] == "Grüße aus Köln ✓"
    assert delivered_utf8.get_content() == f"Schöne Grüße, {conversation.buyer_alias}\r\n"
    assert "SMTPUTF8" in second.mail_options


async def test_bare_line_feed_is_refused_and_the_session_goes_on(relay, sink, conversation):
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)

    async def say(line: bytes) -> bytes:
        writer.write(line)
        await writer.drain()
        reply = await reader.readline()
        while reply[3:4] == b"-":
            reply = await reader.readline()
        return reply

    assert (await reader.readline()).startswith(b"220")
    assert (await say(b"EHLO client.example\r\n")).startswith(b"250 ")
    for data, expected in (
        (b"Subject: smuggle\r\n\r\nline one\nMAIL FROM:<x@y>\r\n", b"550 5.6.0 Message refused: it contains a bare LF"),
        (b"Subject: nul\r\n\r\nbad \x00 byte\r\n", b"550 5.6.0 Message refused: it contains a NUL"),
        (b"Subject: clean\r\n\r\nAll good.\r\n", b"250 2.0.0"),
    ):
        assert (await say(f"MAIL FROM:<{BUYER}>\r\n".encode())).startswith(b"250")
        assert (await say(f"RCPT TO:<{conversation.seller_alias}>\r\n".encode())).startswith(b"250")
        assert (await say(b"DATA\r\n")).startswith(b"354")
        reply = await say(data + b".\r\n")
        assert reply.startswith(expected), reply
    writer.close()
    [arrived] = await sink.wait_for(1)
    assert b"All good." in arrived.content and len(sink.messages) == 1


async def test_mail_loops_between_relays_are_refused(relay, sink, conversation):
    trace = "Received: by relay-b.example (marketplace-relay) with ESMTP id x; Mon, 30 Nov 2026 10:00:00 +0000\n"
    looping = crlf(trace * 10 + f"From: {BUYER}\nSubject: round and round\n\nHello\n")
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay, BUYER, conversation.seller_alias, looping)
    assert refused.value.code == 554 and refused.value.message.startswith("5.4.6")

    await send(relay, BUYER, conversation.seller_alias, crlf(trace * 2 + f"From: {BUYER}\nSubject: twice\n\nHello\n"))
    [arrived] = await sink.wait_for(1)
    traces = parse(arrived.content).get_all("Received")
    assert len(traces) == 3 and traces[0].startswith("by relay.localhost (marketplace-relay)")

