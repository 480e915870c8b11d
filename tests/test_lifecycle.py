"""The relay as an operator runs it: a process that stops cleanly, and a next hop that comes and goes."""
from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import os
import signal
import socket
import sys

import aiosmtplib
import pytest
from conftest import (
    BUYER,
    ROOT,
    SELLER,
    Sink,
    both_backends,
    crlf,
    eventually,
    make_config,
    open_conversation,
    run_cli,
    send,
    settled,
)

from relay.server import Relay

backend = both_backends


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(tmp_path, sink_port: int) -> str:
    path = tmp_path / "relay.toml"
    path.write_text(
        f'[server]\nport = {free_port()}\nworkers = 1\nshutdown_grace = 10\n'
        f'[delivery]\nsmarthost = "127.0.0.1:{sink_port}"\n'
        f'[aliases]\ndomain = "relay.test"\n'
        f'[database]\nurl = "sqlite:///relay.db"\n'
    )
    return str(path)


async def start_relay_process(config: str) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay.cli", "--config", config, "serve",
        stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )
    while True:  # the "listening" log line says where; a process that dies ends the loop with EOF
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        assert line, "relay exited before listening"
        record = json.loads(line)
        if record.get("event") == "listening":
            return process, int(record["address"].rsplit(":", 1)[1])


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    line = await asyncio.wait_for(reader.readline(), 15)
    while line[3:4] == b"-":
        line = await asyncio.wait_for(reader.readline(), 15)
    return line


async def test_sigterm_closes_idle_sessions_and_finishes_the_message_in_flight(tmp_path, sink):
    config = write_config(tmp_path, sink.port)
    opened = json.loads(run_cli("--config", config, "conversation", "open", "--buyer", BUYER, "--seller", SELLER).stdout)
    process, port = await start_relay_process(config)
    try:
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
        for reader, writer in ((idle_reader, idle_writer), (busy_reader, busy_writer)):
            assert (await read_reply(reader)).startswith(b"220")
            writer.write(b"EHLO client.example\r\n")
            assert (await read_reply(reader)).startswith(b"250 ")
        for command, expected in ((f"MAIL FROM:<{BUYER}>", b"250"), (f"RCPT TO:<{opened['seller_alias']}>", b"250"),
                                  ("DATA", b"354")):
            busy_writer.write(command.encode() + b"\r\n")
            assert (await read_reply(busy_reader)).startswith(expected)
        busy_writer.write(b"Subject: in flight\r\n\r\nfirst half,\r\n")
        await busy_writer.drain()

        process.send_signal(signal.SIGTERM)
        assert (await read_reply(idle_reader)).startswith(b"421 4.3.2")
        assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # and closed

        busy_writer.write(b"second half.\r\n.\r\n")
        assert (await read_reply(busy_reader)).startswith(b"250 2.0.0")
        assert await asyncio.wait_for(process.wait(), 30) == 0
        if not sink.messages:  # stopped before its delivery began: it waits in the queue for the next start
            process, _ = await start_relay_process(config)
        [arrived] = await sink.wait_for(1)
        assert b"first half,\r\nsecond half." in arrived.content
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_next_hop_down_the_message_waits_in_the_queue_and_is_delivered_once(tmp_path, database_url):
    hop_port = free_port()  # nothing listens here yet
    relay = Relay(make_config(tmp_path, hop_port, database={"url": database_url}))
    await relay.start()
    try:
        conversation = await open_conversation(relay)
        message = crlf(f"From: {BUYER}\nSubject: retry me\nMessage-ID: <retry@example.com>\n\nHello\n")
        reply = await send(relay, BUYER, conversation.seller_alias, message)
        assert reply.startswith("2.0.0 Queued")  # stored: the next hop being down is the relay's business now

        while (await relay.store.show(conversation.conversation_id))["messages"][0]["attempts"] < 2:
            await asyncio.sleep(0.02)  # a few attempts while the next hop is down (the test's timeout bounds it)
        sink = await Sink().start(port=hop_port)
        try:
            await sink.wait_for(1)
            await settled(relay)
            assert len(sink.messages) == 1
            [row] = (await relay.store.show(conversation.conversation_id))["messages"]
            assert row["verdict"] == "forwarded" and row["delivery"] == "delivered" and row["attempts"] >= 3
        finally:
            await sink.stop()
    finally:
        await relay.stop()


async def test_a_451_three_times_then_250_is_delivered_once_with_the_retries_in_the_log(relay, sink, conversation,
                                                                                     caplog):
    caplog.set_level(logging.INFO, logger="relay.delivery")
    sink.fail_next(3, "451 4.3.0 Try again later")
    await send(relay, BUYER, conversation.seller_alias, crlf(f"From: {BUYER}\nSubject: hop says wait\n\nHello\n"))
    await sink.wait_for(1)
    await settled(relay)
    assert len(sink.messages) == 1
    attempts = [(r.getMessage(), r.attempt, r.answer[:3]) for r in caplog.records if r.name == "relay.delivery"]
    assert attempts == [("deferred", 1, "451"), ("deferred", 2, "451"), ("deferred", 3, "451"), ("delivered", 4, "250")]
    [row] = (await relay.store.show(conversation.conversation_id))["messages"]
    assert row["delivery"] == "delivered" and row["attempts"] == 4


