"""A scripted weekend of traffic, and the response-time report it must give, exactly, from the command
line and from the API: replies at known delays, a weekend that counts, a "no response needed" mark, and a
vacation whose automatic reply goes once per conversation."""
from __future__ import annotations

import email
import email.policy
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from conftest import BUYER, SELLER, both_backends, crlf, eventually, open_conversation, run_cli, send, settled

SECOND_SELLER = "hello@pottery.example"
SECOND_BUYER = "bo@example.net"

backend = both_backends


@pytest.fixture
def relay_sections():
    # Replies here carry no In-Reply-To, so the over-messaging rule would count them as unsolicited.
    return {"api": {"enabled": True, "listen": "127.0.0.1:0"}, "filters": {"frequency": {"enabled": False}}}


def friday_a_week_ago() -> datetime:
    now = datetime.now(timezone.utc)
    day = (now - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=(day.weekday() - 4) % 7)


class Script:
    def __init__(self, relay):
        self.relay = relay
        self.count = 0

    async def say(self, sender: str, alias: str, at: datetime, subject: str = "About my order") -> None:
        self.count += 1
        self.relay.decider.clock = lambda: at
        message = crlf(f"From: <{sender}>\nTo: {alias}\nSubject: {subject}\nMessage-ID: <m{self.count}@example.org>\n"
                       f"Date: {email.utils.format_datetime(at)}\n\nMessage number {self.count}.\n")
        reply = await send(self.relay, sender, alias, message)
        assert reply.startswith("2.0.0 Queued"), reply


EXPECTED = {
    SELLER: {"contacts": 4, "answered": 4, "open": 0, "within_24h": 3, "late": 1, "median_hours": 14.0,
             "p90_hours": 60.0, "share_within_24h": 0.75, "no_response_needed": 1, "during_vacation": 0},
    SECOND_SELLER: {"contacts": 1, "answered": 1, "open": 0, "within_24h": 0, "late": 1, "median_hours": 95.0,
                    "p90_hours": 95.0, "share_within_24h": 0.0, "no_response_needed": 0, "during_vacation": 3},
}


