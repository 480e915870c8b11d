"""Issue 13.2 and 13.2b: limits, each answered with its own code, and no oracle at RCPT.

None of these measures time against a clock: each sets a small limit and asserts
what the client hears when it passes it.
"""
from __future__ import annotations

import asyncio
import logging

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, crlf, open_conversation, send, settled


async def _open(relay, source: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port, local_addr=(source, 0))
    return reader, writer, await asyncio.wait_for(reader.readline(), 10)


async def _say(reader, writer, line: bytes) -> bytes:
    writer.write(line + b"\r\n")
    reply = await asyncio.wait_for(reader.readline(), 10)
    while reply[3:4] == b"-":
        reply = await asyncio.wait_for(reader.readline(), 10)
    return reply


@pytest.mark.parametrize("limited", [{"max_connections_per_client": 5}], indirect=True)
async def test_a_flood_from_one_address_leaves_room_for_another(limited, sink, caplog):
    caplog.set_level(logging.INFO)
    held = [await _open(limited, "127.0.0.2") for _ in range(5)]
    assert all(greeting.startswith(b"220") for _, _, greeting in held)
    refused = [await _open(limited, "127.0.0.2") for _ in range(50)]
    assert all(greeting.startswith(b"421 4.7.0") for _, _, greeting in refused)  # no greeting first
    opened = await open_conversation(limited)
    assert (await send(limited, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: hi\n\nHi\n"))).startswith(
        "2.0.0 Queued")  # 127.0.0.1 is served
    per_connection = [r for r in caplog.records if r.name.startswith("relay") and "127.0.0.2" in str(r.__dict__)]
    assert len(per_connection) <= 2  # refusals are summed up, not logged one by one
    for _, writer, _ in held + refused:
        writer.close()


@pytest.mark.parametrize("limited", [{"max_connections": 3}], indirect=True)
async def test_past_the_overall_limit_everyone_hears_busy(limited, sink):
    held = [await _open(limited, f"127.0.0.{n}") for n in (2, 3, 4)]
    _, writer, greeting = await _open(limited, "127.0.0.5")
    assert greeting.startswith(b"421 4.3.2")
    for _, w, _ in held + [(None, writer, None)]:
        w.close()


@pytest.mark.parametrize("limited", [{"max_session_seconds": 1, "max_commands_per_session": 10**6}], indirect=True)
async def test_a_session_ends_however_busy_it_is(limited, sink):
    reader, writer, _ = await _open(limited, "127.0.0.1")
    replies = []
    while not replies or not replies[-1].startswith(b"421"):
        replies.append(await _say(reader, writer, b"NOOP"))  # NOOP for ever does not keep it open
    assert replies[-1].startswith(b"421 4.4.2")
    writer.close()


@pytest.mark.parametrize("limited", [{"max_session_seconds": 1}], indirect=True)
async def test_a_client_sending_a_byte_at_a_time_is_dropped(limited, sink):
    reader, writer, _ = await _open(limited, "127.0.0.1")

    async def dribble() -> None:  # a command that never ends, one byte at a time
        while not writer.is_closing():
            writer.write(b"N")
            await asyncio.sleep(0.05)

    dribbling = asyncio.create_task(dribble())
    try:
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"421 4.4.2")
    finally:
        dribbling.cancel()
        writer.close()


@pytest.mark.parametrize("limited", [{"max_commands_per_session": 3}], indirect=True)
async def test_too_many_commands(limited, sink):
    reader, writer, _ = await _open(limited, "127.0.0.1")
    replies = [await _say(reader, writer, b"NOOP") for _ in range(4)]
    assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"421"] and replies[-1].startswith(b"421 4.7.0")


@pytest.mark.parametrize("limited", [{"max_errors_per_session": 3}], indirect=True)
async def test_too_many_errors(limited, sink):
    reader, writer, _ = await _open(limited, "127.0.0.1")
    await _say(reader, writer, b"EHLO client.example")
    replies = [await _say(reader, writer, b"RCPT TO:<x@y>") for _ in range(3)]  # 503: no MAIL yet
    assert replies[-1].startswith(b"503")
    assert await asyncio.wait_for(reader.readline(), 5) == b"421 4.7.0 Too many errors in this session, closing\r\n"


