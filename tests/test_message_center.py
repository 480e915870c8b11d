"""What the marketplace and its people see: /metrics that move exactly with the traffic, flags and the
seller's record with its hold, the retention purge and the mbox export, and review requests."""
from __future__ import annotations

import email
import email.policy
import mailbox
import sqlite3
from datetime import datetime, timedelta, timezone

import aiosmtplib
import httpx
import pytest
from conftest import BUYER, SELLER, api_client, crlf, eventually, open_conversation, run_cli, send, settled
from prometheus_client.parser import text_string_to_metric_families

SECTIONS = {"api": {"enabled": True, "listen": "127.0.0.1:0"}, "metrics": {"enabled": True, "listen": "127.0.0.1:0"},
            "filters": {"frequency": {"enabled": False}}}


@pytest.fixture
def relay_sections():
    return SECTIONS


@pytest.fixture
async def api(relay):
    async with api_client(relay) as client:
        yield client


def message(sender: str, to: str, subject: str, body: str, extra: str = "") -> bytes:
    message.count = getattr(message, "count", 0) + 1
    return crlf(f"From: <{sender}>\nTo: {to}\nSubject: {subject}\nMessage-ID: <t{message.count}@example.org>\n"
                f"{extra}\n{body}\n")


def with_attachment(sender: str, to: str, name: str) -> bytes:
    return crlf(f"From: <{sender}>\nTo: {to}\nSubject: files\nMIME-Version: 1.0\n"
                f"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee attached.\n"
                f"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename={name}\n"
                f"Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAA\n--b--\n")


def config_file(relay, tmp_path, extra: str = "") -> str:
    path = tmp_path / "cli.toml"
    path.write_text(f'[database]\nurl = "{relay.config.database_url()}"\n[aliases]\ndomain = "relay.test"\n{extra}')
    return str(path)


async def scrape(relay) -> dict:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{relay.http_port('metrics')}/metrics")).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_exactly_with_the_traffic(relay, sink):
    conversation = await open_conversation(relay)
    before = await scrape(relay)
    assert value(before, "relay_messages_accepted_total") == 0
    sink.fail_next(1)  # the first delivery is deferred once
    await send(relay, BUYER, conversation.seller_alias, message(BUYER, conversation.seller_alias, "Hi", "Hello."))
    await send(relay, SELLER, conversation.buyer_alias, message(SELLER, conversation.buyer_alias, "Re: Hi", "Sure."))
    await send(relay, SELLER, conversation.buyer_alias,
               message(SELLER, conversation.buyer_alias, "Deal", "Visit http://shop.example.com for 20% off"))
    await send(relay, BUYER, conversation.seller_alias, with_attachment(BUYER, conversation.seller_alias, "tool.exe"))
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await send(relay, BUYER, "nobody0000000000@relay.test", message(BUYER, "x", "x", "x"))
    await settled(relay)
    await eventually(lambda: len(sink.messages) == 5, what="3 forwards and 2 notices")
    after = await scrape(relay)
    assert value(after, "relay_messages_accepted_total") == 4
    assert value(after, "relay_messages_refused_total", reply_class="5xx", stage="rcpt") == 1
    assert value(after, "relay_messages_bounced_total", rule="links") == 1
    assert value(after, "relay_attachments_removed_total", type="exe") == 1
    assert value(after, "relay_notices_sent_total", kind="notice") == 2
    assert value(after, "relay_delivery_attempts_total", outcome="delivered") == 5
    assert value(after, "relay_delivery_attempts_total", outcome="deferred") == 1
    assert value(after, "relay_accept_seconds_count") == 4
    assert value(after, "relay_delivery_seconds_count") == 3
    assert value(after, "relay_queue_depth") == 0 and value(after, "relay_queue_oldest_seconds") == 0
    assert value(after, "relay_smtp_sessions_open") == 0
    async with httpx.AsyncClient() as client:
        health = await client.get(f"http://127.0.0.1:{relay.http_port('metrics')}/healthz")
    assert health.status_code == 200 and health.json()["store"] == "answering"


