"""Issue 12.2, 12.4, 12.6 and 12.7: how queued messages leave, signed, by MX, over TLS, one connection for many.

The next hops are aiosmtpd sinks on loopback; the MX records come from the
small DNS server in tests/dnsserver.py, the way an operator would point the
relay at their own resolver. 127.0.0.2 is loopback too, with nothing listening.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import ssl

import dkim
import dns.resolver
import pytest
from conftest import (
    BUYER,
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
from dnsserver import DnsServer
from test_filters import EXE, PDF

from relay.server import Relay
from relay.signing import new_key
from relay.tls import server_context, write_pair

SHOP = "orders@shop-mx.example"
backend = both_backends  # a seller whose domain the test DNS server answers for


@pytest.fixture
async def dns_server():
    server = await DnsServer().start()
    yield server
    await server.stop()


def resolver_for(server: DnsServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], server.port
    return resolver


def verifies(message: bytes, server: DnsServer) -> bool:
    """dkimpy's verdict, with the key fetched from the test DNS server."""
    resolver = resolver_for(server)

    def txt(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode(), "TXT")
        return b"".join(b"".join(record.strings) for record in answer)

    return dkim.verify(message, dnsfunc=txt)


@pytest.fixture
async def signed_relay(tmp_path, sink, dns_server, database_url):
    pem, public = new_key()
    (tmp_path / "dkim.key").write_bytes(pem)
    record = f"v=DKIM1; k=rsa; p={public}"
    dns_server.zone.add("relay._domainkey.relay.test", "TXT",
                        " ".join(f'"{record[i:i + 250]}"' for i in range(0, len(record), 250)))
    relay = Relay(make_config(tmp_path, sink.port, database={"url": database_url},
                              dkim={"key_file": str(tmp_path / "dkim.key")},
                              dns={"servers": [f"127.0.0.1:{dns_server.port}"]}))
    await relay.start()
    yield relay
    await relay.stop()


async def test_every_forward_and_notice_verifies_with_dkim(signed_relay, sink, dns_server):
    relay = signed_relay
    opened = await open_conversation(relay)
    await send(relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: hello\n\nIs it in stock?\n"))
    await send(relay, SELLER, opened.buyer_alias, crlf(f"From: {SELLER}\nSubject: offer\n\nSee www.myshop.example\n"))
    attached = (f"From: {SELLER}\nSubject: invoice\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: text/plain\n\nAttached.\n--b\nContent-Type: application/pdf; name=a.pdf\n"
                f"Content-Transfer-Encoding: base64\n\n{base64.encodebytes(PDF).decode()}"
                "--b\nContent-Type: application/octet-stream; name=tool.pdf\nContent-Transfer-Encoding: base64\n\n"
                f"{base64.encodebytes(EXE).decode()}--b--\n")
    await send(relay, SELLER, opened.buyer_alias, crlf(attached))
    await sink.wait_for(4)
    await settled(relay)
    # a forward; the notice of a bounce; a forward without its executable, and the notice saying so
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted([SELLER, SELLER, BUYER, SELLER])
    for message in sink.messages:
        assert message.content.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=relay.test;")
        # in a thread: the test's DNS server answers on this event loop
        assert await asyncio.to_thread(verifies, message.content, dns_server), message.content[:300]


def test_a_key_that_cannot_be_read_stops_the_relay_with_one_line(tmp_path):
    (tmp_path / "relay.toml").write_text('[dkim]\nkey_file = "missing.key"\n[server]\nport = 0\n')
    result = run_cli("--config", str(tmp_path / "relay.toml"), "serve")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"relay: cannot read the DKIM key {tmp_path / 'missing.key'}: "
                                                  "No such file or directory"]