async def test_a_scripted_weekend_gives_exactly_the_expected_figures(relay, sink, tmp_path):
    friday = friday_a_week_ago()
    at = {name: friday + timedelta(days=day, hours=hour) for name, (day, hour) in {
        "fri09": (0, 9), "fri10": (0, 10), "fri11": (0, 11), "fri12": (0, 12), "fri13": (0, 13), "fri18": (0, 18),
        "fri20": (0, 20), "sat09": (1, 9), "sat10": (1, 10), "sat12": (1, 12), "sat15": (1, 15), "sun09": (2, 9),
        "sun10": (2, 10), "mon08": (3, 8), "tue09": (4, 9), "tue10": (4, 10)}.items()}
    c1, c2, c3 = [await open_conversation(relay, order_id=f"A-{n}", seller_name="Seller Shop") for n in (1, 2, 3)]
    c4 = await open_conversation(relay, seller=SECOND_SELLER, order_id="P-4", buyer_locale="es")
    c5 = await open_conversation(relay, buyer=SECOND_BUYER, seller=SECOND_SELLER, order_id="P-5")
    token = await relay.center.create_token("report")
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.http_port('api')}",
                            headers={"Authorization": f"Bearer {token}"})
    vacation = await api.put(f"/sellers/{SECOND_SELLER}/vacation", json={
        "since": (friday + timedelta(days=1)).isoformat(), "until": (friday + timedelta(days=4)).isoformat()})
    assert vacation.status_code == 200, vacation.text
    script = Script(relay)
    # The first seller: answered in 2 h; two buyer messages answered by one reply 6 h after the first of them;
    # Friday evening to Monday morning (60 h: the weekend counts); a message marked "no response needed"; and
    # a Saturday noon question answered Sunday morning (22 h).
    await script.say(BUYER, c1.seller_alias, at["fri09"])
    await script.say(SELLER, c1.buyer_alias, at["fri11"])
    await script.say(BUYER, c1.seller_alias, at["fri12"])
    await script.say(BUYER, c1.seller_alias, at["fri13"])
    await script.say(SELLER, c1.buyer_alias, at["fri18"])
    await script.say(BUYER, c2.seller_alias, at["fri20"])
    await script.say(SELLER, c2.buyer_alias, at["mon08"])
    await script.say(BUYER, c3.seller_alias, at["sat10"], "Thank you!")
    await script.say(BUYER, c3.seller_alias, at["sat12"])
    await script.say(SELLER, c3.buyer_alias, at["sun10"])
    # The second seller: a question on Friday, before the vacation, still counts (95 h, answered on Tuesday);
    # three messages during the vacation leave the clock, and each conversation gets one automatic reply.
    await script.say(BUYER, c4.seller_alias, at["fri10"])
    await script.say(BUYER, c4.seller_alias, at["sat09"])
    await script.say(BUYER, c4.seller_alias, at["sun09"])
    await script.say(SECOND_BUYER, c5.seller_alias, at["sat15"])
    await script.say(SECOND_SELLER, c4.buyer_alias, at["tue09"])
    await script.say(SECOND_SELLER, c5.buyer_alias, at["tue10"])
    thread = (await api.get(f"/conversations/{c3.conversation_id}")).json()
    thanks = next(m["id"] for m in thread["messages"] if m["subject"] == "Thank you!")
    assert (await api.post(f"/messages/{thanks}/no-response-needed")).status_code == 200
    await settled(relay)

    auto = [email.message_from_bytes(m.content, policy=email.policy.default) for m in sink.messages
            if b"Auto-Submitted: auto-replied" in m.content]
    assert sorted((m["To"], m["From"].addresses[0].addr_spec) for m in auto) == sorted(
        [(BUYER, c4.seller_alias), (SECOND_BUYER, c5.seller_alias)])
    spanish = next(m for m in auto if m["To"] == BUYER)
    assert spanish["Subject"].startswith("Ausente hasta el ") and spanish["In-Reply-To"] == "<m12@example.org>"
    assert SECOND_SELLER not in str(spanish)

    config = tmp_path / "relay.toml"
    config.write_text(f'[database]\nurl = "{relay.config.database_url()}"\n[aliases]\ndomain = "relay.test"\n')
    printed = run_cli("--config", str(config), "report", "response-times", "--since", "30d", "--format", "json")
    assert printed.returncode == 0, printed.stderr
    from_cli = {s["seller"]: s for s in json.loads(printed.stdout)["sellers"]}
    from_api = {s["seller"]: s for s in (await api.get("/reports/response-times", params={"since": "30d"})).json()[
        "sellers"]}
    await api.aclose()
    for figures in (from_cli, from_api):
        assert set(figures) == set(EXPECTED)
        for seller, expected in EXPECTED.items():
            assert {key: figures[seller][key] for key in expected} == expected, seller
    table = run_cli("--config", str(config), "report", "response-times", "--format", "table")
    assert table.returncode == 0 and "Seller Shop" in table.stdout and "75 %" in table.stdout


async def test_no_automatic_reply_to_automatic_mail(relay, sink):
    conversation = await open_conversation(relay)
    now = datetime.now(timezone.utc)
    await relay.center.set_vacation(SELLER, now + timedelta(days=2), now - timedelta(hours=1))
    message = crlf(f"From: <{BUYER}>\nTo: {conversation.seller_alias}\nSubject: Out of office\n"
                   f"Auto-Submitted: auto-replied\nMessage-ID: <auto@example.org>\n\nI am away.\n")
    await send(relay, BUYER, conversation.seller_alias, message)
    await settled(relay)
    await eventually(lambda: sink.messages, what="the forward")
    assert [m.rcpt_tos for m in sink.messages] == [[SELLER]]
