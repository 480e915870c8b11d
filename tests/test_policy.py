"""Policy end to end over SMTP: what the buyer gets, what the seller is told, what the log says."""
from __future__ import annotations

import email
import logging
import os
from email.message import EmailMessage
from email.policy import default as default_policy

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, both_backends, bounce_address, crlf, eventually, open_conversation, send, settled
from test_filters import EXE, PDF

BUYER_DOMAIN = BUYER.split("@")[1]

backend = both_backends


def parse(content: bytes):
    return email.message_from_bytes(content, policy=default_policy)


def as_bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def seller_message(subject: str, text: str, attachments=()) -> bytes:
    message = EmailMessage()
    message["From"] = f"Shop <{SELLER}>"
    message["Subject"] = subject
    message["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    message.set_content(text)
    for filename, data in attachments:
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return as_bytes(message)


def notice_parts(received) -> dict:
    """The three parts of an RFC 3464 report, checked for shape on the way."""
    report = parse(received.content)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    human, status, headers = report.iter_parts()
    assert (human.get_content_type(), status.get_content_type(), headers.get_content_type()) == (
        "text/plain", "message/delivery-status", "text/rfc822-headers")
    return {"report": report, "text": human.get_content(), "status": status, "headers": headers.get_content()}


def assert_no_trace_of_the_buyer(received) -> None:
    texts = [received.content.decode("utf-8", "replace")]
    texts += [p.get_content() for p in parse(received.content).walk() if p.get_content_maintype() == "text"]
    for text in texts:
        assert BUYER not in text and BUYER_DOMAIN not in text


async def test_renamed_executable_is_removed_with_a_note_and_the_seller_is_told(relay, sink):
    opened = await open_conversation(relay, seller_locale="es", buyer_locale="it")
    message = seller_message("Factura", "Adjunto la factura y el manual.",
                             [("factura.pdf", PDF), ("manual.pdf", EXE)])
    reply = await send(relay, SELLER, opened.buyer_alias, message)
    assert reply.startswith("2.0.0 Queued")
    arrived = await sink.wait_for(2)
    [delivered], [notice] = ([m for m in arrived if m.rcpt_tos == [who]] for who in (BUYER, SELLER))

    assert delivered.rcpt_tos == [BUYER]
    parts = list(parse(delivered.content).walk())
    names = [p.get_filename() for p in parts if p.get_filename()]
    assert names == ["factura.pdf"]
    note = [p.get_content() for p in parts if p.get_content_type() == "text/plain"][-1]
    assert 'l\'allegato "manual.pdf"' in note  # in the buyer's language

    assert bounce_address(notice.mail_from) and notice.rcpt_tos == [SELLER]
    report = notice_parts(notice)
    assert "Su mensaje al comprador se ha entregado" in report["text"] and "manual.pdf" in report["text"]
    assert_no_trace_of_the_buyer(notice)

    shown = await relay.store.show(opened.conversation_id)
    assert shown["messages"][0]["verdict"] == "forwarded" and shown["messages"][0]["rule"] == "attachment_removed"


async def test_a_removed_file_named_after_a_real_address_is_named_by_the_alias_in_the_note(relay, sink):
    opened = await open_conversation(relay)
    message = seller_message("Invoice", "The invoice.", [(f"invoice for {BUYER}.pdf", PDF), (f"{SELLER}.pdf", EXE)])
    assert (await send(relay, SELLER, opened.buyer_alias, message)).startswith("2.0.0 Queued")
    [delivered] = [m for m in await sink.wait_for(2) if m.rcpt_tos == [BUYER]]
    parts = list(parse(delivered.content).walk())
    note = [p.get_content() for p in parts if p.get_content_type() == "text/plain"][-1]
    assert f"{opened.seller_alias}.pdf" in note and SELLER not in delivered.content.decode("latin-1")
    assert [p.get_filename() for p in parts if p.get_filename()] == [f"invoice for {opened.buyer_alias}.pdf"]


async def test_too_many_megabytes_bounce_the_whole_message(relay, sink):
    opened = await open_conversation(relay)
    chunk = PDF + os.urandom(5 * 1024 * 1024 + 256 * 1024)
    message = seller_message("Scans", "Two scans.", [("scan1.pdf", chunk), ("scan2.pdf", chunk)])
    reply = await send(relay, SELLER, opened.buyer_alias, message)
    assert reply.startswith("2.0.0 Received but not delivered")
    [notice] = await sink.wait_for(1)
    assert notice.rcpt_tos == [SELLER] and bounce_address(notice.mail_from)
    report = notice_parts(notice)
    assert "was not delivered" in report["text"] and "10 MB" in report["text"]
    assert "Order: A-1001" in report["text"] and 'Message: "Scans"' in report["text"]
    shown = await relay.store.show(opened.conversation_id)
    assert [(m["verdict"], m["rule"]) for m in shown["messages"]] == [("bounced", "attachments_too_large")]


async def test_an_announced_size_over_the_limit_is_refused_at_mail_from(relay, conversation):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        await client.ehlo()
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.mail(SELLER, options=["SIZE=20000000"])
    assert refused.value.code == 552 and refused.value.message.startswith("5.3.4")


@pytest.fixture
async def opted_out(relay):
    await relay.store.set_opt_out(BUYER, True)
    return relay


@pytest.mark.parametrize("subject,text,category,delivered,rule", [
    ("Your order", "Can you be home Tuesday between 9.00 and 12.00?", None, False, "opt_out"),
    ("[Important] delivery on Tuesday", "Can you be home Tuesday between 9.00 and 12.00?", None, True, None),
    ("[important] delivery on Tuesday", "Can you be home Tuesday between 9.00 and 12.00?", None, True, None),
    ("Your order", "The engraving is done.", "handmade", True, None),
    ("[Important] your order", "Please leave us a 5-star review!", None, False, "not_critical"),
])
async def test_opt_out(opted_out, sink, subject, text, category, delivered, rule):
    opened = await open_conversation(opted_out, order_id="A-77", category=category)
    await send(opted_out, SELLER, opened.buyer_alias, seller_message(subject, text))
    [arrived] = await sink.wait_for(1)
    assert (arrived.rcpt_tos == [BUYER]) is delivered
    if not delivered:
        report = notice_parts(arrived)
        assert "Order: A-77" in report["text"] and "[Important]" in report["text"]
        shown = await opted_out.store.show(opened.conversation_id)
        assert shown["messages"][0]["rule"] == rule


async def _asked_and_answered(relay, sink, question: str, answer: str, question_id: str = ""):
    """The buyer writes, the seller answers the id the relay gave the question; what arrived of the answer."""
    opened = await open_conversation(relay)
    question_id = f"Message-ID: {question_id}\n" if question_id else ""
    await send(relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: Q\n{question_id}\n{question}\n"))
    [asked] = await sink.wait_for(1)
    relay_id = parse(asked.content)["Message-ID"]
    await send(relay, SELLER, opened.buyer_alias,
               crlf(f"From: {SELLER}\nSubject: Re: Q\nIn-Reply-To: {relay_id}\n\n{answer}"))
    return (await sink.wait_for(2))[1]


async def test_opt_out_lets_replies_in_the_buyers_thread_through(opted_out, sink):
    answer = await _asked_and_answered(opted_out, sink, "Is it true to size?", "Yes, true to size.\n",
                                       "<q1@example.com>")
    assert answer.rcpt_tos == [BUYER] and parse(answer.content)["In-Reply-To"] == "<q1@example.com>"


async def test_replies_to_buyer_messages_that_had_no_message_id_are_in_the_buyers_thread(opted_out, sink):
    """Issue 14.7: the buyer's client wrote no Message-ID; the seller answers the id the relay gave."""
    opened = await open_conversation(opted_out)
    for n in range(3):
        await send(opted_out, BUYER, opened.seller_alias,
                   crlf(f"From: {BUYER}\nSubject: Question {n}\n\nAnd another thing, number {n}.\n"))
    questions = list(await sink.wait_for(3))  # a copy: the sink keeps adding to its own list
    for n, question in enumerate(questions):
        relay_id = parse(question.content)["Message-ID"]
        await send(opted_out, SELLER, opened.buyer_alias,
                   crlf(f"From: {SELLER}\nSubject: Re: Question {n}\nIn-Reply-To: {relay_id}\n"
                        f"References: {relay_id}\n\nHere is the answer to {n}.\n"))
    answers = (await sink.wait_for(6))[3:]
    assert [a.rcpt_tos for a in answers] == [[BUYER]] * 3  # none bounced as unsolicited or over-messaging
    assert all(parse(a.content)["In-Reply-To"] is None for a in answers)  # nothing to translate back to
    rows = (await opted_out.store.show(opened.conversation_id))["messages"]
    assert [r["verdict"] for r in rows] == ["forwarded"] * 6


@pytest.mark.parametrize("reply, delivered", [
    ("Yes, that one is ours, it ships Monday.\n\n> I saw this lamp on www.pinterest.com, is it yours?\n", True),
    ("Yes! More of them on www.pinterest.com too.\n\n> I saw this lamp on www.pinterest.com, is it yours?\n",
     False),  # the seller adds the link himself
    ("Yes, it is.\n\n> I saw this lamp on www.lamps-by-jo.example, is it yours?\n", False),  # a forged quote
])
async def test_a_link_in_the_buyers_own_quoted_words_is_the_buyers(relay, sink, reply, delivered):
    """Issue 14.3: quoting the buyer's link back is no link of the seller's; adding one, or forging the quote, is."""
    answer = await _asked_and_answered(relay, sink, "I saw this lamp on www.pinterest.com, is it yours?", reply)
    assert (answer.rcpt_tos == [BUYER]) is delivered
    if not delivered:
        assert "link" in notice_parts(answer)["text"].lower()


async def test_notice_is_in_the_senders_language_and_names_neither_buyer_nor_domain(relay, sink):
    opened = await open_conversation(relay, seller_locale="id")
    # The seller copied the buyer's real address from an old exchange: the notice's copy of the headers shows the alias.
    message = f"Cc: {BUYER}\r\n".encode() + seller_message("Pesanan", f"Kunjungi toko kami di tokoku.co.id ya, {BUYER}!")
    await send(relay, SELLER, opened.buyer_alias, message)
    [notice] = await sink.wait_for(1)
    report = notice_parts(notice)
    assert "Pesan Anda kepada pembeli tidak terkirim" in report["text"]
    assert report["report"]["Content-Language"] == "id" and report["report"]["Auto-Submitted"] == "auto-replied"
    assert f"Cc: {opened.buyer_alias}" in report["headers"]
    assert_no_trace_of_the_buyer(notice)


async def test_blocked_mail_from_the_null_sender_or_an_autoresponder_gets_no_notice(relay, sink):
    opened = await open_conversation(relay)
    blocked = seller_message("Out of office", "Visit www.myshop.example.com meanwhile")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):  # <> never gets past RCPT to an alias
        await send(relay, "", opened.buyer_alias, blocked)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay, SELLER, opened.buyer_alias, b"Auto-Submitted: auto-replied\r\n" + blocked)
    assert refused.value.code == 550 and refused.value.message.startswith("5.7.1")
    # The next message is the first thing at the sink: no notice went out for either.
    await send(relay, SELLER, opened.buyer_alias, seller_message("Shipped", "Your parcel left today."))
    [first] = await sink.wait_for(1)
    await settled(relay)
    assert first.rcpt_tos == [BUYER] and len(sink.messages) == 1