def test_keygen_writes_a_private_key_and_prints_its_record(tmp_path):
    result = run_cli("dkim", "keygen", "--selector", "s2026", "--out", str(tmp_path / "relay.key"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "relay.key").stat().st_mode & 0o777 == 0o600
    assert "s2026._domainkey.relay.localhost. IN TXT" in result.stdout and "v=DKIM1; k=rsa; p=" in result.stdout
    assert run_cli("dkim", "keygen", "--out", str(tmp_path / "relay.key")).returncode == 1  # never overwritten


@pytest.fixture
async def mx_relay(tmp_path, sink, dns_server, database_url):
    relay = Relay(make_config(tmp_path, sink.port, database={"url": database_url},
                              delivery={"smarthost": "", "mx_port": sink.port},
                              dns={"servers": [f"127.0.0.1:{dns_server.port}"]}))
    await relay.start()
    yield relay
    await relay.stop()


async def test_without_a_smarthost_mail_goes_to_the_mx_hosts_in_preference_order(mx_relay, sink, dns_server):
    zone = dns_server.zone
    zone.add("shop-mx.example", "MX", "10 mx1.shop-mx.example.")
    zone.add("shop-mx.example", "MX", "20 mx2.shop-mx.example.")
    zone.add("mx1.shop-mx.example", "A", "127.0.0.2")  # loopback, but nothing listens there: connection refused
    zone.add("mx2.shop-mx.example", "A", "127.0.0.1")
    opened = await open_conversation(mx_relay, seller=SHOP)
    await send(mx_relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: by MX\n\nHello\n"))
    [arrived] = await sink.wait_for(1)
    assert arrived.rcpt_tos == [SHOP]
    assert ("shop-mx.example.", "MX") in zone.queries and ("mx1.shop-mx.example.", "A") in zone.queries


async def test_a_domain_without_mx_is_its_own_mail_host_and_one_that_does_not_exist_fails(mx_relay, sink,
                                                                                         dns_server):
    dns_server.zone.add("plain-host.example", "A", "127.0.0.1")  # no MX: RFC 5321 5.1's implicit MX
    opened = await open_conversation(mx_relay, seller="shop@plain-host.example")
    await send(mx_relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: implicit\n\nHello\n"))
    [arrived] = await sink.wait_for(1)
    assert arrived.rcpt_tos == ["shop@plain-host.example"]

    gone = await open_conversation(mx_relay, seller="shop@gone-away.example", order_id="B-1")  # NXDOMAIN
    await send(mx_relay, BUYER, gone.seller_alias, crlf(f"From: {BUYER}\nSubject: nowhere\n\nHello\n"))
    dns_server.zone.add("example.com", "A", "127.0.0.1")  # where the buyer's notice goes
    await eventually(lambda: len(sink.messages) == 2, what="the failure notice")
    notice = sink.messages[1]
    assert notice.rcpt_tos == [BUYER]
    assert "gone-away" not in notice.content.decode("utf-8", "replace")
    row = [m for m in (await mx_relay.store.show(gone.conversation_id))["messages"]][0]
    assert row["delivery"] == "failed" and "no such domain" in row["next_hop_reply"]


def _self_signed(tmp_path) -> ssl.SSLContext:
    write_pair(tmp_path / "sink.pem", tmp_path / "sink.key", "sink.localhost")
    return server_context(tmp_path / "sink.pem", tmp_path / "sink.key")


async def test_starttls_is_used_when_the_next_hop_offers_it(tmp_path, database_url):
    sink = Sink(tls_context=_self_signed(tmp_path))
    await sink.start()
    relay = Relay(make_config(tmp_path, sink.port, database={"url": database_url}, delivery={"require_tls": True}))
    await relay.start()
    try:
        opened = await open_conversation(relay)
        await send(relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: private\n\nHello\n"))
        await sink.wait_for(1)
        assert sink.tls_sessions == 1
    finally:
        await relay.stop()
        await sink.stop()


async def test_with_tls_required_a_next_hop_without_it_is_not_used(tmp_path, sink, caplog, database_url):
    caplog.set_level(logging.INFO, logger="relay.delivery")
    relay = Relay(make_config(tmp_path, sink.port, database={"url": database_url}, delivery={"require_tls": True}))
    await relay.start()
    try:
        opened = await open_conversation(relay)
        await send(relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: private\n\nHello\n"))
        await eventually(lambda: any(getattr(r, "answer", "").find("TLS is required") >= 0 for r in caplog.records),
                         what="a deferral for want of TLS")
        assert sink.messages == [] and (await relay.queue.depth())[0] == 1  # it waits for a host with TLS
    finally:
        await relay.stop()


async def test_one_connection_carries_many_messages(relay, sink, conversation):
    for index in range(5):
        await send(relay, BUYER, conversation.seller_alias,
                   crlf(f"From: {BUYER}\nSubject: {index}\nMessage-ID: <m{index}@example.com>\n\nHello\n"))
        await sink.wait_for(index + 1)
    assert sink.ehlos == 1 and len(sink.messages) == 5


async def test_lmtp_answers_for_each_recipient(tmp_path, sink, database_url):
    relay = Relay(make_config(tmp_path, sink.port, database={"url": database_url}, server={"protocol": "lmtp"}))
    await relay.start()
    try:
        keen = await open_conversation(relay, buyer="keen@example.com")
        away = await open_conversation(relay, buyer="away@example.com")
        await relay.store.set_opt_out("away@example.com", True)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)

        async def say(line: bytes) -> list[bytes]:
            writer.write(line + b"\r\n")
            replies = [await reader.readline()]
            while replies[-1][3:4] == b"-":
                replies.append(await reader.readline())
            return replies

        assert (await reader.readline()).startswith(b"220")
        assert (await say(b"EHLO client.example"))[0].startswith(b"500")  # LMTP greets with LHLO
        assert (await say(b"LHLO client.example"))[-1].startswith(b"250 ")
        for line in (f"MAIL FROM:<{SELLER}>", f"RCPT TO:<{keen.buyer_alias}>", f"RCPT TO:<{away.buyer_alias}>",
                     "DATA"):
            assert (await say(line.encode()))[0][:1] in b"23"
        writer.write(crlf(f"From: {SELLER}\nSubject: news\nAuto-Submitted: auto-generated\n\nYour parcel.\n")
                     + b".\r\n")
        first, second = await reader.readline(), await reader.readline()
        assert first.startswith(b"250 2.0.0 Queued")  # the buyer who wants it
        assert second.startswith(b"550 5.7.1")  # the buyer who opted out; automatic mail gets no notice
        writer.close()
        [arrived] = await sink.wait_for(1)
        assert arrived.rcpt_tos == ["keen@example.com"]
    finally:
        await relay.stop()

