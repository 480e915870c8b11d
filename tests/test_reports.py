"""Issue 12.3: reports from downstream, sent to a message's bounce address.

Real reports (tests/data/bounces, from sisimai's set) are rewritten to be about
the test's message: the recipient in them is the seller's real address, and
they are posted from <> to the bounce address the forward left with. The
buyer must learn that it failed, and why in the relay's words, and nothing
of the seller or of the provider's text.
"""
from __future__ import annotations

import email
import re
from email.policy import default as default_policy
from pathlib import Path

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, both_backends, crlf, send, settled

from relay.reports import read_report

BOUNCES = Path(__file__).parent / "data" / "bounces"
_ADDRESS = re.compile(rb"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
FAILURES = ["lhost-postfix-01", "lhost-gmail-01", "lhost-office365-01", "lhost-exim-01", "lhost-qmail-01",
            "lhost-sendmail-01", "lhost-yahoo-01", "lhost-opensmtpd-01", "rhost-google-02", "lhost-amazonses-01",
            "lhost-exchange2007-01", "lhost-outlook-01", "rfc3464-01"]
NOT_FAILURES = ["rfc3834-01", "rfc3834-02", "arf-01"]  # auto-replies and an abuse complaint

backend = both_backends


def about_our_message(name: str) -> bytes:
    """A corpus report whose every address is the seller's real one."""
    raw = (BOUNCES / f"{name}.eml").read_bytes()
    return _ADDRESS.sub(SELLER.encode(), raw).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize("name", FAILURES)
def test_a_failure_report_is_read_as_one_with_its_status(name):
    reading = read_report(about_our_message(name))
    assert reading.kind == "failed" and re.fullmatch(r"5\.\d+\.\d+", reading.status), reading


@pytest.mark.parametrize("name", NOT_FAILURES)
def test_an_auto_reply_or_a_complaint_is_not_a_failure(name):
    assert read_report(about_our_message(name)).kind in ("auto-reply", "unknown")


async def post_report(relay, bounce_address: str, report: bytes) -> tuple[int, str]:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        await client.mail("")
        try:
            await client.rcpt(bounce_address)
        except aiosmtplib.SMTPRecipientRefused as exc:
            return exc.code, exc.message
        reply = await client.data(report)
        return reply.code, reply.message


@pytest.mark.parametrize("name", FAILURES[:8])
async def test_a_report_reaches_the_sender_as_a_notice_without_a_trace_of_the_recipient(relay, sink, conversation,
                                                                                      name):
    await send(relay, BUYER, conversation.seller_alias,
               crlf(f"From: {BUYER}\nSubject: Order question\n\nIs it still in stock?\n"))
    [forward] = await sink.wait_for(1)
    report = about_our_message(name)
    assert await post_report(relay, forward.mail_from, report) == (250, "2.0.0 Report received")
    [_, notice] = await sink.wait_for(2)
    await settled(relay)
    assert notice.rcpt_tos == [BUYER] and len(sink.messages) == 2
    shown = notice.content.decode("utf-8", "replace")
    for trace in (SELLER, "orders@", "seller-shop"):
        assert trace not in shown
    human = email.message_from_bytes(notice.content, policy=default_policy).get_body(("plain",)).get_content()
    assert "Order question" in human and re.search(r"status 5\.\d+\.\d+", human)
    provider = {line.strip() for line in report.decode("utf-8", "replace").splitlines() if len(line.strip()) > 15}
    assert not [line for line in provider if line in human and "Subject" not in line]  # none of their words
    [row] = (await relay.store.show(conversation.conversation_id))["messages"]
    assert row["delivery"] == "failed"

    # The same failure reported again is not told twice.
    assert await post_report(relay, forward.mail_from, report) == (250, "2.0.0 Report received")
    await settled(relay)
    assert len(sink.messages) == 2


async def test_a_report_about_a_notice_or_with_a_stranger_token_produces_nothing(relay, sink, conversation):
    from conftest import open_conversation
    seller_side = await open_conversation(relay, order_id="A-2")
    await send(relay, SELLER, seller_side.buyer_alias, crlf(f"From: {SELLER}\nSubject: x\n\nSee www.myshop.example\n"))
    [notice] = await sink.wait_for(1)  # the seller's notice of a bounce, from its own bounce address
    assert await post_report(relay, notice.mail_from, about_our_message("lhost-postfix-01")) == \
        (250, "2.0.0 Report received")
    code, text = await post_report(relay, "bounce+0123456789abcdef01234567@relay.test",
                                   about_our_message("lhost-postfix-01"))
    assert code == 550 and text.startswith("5.1.1")
    await settled(relay)
    assert len(sink.messages) == 1


async def test_only_the_null_sender_may_write_to_a_bounce_address(relay, sink, conversation):
    await send(relay, BUYER, conversation.seller_alias, crlf(f"From: {BUYER}\nSubject: hi\n\nHello\n"))
    [forward] = await sink.wait_for(1)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        await client.mail(SELLER)
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt(forward.mail_from)
    assert refused.value.code == 550 and "delivery reports only" in refused.value.message
