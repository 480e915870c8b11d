"""The HTTP API, through a real HTTP client against a running relay: every endpoint's success, 401 without
a valid token, 422 on bad input, and an OpenAPI document that validates."""
from __future__ import annotations

import email
import email.policy
import logging
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from conftest import BACKENDS, BUYER, SELLER, api_client, crlf, eventually, send
from openapi_spec_validator import validate

API = {"api": {"enabled": True, "listen": "127.0.0.1:0"}, "metrics": {"enabled": True, "listen": "127.0.0.1:0"}}
DUMMY = {"conversation_id": "0" * 32, "message_id": "1", "seller": SELLER, "buyer": BUYER}


@pytest.fixture
def relay_sections():
    return API


@pytest.fixture
async def api(relay):
    async with api_client(relay) as client:
        yield client


@pytest.fixture
async def anonymous(relay):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.http_port('api')}", timeout=10) as client:
        yield client


def buyer_message(to: str, subject: str = "Where is my order?", body: str = "Hello, any news?") -> bytes:
    return crlf(f"From: Ann <{BUYER}>\nTo: {to}\nSubject: {subject}\nMessage-ID: <{subject.__hash__()}@example.com>"
                f"\nDate: Fri, 04 Dec 2026 10:00:00 +0000\n\n{body}\n")


def seller_message(to: str, subject: str = "Re: Where is my order?", body: str = "It ships today.") -> bytes:
    return crlf(f"From: Shop <{SELLER}>\nTo: {to}\nSubject: {subject}\nDate: Fri, 04 Dec 2026 11:00:00 +0000\n\n"
                f"{body}\n")


async def opened(api) -> dict:
    reply = await api.post("/conversations", json={"buyer": BUYER, "seller": SELLER, "order_id": "A-1001",
                                                   "buyer_name": "Ann", "seller_name": "Seller Shop",
                                                   "buyer_locale": "es"})
    assert reply.status_code == 200, reply.text
    return reply.json()


async def test_the_openapi_document_is_valid_and_names_every_endpoint(anonymous):
    document = (await anonymous.get("/openapi.json")).json()
    validate(document)
    paths = set(document["paths"])
    assert {"/conversations", "/conversations/{conversation_id}", "/optouts", "/sellers/{seller}/addresses",
            "/sellers/{seller}/vacation", "/messages/{message_id}/no-response-needed",
            "/messages/{message_id}/flags", "/queue", "/reports/response-times", "/sellers/{seller}/record",
            "/conversations/{conversation_id}/review-request", "/conversations/{conversation_id}/standard-messages",
            "/sellers/{seller}/reinstate"} <= paths
    assert "bearer" in str(document["components"]["securitySchemes"]).lower()


async def test_every_endpoint_wants_a_valid_token(relay, anonymous, caplog):
    document = (await anonymous.get("/openapi.json")).json()
    revoked = await relay.center.create_token("old")
    await relay.center.revoke_token("old")
    calls = [(method, re.sub(r"\{(\w+)\}", lambda m: DUMMY[m.group(1)], path))
             for path, methods in document["paths"].items() for method in methods]
    assert len(calls) >= 18
    caplog.set_level(logging.WARNING, "relay.api")
    for headers in ({}, {"Authorization": "Bearer mr_not-a-token"}, {"Authorization": f"Bearer {revoked}"}):
        for method, path in calls:
            reply = await anonymous.request(method.upper(), path, headers=headers, json={})
            assert reply.status_code == 401, (method, path, headers, reply.text)
            assert reply.headers["www-authenticate"] == "Bearer"
    refused = [r for r in caplog.records if r.getMessage() == "api request refused"]
    assert len(refused) == 3 * len(calls)
    assert {r.why for r in refused} == {"no bearer token", "unknown or revoked token"}
    assert any("/sellers/addr-" in r.path for r in refused) and not any("@" in r.path for r in refused)