async def test_a_550_gives_the_sender_a_notice_and_the_message_fails(relay, sink, conversation):
    sink.fail_next(1, f"550 5.1.1 <{SELLER}>: Recipient address rejected: User unknown in mx7.internal.example")
    reply = await send(relay, BUYER, conversation.seller_alias, crlf(f"From: {BUYER}\nSubject: hop says no\n\nHello\n"))
    assert reply.startswith("2.0.0 Queued")
    [notice] = await sink.wait_for(1)
    await settled(relay)
    assert notice.rcpt_tos == [BUYER] and len(sink.messages) == 1
    assert (await relay.queue.depth())[0] == 0
    [row] = (await relay.store.show(conversation.conversation_id))["messages"]
    assert row["delivery"] == "failed" and row["next_hop_reply"].startswith("550 5.1.1")
    parsed = email.message_from_bytes(notice.content, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()
    assert "status 5.1.1" in text and "User unknown" not in text and "mx7" not in text
    assert SELLER not in notice.content.decode("utf-8", "replace") and "seller-shop" not in text


async def test_an_unexpected_error_is_a_temporary_failure_with_a_reference(relay, sink, conversation, caplog,
                                                                         database_url):
    await relay.database.dispose()
    from sqlalchemy import text
    if database_url.startswith("sqlite"):  # the store vanishes under the relay
        os.remove(relay.config.database_url().removeprefix("sqlite:///"))
    else:  # the table the relay asks at RCPT is gone (it comes back for the next test)
        async with relay.engine.begin() as db:
            await db.execute(text("ALTER TABLE aliases RENAME TO aliases_gone"))
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        await client.mail(BUYER)
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as failed:
            await client.rcpt(conversation.seller_alias)
    assert failed.value.code == 451 and failed.value.message.startswith("4.3.0")
    assert "ref " in failed.value.message and "Error" not in failed.value.message
    ref = failed.value.message.split("ref ")[1].rstrip(")")
    await eventually(lambda: any(getattr(r, "ref", None) == ref for r in caplog.records), what="logged reference")
    if not database_url.startswith("sqlite"):
        async with relay.engine.begin() as db:
            await db.execute(text("ALTER TABLE aliases_gone RENAME TO aliases"))


async def test_a_transaction_still_running_after_the_grace_period_gets_421(tmp_path, sink, database_url):
    relay = Relay(make_config(tmp_path, sink.port, database={"url": database_url}, server={"shutdown_grace": 0.2}))
    await relay.start()
    conversation = await open_conversation(relay)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    for command in (b"EHLO client.example", f"MAIL FROM:<{BUYER}>".encode(),
                    f"RCPT TO:<{conversation.seller_alias}>".encode(), b"DATA"):
        await read_reply(reader)
        writer.write(command + b"\r\n")
    assert (await read_reply(reader)).startswith(b"354")
    writer.write(b"Subject: slow\r\n\r\nthe client sends half and waits")  # the message stays in flight
    await eventually(lambda: any(s.receiving for s in relay.sessions), what="DATA under way")
    await relay.stop()
    assert (await read_reply(reader)).startswith(b"421 4.3.2")
    assert sink.messages == []


async def test_a_store_that_cannot_be_written_gives_451_before_anything_is_handed_on(relay, sink, conversation,
                                                                                  caplog):
    from sqlalchemy import text
    sqlite = relay.engine.dialect.name == "sqlite"
    refuse = ["CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk full'); END"] if sqlite \
        else ["CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql",
              "CREATE TRIGGER refuse BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse()"]
    async with relay.engine.begin() as db:  # the store refuses every new log row, as a full disk would
        for statement in refuse:
            await db.execute(text(statement))
    message = crlf(f"From: {BUYER}\nSubject: once\nMessage-ID: <once@example.com>\n\nHello\n")
    with pytest.raises(aiosmtplib.SMTPDataError) as deferred:
        await send(relay, BUYER, conversation.seller_alias, message)
    assert deferred.value.code == 451 and deferred.value.message.startswith("4.3.0 The relay cannot store")
    await settled(relay)
    assert sink.messages == [] and (await relay.queue.depth())[0] == 0
    async with relay.engine.begin() as db:  # the disk has room again; the client's retry goes through, once
        await db.execute(text("DROP TRIGGER refuse" if sqlite else "DROP TRIGGER refuse ON messages"))
    assert (await send(relay, BUYER, conversation.seller_alias, message)).startswith("2.0.0 Queued")
    assert (await send(relay, BUYER, conversation.seller_alias, message)).startswith("2.0.0 Already received")
    await sink.wait_for(1)
    await settled(relay)
    assert len(sink.messages) == 1