async def test_over_messaging_counts_unsolicited_messages_only(relay, sink):
    opened = await open_conversation(relay)
    for n in range(3):
        await send(relay, SELLER, opened.buyer_alias, seller_message(f"Update {n}", "Your parcel is on its way."))
    await sink.wait_for(3)
    await settled(relay)
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted([BUYER, BUYER, SELLER])
    assert "too_many_messages" in [m["rule"] for m in (await relay.store.show(opened.conversation_id))["messages"]]


async def test_a_notice_the_next_hop_defers_is_delivered_later(relay, sink):
    opened = await open_conversation(relay)
    sink.fail_next(1, "421 4.3.2 Not now")
    reply = await send(relay, SELLER, opened.buyer_alias, seller_message("Hi", "See www.myshop.example.com"))
    assert reply.startswith("2.0.0 Received but not delivered")  # the notice is queued, not sent in the session
    [notice] = await sink.wait_for(1)
    await settled(relay)
    assert notice.rcpt_tos == [SELLER] and len(sink.messages) == 1


async def test_a_refused_notice_is_dropped_and_logged_without_the_senders_address(relay, sink, caplog):
    caplog.set_level(logging.INFO, logger="relay.delivery")
    opened = await open_conversation(relay)
    sink.fail_next(1, f"550 5.1.1 <{SELLER}>: mailbox full")
    reply = await send(relay, SELLER, opened.buyer_alias, seller_message("Hi", "See www.myshop.example.com"))
    assert reply.startswith("2.0.0 Received but not delivered")
    await eventually(lambda: [r for r in caplog.records if r.name == "relay.delivery"], what="the attempt")
    await settled(relay)
    [line] = [r for r in caplog.records if r.name == "relay.delivery"]
    assert line.getMessage() == "failed" and line.kind == "notice"  # and no notice about the notice
    assert line.answer.startswith("550 5.1.1") and SELLER not in line.answer
    assert sink.messages == [] and (await relay.queue.depth())[0] == 0
