"""Issue 11.1, 11.2 and 11.6: one decision per message, given once, in the relay's own words.

- 451 only when the relay is in trouble: a message it can judge gets 250 and a
  notice, or a 5xx with the reason, whatever its subject and charsets say.
- Once something is handed on, nothing after it turns the answer into a 4xx,
  and the same message sent again is not handed on again.
- A next hop's refusal reaches the sender as one line of the relay's words.
"""
from __future__ import annotations

import asyncio
import base64
import email
import logging
from email.header import decode_header, make_header
from email.policy import default as default_policy

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, bounce_address, crlf, open_conversation, send, settled
from reader import readable_addresses

# A photo as an iPhone sends it: HEIC, which the attachment rule removes.
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200


def parse(content: bytes):
    return email.message_from_bytes(content, policy=default_policy)


def subject_of(received) -> str:
    return str(make_header(decode_header(parse(received.content)["Subject"])))


async def answer(relay, sender, recipient, message: bytes, **options) -> tuple[int, str]:
    """The relay's answer to DATA, as (code, text), whether it accepted or refused."""
    try:
        text = await send(relay, sender, recipient, message, **options)
        return 250, text
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message


def seller_message(subject: str, body: str, headers: str = "", content_type: str = "text/plain; charset=utf-8",
                   extra_parts: str = "") -> bytes:
    head = (f"From: Shop <{SELLER}>\nSubject: {subject}\nDate: Wed, 02 Dec 2026 10:00:00 +0000\n"
            f"MIME-Version: 1.0\n{headers}")
    if not extra_parts:
        return crlf(f"{head}Content-Type: {content_type}\n\n{body}\n")
    return crlf(f"{head}Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: {content_type}\n\n{body}\n"
                f"{extra_parts}--b--\n")


# -- 11.1: a permanent problem is never a temporary answer --------------------------------------

@pytest.mark.parametrize("locale, subject", [
    ("es", "Envío de su pedido"), ("es", "Señal"), ("it", "Perché?"), ("it", "Più info"), ("es", "ñ"),
    ("id", "Pesanan Anda ✓"), ("es", "=?utf-8?q?Env=C3=ADo?="), ("it", "=?iso-8859-1?q?Perch=E9?="),
])
async def test_a_short_accented_subject_gets_its_notice(relay, sink, locale, subject):
    opened = await open_conversation(relay, seller_locale=locale)
    code, text = await answer(relay, SELLER, opened.buyer_alias, seller_message(subject, "Visit www.myshop.example.com"))
    assert code == 250 and "notice" in text, (code, text)
    [notice] = await sink.wait_for(1)
    assert notice.rcpt_tos == [SELLER] and bounce_address(notice.mail_from)
    shown = str(make_header(decode_header(subject))) if "=?" in subject else subject
    assert shown in subject_of(notice)


NOT_CHARSETS = ["rot13", "base64", "hex", "quopri", "uu", "zip", "bz2", "idna", "unicode_escape", "x-no-such-charset"]


@pytest.mark.parametrize("charset", NOT_CHARSETS)
@pytest.mark.parametrize("where", ["body", "html", "word"])
async def test_a_codec_that_is_not_a_charset_is_read_like_an_unknown_one(relay, sink, charset, where):
    opened = await open_conversation(relay)
    text = "Your order A-1001 ships today. Olé"
    if where == "word":
        raw = seller_message(f"=?{charset}?q?Env=EDo_de_su_pedido?=", text + " www.myshop.example.com")
    elif where == "html":
        raw = seller_message("Order", f"<p>{text}</p>", content_type=f"text/html; charset={charset}")
    else:
        raw = seller_message("Order", text, content_type=f"text/plain; charset={charset}")
    code, reply = await answer(relay, SELLER, opened.buyer_alias, raw)
    assert code == 250, (code, reply)
    [received] = await sink.wait_for(1)
    assert received.rcpt_tos == [SELLER if where == "word" else BUYER]  # the link bounces; the rest arrives


