"""The relay as an operator runs it: a process that stops cleanly, and a next hop that comes and goes."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys

import aiosmtplib
import pytest
from conftest import BUYER, ROOT, SELLER, Sink, crlf, eventually, make_config, open_conversation, run_cli, send

from relay.server import Relay


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
        [arrived] = await sink.wait_for(1)
        assert b"first half,\r\nsecond half." in arrived.content
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_next_hop_down_gets_451_and_the_retry_is_delivered_once(tmp_path):
    hop_port = free_port()  # nothing listens here yet
    relay = Relay(make_config(tmp_path, hop_port))
    await relay.start()
    try:
        conversation = await open_conversation(relay)
        message = crlf(f"From: {BUYER}\nSubject: retry me\nMessage-ID: <retry@example.com>\n\nHello\n")
        with pytest.raises(aiosmtplib.SMTPDataError) as deferred:
            await send(relay, BUYER, conversation.seller_alias, message)
        assert deferred.value.code == 451 and deferred.value.message.startswith("4.4.1")

        sink = await Sink().start(port=hop_port)
        try:
            await send(relay, BUYER, conversation.seller_alias, message)
            await sink.wait_for(1)
            assert len(sink.messages) == 1
            log = (await relay.store.show(conversation.conversation_id))["messages"]
            assert [m["verdict"] for m in log] == ["failed", "forwarded"]
        finally:
            await sink.stop()
    finally:
        await relay.stop()


async def test_next_hop_answers_are_passed_on_as_temporary_or_permanent(relay, sink, conversation):
    message = crlf(f"From: {BUYER}\nSubject: hop says no\n\nHello\n")
    sink.fail_next(1, "452 4.2.2 Mailbox full")
    with pytest.raises(aiosmtplib.SMTPDataError) as deferred:
        await send(relay, BUYER, conversation.seller_alias, message)
    assert deferred.value.code == 451
    sink.fail_next(1, "550 5.1.1 No such user")
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay, BUYER, conversation.seller_alias, message)
    assert refused.value.code == 550 and refused.value.message.startswith("5.1.1")
    assert "No such user" not in refused.value.message  # the next hop's words go to the log only
    assert sink.messages == []


async def test_an_unexpected_error_is_a_temporary_failure_with_a_reference(relay, sink, conversation, caplog):
    await relay.engine.dispose()
    os.remove(relay.config.database_url().removeprefix("sqlite:///"))  # the store vanishes under the relay
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        await client.mail(BUYER)
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as failed:
            await client.rcpt(conversation.seller_alias)
    assert failed.value.code == 451 and failed.value.message.startswith("4.3.0")
    assert "ref " in failed.value.message and "Error" not in failed.value.message
    ref = failed.value.message.split("ref ")[1].rstrip(")")
    await eventually(lambda: any(getattr(r, "ref", None) == ref for r in caplog.records), what="logged reference")


async def test_a_transaction_still_running_after_the_grace_period_gets_421(tmp_path, sink):
    relay = Relay(make_config(tmp_path, sink.port, server={"shutdown_grace": 0.2}))
    await relay.start()
    conversation = await open_conversation(relay)
    sink.hold = asyncio.Event()  # the next hop takes its time: the message stays in flight
    sending = asyncio.create_task(send(relay, BUYER, conversation.seller_alias,
                                       crlf(f"From: {BUYER}\nSubject: slow\n\nHello\n")))
    await eventually(lambda: any(s.receiving for s in relay.sessions), what="DATA under way")
    await relay.stop()
    with pytest.raises(aiosmtplib.SMTPResponseException) as cut:
        await sending
    assert cut.value.code == 421 and cut.value.message.startswith("4.3.2")
    sink.hold.set()


async def test_a_message_log_that_cannot_be_written_does_not_make_the_client_send_twice(relay, sink, conversation,
                                                                                      caplog):
    from sqlalchemy import text
    async with relay.engine.begin() as db:  # the store refuses every new log row, as a full disk would
        await db.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    reply = await send(relay, BUYER, conversation.seller_alias, crlf(f"From: {BUYER}\nSubject: once\n\nHello\n"))
    assert reply.startswith("2.0.0 Forwarded")
    await sink.wait_for(1)
    assert len(sink.messages) == 1
    assert any(r.getMessage() == "message log write failed" for r in caplog.records)


async def test_a_next_hop_refusal_naming_the_recipient_does_not_reach_the_sender(relay, sink, conversation, caplog):
    """Postfix and friends quote the rejected mailbox: "550 5.1.1 <orders@...>: Recipient address rejected"."""
    caplog.set_level(logging.INFO, logger="relay.decision")
    sink.fail_next(1, f"550 5.1.1 <{SELLER}>: Recipient address rejected: User unknown")
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay, BUYER, conversation.seller_alias, crlf(f"From: {BUYER}\nSubject: hi\n\nHello\n"))
    assert refused.value.code == 550
    assert refused.value.message == "5.1.1 The recipient's mail server refused the message"
    [line] = [r for r in caplog.records if r.name == "relay.decision"]
    assert line.next_hop.startswith("550 5.1.1") and SELLER not in str(line.__dict__)
