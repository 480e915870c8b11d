"""The operator console (issue item 6): its pages in headless Chromium against a running relay, and its
sign-in over plain HTTP. The browser walk saves a full-page screenshot of each page in tests/screenshots/.

Debian's chromium is driven by playwright (no browser download). Without it the browser test skips,
and fails in CI, where .ci/run installs it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import uuid
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from conftest import BUYER, SELLER, crlf, open_conversation, send, settled

CHROMIUM = os.environ.get("RELAY_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
PAGES = ("login", "home", "queue", "search", "conversation", "conversation-revealed", "seller", "sellers",
         "login-refused")
OTHER_SELLER = "sales@other-shop.example"
HOSTILE_SUBJECT = "<img src=x onerror=alert(1)> Where is my order?"


@pytest.fixture
def relay_sections():
    # Two violations hold a seller, so the walk sees a held seller too.
    return {"api": {"enabled": True, "listen": "127.0.0.1:0"},
            "filters": {"sanctions": {"max_violations": 2}}}


def chromium_or_skip():
    """playwright's async API, or a skip (a failure in CI) saying what is missing."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing = "the playwright package (pip install -e '.[test]')"
    else:
        if os.access(CHROMIUM, os.X_OK):
            return async_playwright
        missing = f"chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {missing} for the console tests (see .ci/run)")
    pytest.skip(f"no {missing}")


def message(sender: str, to: str, subject: str, body: str) -> bytes:
    return crlf(f"From: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{uuid.uuid4().hex}@example.com>\n"
                f"Date: Fri, 04 Dec 2026 10:00:00 +0000\n\n{body}\n")


def base(relay) -> str:
    return f"http://127.0.0.1:{relay.http_port('api')}"