async def test_flags_fill_the_record_and_the_threshold_holds_the_seller_until_reinstated(relay, sink, api, tmp_path):
    conversation = await open_conversation(relay, seller_name="Seller Shop")
    first = message(SELLER, conversation.buyer_alias, "Your order", "It ships today.")
    await send(relay, SELLER, conversation.buyer_alias, first)
    delivered = (await sink.wait_for(1))[0]
    relay_id = email.message_from_bytes(delivered.content, policy=email.policy.default)["Message-ID"]
    # 1: the buyer flags it by replying FLAG; the reply goes into the record, not to the seller.
    flag = message(BUYER, conversation.seller_alias, "Re: Your order", "FLAG\n\nHe asked me to pay outside.",
                   f"In-Reply-To: {relay_id}\n")
    reply = await send(relay, BUYER, conversation.seller_alias, flag)
    assert "Flag recorded" in reply
    # 2: the marketplace flags the seller's second message through the API.
    await send(relay, SELLER, conversation.buyer_alias, message(SELLER, conversation.buyer_alias, "More", "Hello."))
    await sink.wait_for(2)
    thread = (await api.get(f"/conversations/{conversation.conversation_id}")).json()
    second = [m for m in thread["messages"] if m["direction"] == "seller_to_buyer"][-1]["id"]
    assert (await api.post(f"/messages/{second}/flags", json={"reason": "rude"})).status_code == 200
    # 3: a blocked message is the third violation: the seller is held from now on.
    await send(relay, SELLER, conversation.buyer_alias,
               message(SELLER, conversation.buyer_alias, "Offer", "Coupon at http://deals.example.net"))
    await settled(relay)
    assert all(m.rcpt_tos != [SELLER] or b"Not delivered" in m.content for m in sink.messages)
    record = (await api.get(f"/sellers/{SELLER}/record")).json()
    assert [(v["kind"], v["source"]) for v in record["violations"]] == [
        ("flag", "buyer"), ("flag", "marketplace"), ("blocked", "filter")]
    assert record["held_since"] and "3 violations" in record["held_reason"]
    thread = (await api.get(f"/conversations/{conversation.conversation_id}")).json()
    assert [m["flags"][0]["source"] for m in thread["messages"] if m["flags"]] == ["buyer", "marketplace"]
    count = len(sink.messages)
    # The next message waits; the seller is told why and how to appeal.
    await send(relay, SELLER, conversation.buyer_alias,
               message(SELLER, conversation.buyer_alias, "Tracking", "It left the warehouse."))
    notice = (await sink.wait_for(count + 1))[-1]
    text = email.message_from_bytes(notice.content, policy=email.policy.default).get_body(("plain",)).get_content()
    assert notice.rcpt_tos == [SELLER] and "on hold" in text and "To appeal: write to the marketplace" in text and "3 violations" not in text
    held = (await api.get("/queue")).json()
    assert not [m for m in sink.messages[count:] if m.rcpt_tos == [BUYER]]
    assert [(item["recipient"], item["held"]) for item in held] == [(BUYER, True)]
    done = run_cli("--config", config_file(relay, tmp_path), "seller", "reinstate", SELLER)
    assert done.returncode == 0 and "1 held message(s) released" in done.stdout, done.stderr
    released = (await sink.wait_for(count + 2))[-1]
    assert released.rcpt_tos == [BUYER] and b"It left the warehouse." in released.content
    assert (await api.get(f"/sellers/{SELLER}/record")).json()["held_since"] is None


async def test_bodies_past_the_retention_are_purged_and_the_export_holds_the_whole_thread(relay, sink, tmp_path):
    conversation = await open_conversation(relay)
    for n, (sender, alias) in enumerate([(BUYER, conversation.seller_alias), (SELLER, conversation.buyer_alias),
                                         (SELLER, conversation.buyer_alias)]):
        body = "Buy now at http://x.example.com" if n == 2 else f"Message {n}."
        await send(relay, sender, alias, message(sender, alias, f"Subject {n}", body))
    await settled(relay)
    database = relay.config.database_url().removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from message_bodies").fetchone() == (3,)  # 2 forwards and a notice
        first = db.execute("select min(id) from messages").fetchone()[0]
        db.execute("update message_bodies set stored_at = ? where message_id = ?",
                   ((datetime.now(timezone.utc) - timedelta(days=91)).isoformat(), first))
    cli = config_file(relay, tmp_path)
    purged = run_cli("--config", cli, "purge")
    assert purged.returncode == 0 and purged.stdout.startswith("purged 1 bodies"), purged.stderr
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from message_bodies").fetchone() == (2,)
        assert db.execute("select count(*) from messages").fetchone() == (3,)  # the log rows stay
    out = tmp_path / "thread.mbox"
    exported = run_cli("--config", cli, "conversation", "export", conversation.conversation_id)
    assert exported.returncode == 0, exported.stderr
    out.write_text(exported.stdout)
    box = mailbox.mbox(str(out), factory=lambda f: email.message_from_binary_file(f, policy=email.policy.default))
    subjects = [(m["Subject"], m["X-Relay-Verdict"]) for m in box]
    assert subjects == [("Subject 0", "forwarded"), ("Subject 1", "forwarded"), ("Not delivered: Subject 2", "bounced")]
    assert "purged after the retention" in box[0].get_content()
    assert "Message 1." in box[1].get_content()