@pytest.mark.parametrize("method, path, body, field", [
    ("post", "/conversations", {"buyer": "not-an-address", "seller": SELLER}, "buyer"),
    ("post", "/conversations", {"buyer": BUYER}, "seller"),
    ("post", "/conversations", {"buyer": BUYER, "seller": SELLER, "buyer_locale": "xx"}, "buyer_locale"),
    ("post", "/conversations", {"buyer": BUYER, "seller": SELLER, "surprise": 1}, "surprise"),
    ("post", "/optouts", {"buyer": "bob@"}, "buyer"),
    ("post", f"/sellers/{SELLER}/addresses", {"address": "x"}, "address"),
    ("put", f"/sellers/{SELLER}/vacation", {"until": "soon"}, "until"),
    ("put", f"/sellers/{SELLER}/vacation", {"until": "2026-12-24T00:00:00"}, "until"),
    ("put", f"/sellers/{SELLER}/vacation", {"until": "2020-01-01T00:00:00Z"}, "until"),
    ("put", "/conversations/abc/delivery", {"delivered_at": "yesterday"}, "delivered_at"),
    ("post", "/messages/not-a-number/flags", {}, "message_id"),
    ("get", "/reports/response-times?since=forever", None, "since"),
    ("post", "/sellers/not-an-address/reinstate", None, "seller"),
])
async def test_bad_input_is_422_naming_the_field(api, method, path, body, field):
    await opened(api)
    reply = await api.request(method.upper(), path, json=body)
    assert reply.status_code == 422, reply.text
    assert field in {str(part) for error in reply.json()["detail"] for part in error["loc"]}, reply.text


@pytest.mark.parametrize("backend", BACKENDS)
async def test_open_is_idempotent_and_read_shows_the_thread_without_addresses(relay, sink, api):
    first = await opened(api)
    again = await opened(api)
    assert first == again
    assert first["buyer_alias"].endswith("@relay.test") and first["seller_alias"].endswith("@relay.test")
    await send(relay, BUYER, first["seller_alias"], buyer_message(first["seller_alias"]))
    await sink.wait_for(1)
    thread = (await api.get(f"/conversations/{first['conversation_id']}")).json()
    assert [m["verdict"] for m in thread["messages"]] == ["forwarded"]
    message = thread["messages"][0]
    assert message["from"] == {"role": "buyer", "alias": first["buyer_alias"]}
    assert message["subject"] == "Where is my order?"
    assert BUYER not in str(thread) and SELLER not in str(thread)
    revealed = (await api.get(f"/conversations/{first['conversation_id']}", params={"reveal": "true"})).json()
    assert revealed["buyer"]["address"] == BUYER and revealed["seller"]["address"] == SELLER
    found = (await api.get("/conversations", params={"q": "A-1001"})).json()
    assert [c["conversation_id"] for c in found] == [first["conversation_id"]]
    missing = await api.get(f"/conversations/{'f' * 32}")
    assert missing.status_code == 404


async def test_opt_out_and_back(relay, api):
    conversation = await opened(api)
    local = conversation["buyer_alias"].partition("@")[0]
    assert (await api.post("/optouts", json={"buyer": BUYER.upper()})).status_code == 200
    assert (await relay.store.route(local, fresh=True)).recipient.opted_out
    assert (await api.delete(f"/optouts/{BUYER}")).status_code == 200
    assert not (await relay.store.route(local, fresh=True)).recipient.opted_out


async def test_a_registered_seller_address_may_write(relay, sink, api):
    conversation = await opened(api)
    other = "support@seller-shop.example"
    reply = await api.post(f"/sellers/{SELLER}/addresses", json={"address": other})
    assert reply.status_code == 200, reply.text
    await send(relay, other, conversation["buyer_alias"],
               seller_message(conversation["buyer_alias"]).replace(SELLER.encode(), other.encode()))
    received = await sink.wait_for(1)
    assert other not in received[0].content.decode()
    unknown = await api.post("/sellers/nobody@example.org/addresses", json={"address": other})
    assert unknown.status_code == 404