async def test_sign_in_sets_a_strict_cookie_and_every_page_wants_it(relay, caplog):
    token = await relay.center.create_token("support")
    opened = await open_conversation(relay, order_id="A-3003")
    pages = ["/console/", "/console/search?q=A-3003", f"/console/conversations/{opened.conversation_id}",
             "/console/queue", "/console/sellers", f"/console/sellers/{SELLER}"]
    caplog.set_level(logging.INFO, "relay.api")
    async with httpx.AsyncClient(base_url=base(relay), timeout=10) as client:
        assert not [p for p in (await client.get("/openapi.json")).json()["paths"] if p.startswith("/console")]
        for path in pages:
            reply = await client.get(path)
            assert reply.status_code == 303 and reply.headers["location"] == "/console/login", path

        refused = await client.post("/console/login", data={"token": "mr_not-a-token"})
        assert refused.status_code == 401 and "not valid" in refused.text and "set-cookie" not in refused.headers
        logged = [r for r in caplog.records if r.getMessage() == "console login refused"]
        assert len(logged) == 1 and logged[0].why == "unknown or revoked token"
        assert "mr_not-a-token" not in caplog.text and token not in caplog.text

        signed_in = await client.post("/console/login", data={"token": token})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/"
        cookie = signed_in.headers["set-cookie"]
        morsel = SimpleCookie(cookie)["relay_console"]
        assert morsel.value == token and morsel["httponly"] and morsel["samesite"] == "strict"
        assert morsel["path"] == "/console" and not morsel["secure"]  # plain http here: Secure only over https
        for path in pages:
            reply = await client.get(path)
            assert reply.status_code == 200, (path, reply.text)
            assert "script-src" not in reply.headers["content-security-policy"]  # default-src 'none': no script
            assert reply.headers["cache-control"] == "no-store"
        assert BUYER not in (await client.get(pages[2])).text
        assert BUYER in (await client.get(pages[2] + "?reveal=1")).text

        out = await client.post("/console/logout")
        assert out.status_code == 303 and 'relay_console=""' in out.headers["set-cookie"]
        assert (await client.get("/console/")).status_code == 303

    async with httpx.AsyncClient(base_url=base(relay), timeout=10) as client:
        bearer = await client.get("/console/queue", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 200 and "Queue" in bearer.text
        await relay.center.revoke_token("support")
        client.cookies.set("relay_console", token)
        assert (await client.get("/console/queue")).status_code == 303  # revoked
        client.cookies.clear()
        assert (await client.get(f"/console/conversations/{'f' * 32}", headers={
            "Authorization": f"Bearer {await relay.center.create_token('again')}"})).status_code == 404


async def test_the_console_in_headless_chromium(relay, sink):
    async_playwright = chromium_or_skip()
    SCREENSHOTS.mkdir(exist_ok=True)
    for name in PAGES:
        (SCREENSHOTS / f"{name}.png").unlink(missing_ok=True)
    token = await relay.center.create_token("support")

    # One conversation with a forwarded buyer message, a forwarded answer (then flagged) and a bounced one.
    first = await open_conversation(relay, order_id="A-2001", buyer_name="Ann Buyer", seller_name="Seller Shop")
    await send(relay, BUYER, first.seller_alias, message(f"Ann <{BUYER}>", first.seller_alias, HOSTILE_SUBJECT,
                                                         "Has it shipped?"))
    await send(relay, SELLER, first.buyer_alias, message(f"Shop <{SELLER}>", first.buyer_alias,
                                                         "Re: Where is my order?", "It ships today."))
    await send(relay, SELLER, first.buyer_alias, message(f"Shop <{SELLER}>", first.buyer_alias, "Re: Where is my order?",
                                                         "Cheaper next time: visit http://shop.example.com"))
    await settled(relay)
    thread = await relay.center.conversation(first.conversation_id)
    assert [m["verdict"] for m in thread["messages"]] == ["forwarded", "forwarded", "bounced"]
    answer = thread["messages"][1]["id"]
    assert await relay.center.flag(answer, "marketplace", "rude answer", 2, timedelta(days=30))

    # A second conversation, with another seller, whose message waits in the queue while the next hop stalls.
    second = await open_conversation(relay, seller=OTHER_SELLER, order_id="B-2002", seller_name="Other Shop")
    sink.hold = asyncio.Event()
    try:
        await send(relay, BUYER, second.seller_alias, message(BUYER, second.seller_alias, "Do you ship to Bali?",
                                                              "Thanks!"))

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                await walk(browser, base(relay), token, first, second, sink)
            finally:
                await browser.close()
    finally:
        sink.hold.set()

    for name in PAGES:
        shot = SCREENSHOTS / f"{name}.png"
        assert shot.is_file() and shot.stat().st_size > 1000, shot
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot


async def screenshot(page, name: str) -> None:
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


async def walk(browser, url: str, token: str, first, second, sink) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()

    await page.goto(url + "/console/")
    assert page.url == url + "/console/login"
    await screenshot(page, "login")
    await page.fill("#token", token)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url == url + "/console/"
    assert "support" in await page.inner_text(".who")
    assert first.conversation_id in await page.content()
    assert "Seller Shop" in await page.inner_text("main")  # among the held sellers
    await screenshot(page, "home")

    await page.goto(url + "/console/queue")
    rows = page.locator("table.queue tbody tr")
    assert await rows.count() >= 1
    assert second.conversation_id in await rows.first.inner_text()
    await screenshot(page, "queue")
    sink.hold.set()

    await page.goto(url + "/console/")
    await page.fill("#q", "A-2001")
    async with page.expect_navigation():
        await page.click(".bigsearch button")
    results = page.locator("main table tbody tr")
    assert await results.count() == 1
    assert second.conversation_id not in await page.content()
    await screenshot(page, "search")
    async with page.expect_navigation():
        await page.click(f"text={first.conversation_id}")
    assert page.url == f"{url}/console/conversations/{first.conversation_id}"

    badges = [await b.inner_text() for b in await page.locator(".thread .head .badge").all()]
    assert badges == ["forwarded", "forwarded", "bounced"]
    assert await page.locator(".thread .rule").all_inner_texts() == ["links"]
    assert "rude answer" in await page.inner_text(".flags")
    assert HOSTILE_SUBJECT in await page.locator(".subject").first.inner_text()  # shown as text, not markup
    assert await page.locator("main img").count() == 0
    assert "sent to the seller" in await page.inner_text(".thread")  # the bounce's notice
    content = await page.content()
    assert BUYER not in content and SELLER not in content and first.buyer_alias in content
    await screenshot(page, "conversation")

    async with page.expect_navigation():
        await page.click("text=Show real addresses (operator view)")
    assert "Operator view" in await page.inner_text(".operator-view")
    assert BUYER in await page.inner_text(".parties") and SELLER in await page.inner_text(".parties")
    await screenshot(page, "conversation-revealed")
    async with page.expect_navigation():
        await page.click("text=The seller's record")
    assert await page.locator("main tbody tr").count() == 2  # the flag and the bounce
    assert "held" in await page.inner_text(".facts")
    await screenshot(page, "seller")

    await page.goto(url + "/console/sellers")
    assert await page.locator("svg.chart").count() == 2
    shares = page.locator("svg.chart rect.bar.share")
    assert await shares.count() == 2
    assert [await r.get_attribute("width") for r in await shares.all()] == ["320", "0"]  # seller-shop answered; other-shop: open
    assert "100%" in await page.locator("svg.chart").first.text_content()
    await screenshot(page, "sellers")
    await context.close()

    # A wrong token: an error, no cookie, no console page.
    stranger = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await stranger.new_page()
    await page.goto(url + "/console/login")
    await page.fill("#token", "mr_wrong-token")
    async with page.expect_navigation() as navigation:
        await page.click("button[type=submit]")
    assert (await navigation.value).status == 401
    assert "not valid" in await page.inner_text(".error")
    assert await page.locator("nav").count() == 0
    await screenshot(page, "login-refused")
    assert await stranger.cookies() == []
    await page.goto(url + "/console/queue")
    assert page.url == url + "/console/login"
    await stranger.close()