@pytest.mark.parametrize("ebcdic", [
    "Env\u00edo de su pedido",       # accented text
    "line\nbreak\r\nand\x85next",    # EBCDIC has bytes for LF, CR and NEL: they must not break the notice
    "\x00\x07\x1b[31mred",           # controls
])
async def test_ebcdic_words_in_a_bounced_subject_give_a_clean_notice(relay, sink, ebcdic):
    opened = await open_conversation(relay)
    word = "=?cp500?b?" + base64.b64encode(ebcdic.encode("cp500")).decode() + "?="
    code, text = await answer(relay, SELLER, opened.buyer_alias, seller_message(word, "See www.myshop.example.com"))
    assert code == 250, (code, text)
    [notice] = await sink.wait_for(1)
    subject = subject_of(notice)
    assert "\n" not in subject and "\r" not in subject and "\x85" not in subject and "\x1b" not in subject
    assert notice.content.count(b"\r\nSubject:") == 1  # nothing the sender wrote became a header of its own


async def test_a_notice_names_the_alias_however_the_sender_spelled_the_recipient(relay, sink):
    opened = await open_conversation(relay)
    disguised = "\uff41nn.buyer\uff20example.com"  # fullwidth
    raw = seller_message(f"For {disguised}", "Dear a\u00adnn.buyer@example.com, see www.myshop.example.com",
                         headers=f"Cc: {disguised}\n")
    code, text = await answer(relay, SELLER, opened.buyer_alias, raw)
    assert code == 250, (code, text)
    [notice] = await sink.wait_for(1)
    assert not readable_addresses(notice.content, [BUYER])
    assert opened.buyer_alias in subject_of(notice)


# -- 11.2: handed on once --------------------------------------------------------------------

@pytest.mark.parametrize("subject", ["Foto del daño", "Danno", "=?utf-8?q?Foto_del_da=C3=B1o?="])
async def test_a_removed_attachment_and_a_short_subject_deliver_once_and_say_so(relay, sink, subject):
    opened = await open_conversation(relay, seller_locale="es")
    photo = base64.encodebytes(HEIC).decode()
    raw = seller_message(subject, "Le envío la foto.", headers="Message-ID: <photo-1@seller-shop.example>\n",
                         extra_parts="--b\nContent-Type: image/heic\nContent-Disposition: attachment; "
                                     f"filename=IMG_0001.HEIC\nContent-Transfer-Encoding: base64\n\n{photo}")
    for attempt in range(3):  # a client that retries for any reason gets the same answer
        code, text = await answer(relay, SELLER, opened.buyer_alias, raw)
        assert code == 250, (attempt, code, text)
    arrived = await sink.wait_for(2)
    await settled(relay)
    [delivered], [notice] = ([m for m in arrived if m.rcpt_tos == [who]] for who in (BUYER, SELLER))
    assert "IMG_0001.HEIC" in parse(notice.content).get_body(("plain",)).get_content()
    assert len(sink.messages) == 2
    log = (await relay.store.show(opened.conversation_id))["messages"]
    assert [m["verdict"] for m in log] == ["forwarded", "duplicate", "duplicate"]