async def test_vacation_set_and_cleared_shows_in_the_record(api):
    await opened(api)
    until = (datetime.now(timezone.utc) + timedelta(days=7)).replace(microsecond=0)
    assert (await api.put(f"/sellers/{SELLER}/vacation", json={"until": until.isoformat()})).status_code == 200
    record = (await api.get(f"/sellers/{SELLER}/record")).json()
    assert datetime.fromisoformat(record["vacation"]["until"]) == until
    assert (await api.delete(f"/sellers/{SELLER}/vacation")).status_code == 200
    assert (await api.get(f"/sellers/{SELLER}/record")).json()["vacation"]["until"] is None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_marks_flags_and_reinstatement(relay, sink, api):
    conversation = await opened(api)
    await send(relay, BUYER, conversation["seller_alias"], buyer_message(conversation["seller_alias"]))
    await send(relay, SELLER, conversation["buyer_alias"], seller_message(conversation["buyer_alias"]))
    await sink.wait_for(2)
    thread = (await api.get(f"/conversations/{conversation['conversation_id']}")).json()
    buyers, sellers = (next(m["id"] for m in thread["messages"] if m["direction"] == d)
                       for d in ("buyer_to_seller", "seller_to_buyer"))
    assert (await api.post(f"/messages/{buyers}/no-response-needed")).status_code == 200
    wrong = await api.post(f"/messages/{sellers}/no-response-needed")
    assert wrong.status_code == 409 and SELLER not in wrong.text and BUYER not in wrong.text
    flagged = await api.post(f"/messages/{sellers}/flags", json={"reason": "asked for a review"})
    assert flagged.status_code == 200, flagged.text
    not_sellers = await api.post(f"/messages/{buyers}/flags", json={})
    assert not_sellers.status_code == 409 and BUYER not in not_sellers.text
    thread = (await api.get(f"/conversations/{conversation['conversation_id']}")).json()
    by_id = {m["id"]: m for m in thread["messages"]}
    assert by_id[buyers]["no_response_needed"] is True
    assert by_id[sellers]["flags"][0]["source"] == "marketplace"
    record = (await api.get(f"/sellers/{SELLER}/record")).json()
    assert [(v["kind"], v["rule"], v["source"]) for v in record["violations"]] == [
        ("flag", "asked for a review", "marketplace")]
    reinstated = await api.post(f"/sellers/{SELLER}/reinstate")
    assert reinstated.status_code == 200 and reinstated.json()["detail"] == "0 held message(s) released"
    assert (await api.get(f"/sellers/{SELLER}/record")).json()["violations_counting"] == 0


async def test_queue_and_report(relay, sink, api):
    conversation = await opened(api)
    sink.fail_next(1)
    await send(relay, BUYER, conversation["seller_alias"], buyer_message(conversation["seller_alias"]))

    await eventually(lambda: sink.failures == [], what="the sink's refusal")
    items = (await api.get("/queue")).json()
    assert items[0]["conversation"] == conversation["conversation_id"]
    assert items[0]["recipient"] == SELLER and items[0]["kind"] == "forward"
    report = (await api.get("/reports/response-times", params={"since": "7d"})).json()
    assert [s["seller"] for s in report["sellers"]] == [SELLER]
    assert report["sellers"][0]["contacts"] == 1 and report["sellers"][0]["open"] == 1


async def test_standard_messages_in_the_buyers_language(relay, sink, api):
    conversation = await opened(api)
    names = {t["name"]: t for t in (await api.get("/templates")).json()}
    assert names["shipping_delay"] == {"name": "shipping_delay", "fields": ["date"], "critical": True}
    path = f"/conversations/{conversation['conversation_id']}/standard-messages"
    sent = await api.post(path, json={"template": "shipping_delay", "fields": {"date": "2026-12-20"}})
    assert sent.status_code == 200, sent.text
    assert sent.json()["locale"] == "es" and sent.json()["subject"] == "[Important] Pedido A-1001: el envío se retrasa"
    received = (await sink.wait_for(1))[0]
    assert received.rcpt_tos == [BUYER]
    message = email.message_from_bytes(received.content, policy=email.policy.default)
    text = message.get_content()
    assert "2026-12-20" in text and "Seller Shop" in text and SELLER not in received.content.decode()
    assert conversation["seller_alias"] in message["From"]
    unknown = await api.post(path, json={"template": "coupon", "fields": {}})
    assert unknown.status_code == 422 and "template" in str(unknown.json()["detail"][0]["loc"])
    missing = await api.post(path, json={"template": "shipping_delay", "fields": {}})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "fields", "date"]
    linky = await api.post(path, json={"template": "shipping_delay", "fields": {"date": "see shop.example.com"}})
    assert linky.status_code == 422 and linky.json()["detail"][0]["loc"] == ["body", "fields", "date"]