@pytest.mark.parametrize("limited", [{"max_transactions_per_session": 2}], indirect=True)
async def test_too_many_transactions(limited, sink):
    opened = await open_conversation(limited)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=limited.port, start_tls=False) as client:
        for n in range(2):
            await client.sendmail(BUYER, [opened.seller_alias], crlf(f"From: {BUYER}\nSubject: {n}\n\nHi\n"))
        with pytest.raises(aiosmtplib.SMTPResponseException) as cut:
            await client.sendmail(BUYER, [opened.seller_alias], crlf(f"From: {BUYER}\nSubject: 3\n\nHi\n"))
    assert cut.value.code == 421 and cut.value.message.startswith("4.7.0")


@pytest.mark.parametrize("limited", [{"max_header_fields": 50, "max_header_bytes": 4096}], indirect=True)
@pytest.mark.parametrize("header", ["X-Filler: x\n" * 60, "Subject: " + "y" * 900 + "\n" + "X-Long: " + "z" * 5000])
async def test_header_count_and_size(limited, sink, header):
    opened = await open_conversation(limited)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(limited, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\n{header}\n\nHi\n"))
    assert refused.value.code == 552 and refused.value.message.startswith("5.3.4")


@pytest.mark.parametrize("limited", [{"messages_per_hour_per_party": 2}], indirect=True)
async def test_messages_per_hour_are_deferred_and_a_forger_uses_none_of_them(limited, sink):
    opened = await open_conversation(limited)
    for n in range(3):  # refused before they count: a From that is not the sender's
        with pytest.raises(aiosmtplib.SMTPDataError):
            await send(limited, BUYER, opened.seller_alias, crlf(f"From: {SELLER}\nSubject: f{n}\n\nHi\n"))
    for n in range(2):
        await send(limited, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: {n}\n\nHi\n"))
    with pytest.raises(aiosmtplib.SMTPDataError) as deferred:
        await send(limited, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: third\n\nHi\n"))
    assert deferred.value.code == 451 and deferred.value.message.startswith("4.7.1")  # an honest burst retries
    await settled(limited)
    assert len(sink.messages) == 2


@pytest.mark.parametrize("limited", [{"max_refused_recipients": 3}], indirect=True)
async def test_guessing_a_counterpart_at_rcpt_learns_nothing(limited, sink, caplog):
    caplog.set_level(logging.WARNING, logger="relay.limits")
    opened = await open_conversation(limited)

    async def rcpt_as(sender: str) -> int:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=limited.port, start_tls=False) as client:
            await client.mail(sender)
            try:
                await client.rcpt(opened.seller_alias)
                return 250
            except aiosmtplib.SMTPRecipientRefused as exc:
                return exc.code

    assert await rcpt_as(BUYER) == 250
    guesses = [await rcpt_as(f"guess{n}@example.com") for n in range(10)]
    assert guesses[:3] == [550, 550, 550] and set(guesses[3:]) == {450}
    assert await rcpt_as(BUYER) == 450  # the right guess now hears what the wrong ones hear
    assert len([r for r in caplog.records if r.getMessage() == "blocking guesses"]) <= 2  # logged once, not per try


@pytest.mark.parametrize("limited", [{}], indirect=True)
@pytest.mark.parametrize("sender", [b"ann\x00@example.com", b"ann\xc3\xa9@example.com"])
async def test_nul_and_8_bit_bytes_in_mail_from(limited, sink, sender):
    reader, writer, _ = await _open(limited, "127.0.0.1")
    await _say(reader, writer, b"EHLO client.example")
    reply = await _say(reader, writer, b"MAIL FROM:<" + sender + b">")
    assert reply.startswith(b"501 5.1.7")
    writer.close()


@pytest.mark.parametrize("limited", [{}], indirect=True)
async def test_one_sessions_ehlo_does_not_lengthen_another_sessions_commands(limited, sink):
    first, first_writer, _ = await _open(limited, "127.0.0.1")
    for _ in range(50):
        await _say(first, first_writer, b"EHLO one.example")
    second, second_writer, _ = await _open(limited, "127.0.0.1")
    await _say(second, second_writer, b"HELO two.example")  # no extensions: the plain 512-octet limit
    reply = await _say(second, second_writer, b"MAIL FROM:<" + b"a" * 700 + b"@example.com>")
    assert reply.startswith(b"500")
    first_writer.close()
    second_writer.close()