async def test_the_relay_purges_by_itself(tmp_path, sink):
    from conftest import make_config

    from relay.server import Relay

    relay = Relay(make_config(tmp_path, sink.port, retention={"days": 1, "purge_every": 0.01}))
    await relay.start()
    try:
        conversation = await open_conversation(relay)
        await send(relay, BUYER, conversation.seller_alias, message(BUYER, conversation.seller_alias, "A", "a"))
        database = relay.config.database_url().removeprefix("sqlite:///")
        with sqlite3.connect(database) as db:
            db.execute("update message_bodies set stored_at = ?",
                       ((datetime.now(timezone.utc) - timedelta(days=2)).isoformat(),))
        await send(relay, BUYER, conversation.seller_alias, message(BUYER, conversation.seller_alias, "B", "b"))
        await settled(relay)
        with sqlite3.connect(database) as db:
            assert db.execute("select m.subject from message_bodies b join messages m on m.id = b.message_id"
                              ).fetchall() == [("B",)]
    finally:
        await relay.stop()


async def test_review_requests_from_day_5_to_30_once_per_order_and_never_to_an_opted_out_buyer(relay, sink, api):
    conversation = await open_conversation(relay, order_id="R-1", buyer_locale="it", seller_name="Seller Shop")
    path = f"/conversations/{conversation.conversation_id}"
    now = datetime.now(timezone.utc)
    assert (await api.post(f"{path}/review-request")).status_code == 409  # no delivery date yet
    await api.put(f"{path}/delivery", json={"delivered_at": (now - timedelta(days=4, hours=1)).isoformat()})
    early = await api.post(f"{path}/review-request")
    assert early.status_code == 409 and "from day 5" in early.json()["detail"]
    await api.put(f"{path}/delivery", json={"delivered_at": (now - timedelta(days=5, minutes=1)).isoformat()})
    sent = await api.post(f"{path}/review-request")
    assert sent.status_code == 200, sent.text
    assert sent.json()["locale"] == "it"
    received = (await sink.wait_for(1))[0]
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    assert received.rcpt_tos == [BUYER] and parsed["Subject"] == "Il suo ordine R-1: ci racconta la sua esperienza?"
    again = await api.post(f"{path}/review-request")
    assert again.status_code == 409 and "already requested" in again.json()["detail"]
    late = await open_conversation(relay, order_id="R-2")
    await api.put(f"/conversations/{late.conversation_id}/delivery",
                  json={"delivered_at": (now - timedelta(days=31)).isoformat()})
    assert (await api.post(f"/conversations/{late.conversation_id}/review-request")).status_code == 409
    other = await open_conversation(relay, buyer="quiet@example.net", order_id="R-3")
    await relay.store.set_opt_out("quiet@example.net", True)
    await api.put(f"/conversations/{other.conversation_id}/delivery",
                  json={"delivered_at": (now - timedelta(days=6)).isoformat()})
    opted = await api.post(f"/conversations/{other.conversation_id}/review-request")
    assert opted.status_code == 409 and "opted out" in opted.json()["detail"]
    assert "quiet@example.net" not in opted.text
    await settled(relay)
    assert len(sink.messages) == 1
    thread = (await api.get(path)).json()
    assert [m["kind"] for m in thread["messages"]] == ["review_request"]


async def test_a_buyers_notice_names_the_flag_word_and_a_sellers_does_not(relay, sink):
    conversation = await open_conversation(relay)
    await send(relay, BUYER, conversation.seller_alias, with_attachment(BUYER, conversation.seller_alias, "a.exe"))
    await send(relay, SELLER, conversation.buyer_alias, with_attachment(SELLER, conversation.buyer_alias, "b.exe"))
    await settled(relay)

    def notice_to(address: str) -> str:
        found = next(m for m in sink.messages if m.rcpt_tos == [address] and b"mailer-daemon@" in m.content)
        return email.message_from_bytes(found.content, policy=email.policy.default).get_body(
            ("plain",)).get_content()
    assert "reply to it with FLAG as the first line" in notice_to(BUYER)
    assert "FLAG" not in notice_to(SELLER)
