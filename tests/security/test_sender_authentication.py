"""Issue 13.1: only real senders. SPF, DKIM and DMARC decide, from records a loopback DNS server publishes.

seller-shop.example sends from 127.0.0.1 only (SPF), signs with a key at
s1._domainkey (DKIM) and asks receivers to reject what fails (DMARC p=reject).
A forger connects from 127.0.0.2, which is loopback too but not in that SPF
record. example.com, the buyer's domain, publishes nothing.
"""
from __future__ import annotations

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, crlf, make_config, open_conversation, settled
from dnsserver import DnsServer

from relay.server import Relay
from relay.signing import Signer, new_key

KEY, PUBLIC = new_key()
SIGNER = Signer("seller-shop.example", "s1", KEY)


def _txt(value: str) -> str:
    return " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))


@pytest.fixture
async def dns_server():
    server = await DnsServer().start()
    zone = server.zone
    zone.add("seller-shop.example", "TXT", '"v=spf1 ip4:127.0.0.1 -all"')
    zone.add("s1._domainkey.seller-shop.example", "TXT", _txt(f"v=DKIM1; k=rsa; p={PUBLIC}"))
    zone.add("_dmarc.seller-shop.example", "TXT", '"v=DMARC1; p=reject"')
    zone.add("nodmarc-shop.example", "TXT", '"v=spf1 ip4:127.0.0.1 -all"')
    zone.add("example.com", "A", "192.0.2.1")
    yield server
    await server.stop()


def _relay_config(tmp_path, sink, dns_server, **sections):
    return make_config(tmp_path, sink.port, auth={"require": "dmarc"},
                       dns={"servers": [f"127.0.0.1:{dns_server.port}"]}, **sections)


@pytest.fixture
async def relay(tmp_path, sink, dns_server):
    relay = Relay(_relay_config(tmp_path, sink, dns_server))
    await relay.start()
    yield relay
    await relay.stop()


async def _send(relay, sender, recipient, message, source="127.0.0.1") -> tuple[int, str]:
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False,
                                   source_address=(source, 0)) as client:
            _, text = await client.sendmail(sender, [recipient], message)
            return 250, text
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code, exc.message


def _seller_message(subject="Your order") -> bytes:
    return crlf(f"From: Shop <{SELLER}>\nTo: buyer\nSubject: {subject}\nDate: Wed, 02 Dec 2026 10:00:00 +0000\n"
                f"Message-ID: <{subject.replace(' ', '-')}@seller-shop.example>\n\nYour parcel left today.\n")


async def test_a_signed_message_from_a_p_reject_domain_is_delivered_and_a_forged_one_refused(relay, sink):
    opened = await open_conversation(relay)
    code, _ = await _send(relay, SELLER, opened.buyer_alias, SIGNER.sign(_seller_message()))
    assert code == 250
    forged = _seller_message("Your order again")  # the same words, unsigned, from another host
    code, text = await _send(relay, SELLER, opened.buyer_alias, forged, source="127.0.0.2")
    assert code == 550 and text.startswith("5.7.26") and "DMARC policy of reject" in text
    await settled(relay)
    assert [m.rcpt_tos for m in sink.messages] == [[BUYER]]
    log = (await relay.store.show(opened.conversation_id))["messages"]
    assert "dkim=pass header.d=seller-shop.example" in log[0]["authentication"]
    assert "dmarc=fail (p=reject)" in log[1]["authentication"] and "spf=fail" in log[1]["authentication"]
    assert b"Authentication-Results" not in sink.messages[0].content  # for the log, never for the buyer


async def test_dkim_alone_or_spf_alone_is_enough(relay, sink):
    opened = await open_conversation(relay)
    assert (await _send(relay, SELLER, opened.buyer_alias, SIGNER.sign(_seller_message("a")), "127.0.0.2"))[0] == 250
    assert (await _send(relay, SELLER, opened.buyer_alias, _seller_message("b")))[0] == 250  # SPF pass, aligned
    await sink.wait_for(2)


async def test_a_seller_whose_domain_publishes_no_dmarc_must_still_pass_spf_or_dkim(relay, sink):
    opened = await open_conversation(relay, seller="orders@nodmarc-shop.example")
    message = crlf("From: orders@nodmarc-shop.example\nSubject: hi\n\nHello\n")
    code, text = await _send(relay, "orders@nodmarc-shop.example", opened.buyer_alias, message, "127.0.0.2")
    assert code == 550 and "mail from a seller must be signed" in text
    assert (await _send(relay, "orders@nodmarc-shop.example", opened.buyer_alias, message))[0] == 250


async def test_a_buyer_whose_domain_publishes_nothing_is_accepted(relay, sink):
    opened = await open_conversation(relay)
    message = crlf(f"From: {BUYER}\nSubject: question\n\nIs it in stock?\n")
    assert (await _send(relay, BUYER, opened.seller_alias, message, "127.0.0.2"))[0] == 250


@pytest.mark.parametrize("from_field", [
    f"From: Ann <{SELLER}>",                                   # the other party's address
    f"From: {BUYER}, {SELLER}",                                # several, one of them not hers
    f'From: "{SELLER}" <{BUYER}>',                             # a display name that is itself an address
    f"From: =?utf-8?q?{SELLER.replace('@', '=40')}?= <{BUYER}>",  # the same, encoded
    f"From: {BUYER} ({SELLER})",                                # a comment, which clients show as the name
])
async def test_a_buyer_cannot_write_as_the_seller(relay, sink, from_field):
    opened = await open_conversation(relay)
    code, text = await _send(relay, BUYER, opened.seller_alias, crlf(f"{from_field}\nSubject: hi\n\nHello\n"))
    assert code == 550 and text.startswith("5.7.1") and "send as yourself" in text
    assert sink.messages == []


async def test_xforward_is_believed_from_a_trusted_peer_only(tmp_path, sink, dns_server):
    trusting = Relay(_relay_config(tmp_path, sink, dns_server, server={"trusted_peers": ["127.0.0.1/32"]}))
    await trusting.start()
    try:
        opened = await open_conversation(trusting)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=trusting.port, start_tls=False) as client:
            assert "XFORWARD" in (await client.ehlo()).message
            assert (await client.execute_command(b"XFORWARD ADDR=192.0.2.77 HELO=mx.elsewhere.example")).code == 250
            await client.mail(SELLER)
            await client.rcpt(opened.buyer_alias)
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:  # SPF is judged for 192.0.2.77: fail
                await client.data(_seller_message())
        assert refused.value.code == 550 and "5.7.26" in refused.value.message
    finally:
        await trusting.stop()


async def test_xforward_from_anyone_else_is_refused(relay, sink):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        assert "XFORWARD" not in (await client.ehlo()).message
        reply = await client.execute_command(b"XFORWARD ADDR=127.0.0.1")
    assert reply.code == 550 and reply.message.startswith("5.7.0")


async def test_dns_that_cannot_answer_makes_a_temporary_refusal(relay, sink, dns_server):
    dns_server.zone.failing.add("_dmarc.seller-shop.example")
    opened = await open_conversation(relay)
    code, text = await _send(relay, SELLER, opened.buyer_alias, _seller_message(), "127.0.0.2")
    assert code == 451 and text.startswith("4.7.5")
    assert sink.messages == []