async def hang_up_after_data(relay, sender: str, recipient: str, message: bytes) -> None:
    """A client that sends the whole message and leaves before the reply: a timeout, a dropped line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    for command in (b"EHLO client.example\r\n", f"MAIL FROM:<{sender}>\r\n".encode(),
                    f"RCPT TO:<{recipient}>\r\n".encode(), b"DATA\r\n"):
        writer.write(command)
    stuffed = (b"." if message.startswith(b".") else b"") + message.replace(b"\r\n.", b"\r\n..")
    writer.write(stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    await writer.drain()
    await reader.readuntil(b"354")
    writer.close()


async def test_a_retry_after_a_lost_answer_is_not_a_second_copy(relay, sink, conversation):
    raw = crlf(f"From: {BUYER}\nSubject: once\nMessage-ID: <lost-1@example.com>\n"
               "Date: Wed, 02 Dec 2026 10:00:00 +0000\n\nPlease ship soon.\n")
    await hang_up_after_data(relay, BUYER, conversation.seller_alias, raw)
    await sink.wait_for(1)
    code, text = await answer(relay, BUYER, conversation.seller_alias, raw)
    assert code == 250 and text.startswith("2.0.0 Already received: 250 2.0.0 Queued"), text
    assert len(sink.messages) == 1


async def test_a_retry_while_the_first_try_is_still_being_decided_waits_for_it(relay, sink, conversation):
    # Two sessions with the same message at once, as a client that gave up on the first and retried
    # at once would: whichever is decided first is queued, the other waits for it and hears so.
    words = "\n".join(f"line {i} of a message that takes a moment to read" for i in range(20_000))
    raw = crlf(f"From: {BUYER}\nSubject: twice at once\nMessage-ID: <both-1@example.com>\n\n{words}\n")
    answers = await asyncio.gather(*(answer(relay, BUYER, conversation.seller_alias, raw) for _ in range(2)))
    assert [code for code, _ in answers] == [250, 250], answers
    assert sorted(text.split()[1] for _, text in answers) == ["Already", "Queued"], answers
    await sink.wait_for(1)
    await settled(relay)
    assert len(sink.messages) == 1


@pytest.mark.parametrize("first, second", [
    # the same words under a new Message-ID: a new message
    ("Subject: hi\nMessage-ID: <new-1@example.com>\n\nThanks\n", "Subject: hi\nMessage-ID: <new-2@example.com>\n\nThanks\n"),
    # no Message-ID and no Date: known by all its bytes, and these differ
    ("Subject: hi\n\nThanks\n", "Subject: hi\n\nThanks again\n"),
])
async def test_new_messages_with_the_same_words_are_all_delivered(relay, sink, conversation, first, second):
    for raw in (first, second):
        code, text = await answer(relay, BUYER, conversation.seller_alias, crlf(f"From: {BUYER}\n{raw}"))
        assert code == 250 and "Queued" in text
    await sink.wait_for(2)


async def test_a_message_without_message_id_or_date_sent_again_is_a_retry(relay, sink, conversation):
    raw = crlf(f"From: {BUYER}\nSubject: bare\n\nNo id, no date.\n")
    await hang_up_after_data(relay, BUYER, conversation.seller_alias, raw)
    await sink.wait_for(1)
    code, text = await answer(relay, BUYER, conversation.seller_alias, raw)
    assert code == 250 and text.startswith("2.0.0 Already received") and len(sink.messages) == 1


# -- 11.6: the next hop's words stay in the log ----------------------------------------------

@pytest.mark.parametrize("refusal, status", [
    ("550-5.1.1 mailbox 'orders' unknown at seller-shop.example\r\n550-5.1.1 see mx3.internal.seller-shop.example\n"
     "550 5.1.1 queue id 4F2A1", "5.1.1"),
    ("550 5.7.1 <orders@seller-shop.example>... Relaying denied from mx-in-7.corp.seller-shop.example", "5.7.1"),
    ("554 Transaction failed: mailbox \"orders@seller-shop.example\" disabled", "5.0.0"),
])
async def test_a_next_hop_refusal_reaches_the_sender_in_the_relays_own_words(relay, sink, conversation, caplog,
                                                                           refusal, status):
    caplog.set_level(logging.INFO, logger="relay.delivery")
    sink.fail_next(1, refusal)
    code, _ = await answer(relay, BUYER, conversation.seller_alias, crlf(f"From: {BUYER}\nSubject: hi\n\nHi\n"))
    assert code == 250  # queued; the next hop's refusal comes later, and the sender hears it as a notice
    [notice] = await sink.wait_for(1)
    assert notice.rcpt_tos == [BUYER]
    text = parse(notice.content).get_body(("plain",)).get_content()
    assert f"status {status}" in text
    for word in ("seller-shop", "orders", "mx3", "mx-in", "queue id", "disabled", "Relaying"):
        assert word not in notice.content.decode("utf-8", "replace")
    [line] = [r for r in caplog.records if r.name == "relay.delivery" and r.getMessage() == "failed"]
    assert "\n" not in line.answer and line.answer.startswith(refusal[:3])  # the operator sees it, on one line
    assert SELLER not in line.answer