async def test_what_a_seller_may_not_send_through_standard_messages(api, sink):
    conversation = await opened(api)
    path = f"/conversations/{conversation['conversation_id']}/standard-messages"
    reserved = await api.post(path, json={"template": "review_request", "fields": {}})
    assert reserved.status_code == 422, reserved.text  # the review request has its own rules
    for value in ("call +34 600 123 456", "orders (at) sellershop (dot) com", "visit myshop.es"):
        refused = await api.post(path, json={"template": "shipping_delay", "fields": {"date": value}})
        assert refused.status_code == 422, (value, refused.text)
        assert refused.json()["detail"][0]["loc"][:2] == ["body", "fields"]
    assert sink.messages == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_flag_counts_once_per_side_and_times_are_kept_in_utc(relay, sink, api):
    conversation = await opened(api)
    await send(relay, SELLER, conversation["buyer_alias"], seller_message(conversation["buyer_alias"]))
    await sink.wait_for(1)
    thread = (await api.get(f"/conversations/{conversation['conversation_id']}")).json()
    message_id = thread["messages"][0]["id"]
    assert (await api.post(f"/messages/{message_id}/flags", json={})).status_code == 200
    again = await api.post(f"/messages/{message_id}/flags", json={})
    assert again.status_code == 409 and "already" in again.json()["detail"]
    assert (await api.get(f"/sellers/{SELLER}/record")).json()["violations_counting"] == 1
    until = datetime.now(timezone(timedelta(hours=2))) + timedelta(days=3)
    await api.put(f"/sellers/{SELLER}/vacation", json={"until": until.isoformat()})
    kept = datetime.fromisoformat((await api.get(f"/sellers/{SELLER}/record")).json()["vacation"]["until"])
    assert kept == until.replace(microsecond=until.microsecond)  # the same moment, whatever the backend
    assert (await api.delete("/optouts/nobody@example.org")).status_code == 404


async def test_a_vacation_reply_with_a_long_accented_subject_and_an_international_address(relay, sink, api):
    buyer = "josé@bücher.example"
    reply = await api.post("/conversations", json={"buyer": buyer, "seller": SELLER, "order_id": "Z-1"})
    conversation = reply.json()
    now = datetime.now(timezone.utc)
    await api.put(f"/sellers/{SELLER}/vacation", json={"until": (now + timedelta(days=2)).isoformat()})
    subject = "¿Dónde está mi pedido? Necesito saber cuándo llega, por favor, es un regalo de cumpleaños"
    message = (f"From: <{buyer}>\r\nTo: {conversation['seller_alias']}\r\nSubject: =?utf-8?q?"
               f"{subject.encode().hex()}?=\r\nMessage-ID: <intl@example.org>\r\n\r\nHola\r\n").encode()
    message = message.replace(subject.encode().hex().encode(), "".join(
        f"={b:02X}" for b in subject.encode()).encode())
    await send(relay, buyer, conversation["seller_alias"], message, mail_options=["SMTPUTF8"])
    received = await sink.wait_for(2)
    auto = next(m for m in received if b"Auto-Submitted: auto-replied" in m.content)
    head = auto.content.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"")  # no bare line feed folds a field
    parsed = email.message_from_bytes(auto.content, policy=email.policy.default)
    assert parsed["Subject"].endswith(subject) and auto.rcpt_tos == [buyer]
    assert SELLER not in auto.content.decode("utf-8")
