"""What an operator tailing the log sees: one line per decision, real addresses only on request."""
from __future__ import annotations

import io
import json
import logging

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, crlf, make_config, send, settled

from relay import logs
from relay.delivery import ATTEMPTS
from relay.server import Relay


@pytest.fixture
def decision_lines():
    """Captures the relay.decision and relay.delivery loggers through the formatter the relay ships."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for logger in (logs.DECISIONS, ATTEMPTS):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler, stream
    for logger in (logs.DECISIONS, ATTEMPTS):
        logger.removeHandler(handler)


async def _exchange(relay: Relay, opened) -> None:
    await send(relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: hi\n\nHello\n"))
    await settled(relay)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        await client.mail("stranger@example.net")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused):
            await client.rcpt(opened.seller_alias)


@pytest.mark.parametrize("real_addresses", [False, True])
async def test_json_decision_lines(tmp_path, sink, decision_lines, real_addresses):
    handler, stream = decision_lines
    handler.setFormatter(logs.formatter("json"))
    relay = Relay(make_config(tmp_path, sink.port, log={"real_addresses": real_addresses}))
    await relay.start()
    try:
        opened = await relay.store.open_conversation(BUYER, SELLER)
        await _exchange(relay, opened)
    finally:
        await relay.stop()
    forwarded, delivered, refused = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert forwarded["event"] == "forwarded" and forwarded["verdict"] == "forwarded"
    assert forwarded["conversation"] == opened.conversation_id and forwarded["direction"] == "buyer_to_seller"
    assert forwarded["sender_alias"] == opened.buyer_alias and forwarded["recipient_alias"] == opened.seller_alias
    assert forwarded["reply"].startswith("250 2.0.0 Queued") and forwarded["size"] > 0 and forwarded["duration_ms"] >= 0
    assert {"time", "level"} <= set(forwarded)
    assert delivered["event"] == "delivered" and delivered["logger"] == "relay.delivery"
    assert delivered["answer"].startswith("250") and delivered["attempt"] == 1 and delivered["kind"] == "forward"
    assert refused["event"] == "refused" and refused["stage"] == "rcpt" and refused["reply"].startswith("550 5.7.1")
    text = stream.getvalue()
    for address in (BUYER, SELLER, "stranger@example.net"):
        assert (address in text) is real_addresses


async def test_text_format_is_one_readable_line(relay, sink, conversation, decision_lines):
    handler, stream = decision_lines
    handler.setFormatter(logs.formatter("text"))
    await send(relay, BUYER, conversation.seller_alias, crlf(f"From: {BUYER}\nSubject: hi\n\nHello\n"))
    await settled(relay)
    decided, delivered = stream.getvalue().splitlines()
    assert " INFO forwarded " in decided and f"conversation={conversation.conversation_id}" in decided
    assert " INFO delivered " in delivered and "answer='250 2.0.0 Ok: queued'" in delivered
    assert BUYER not in decided + delivered and SELLER not in decided + delivered
