"""Real-world MIME, oddities and breakage included: the rewrite survives all of it and leaks nothing.

The messages are mailgun/flanker's fixtures (tests/data/corpus, Apache-2.0).
Every address in their From/To/Cc/Reply-To plays a party here.
"""
from __future__ import annotations

import email
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

import pytest

from filters.settings import FiltersConfig
from filters.view import Facts
from relay.metadata import scrubbed
from relay.mime import MalformedMessage
from relay.rewrite import Plan
from relay.scrub import AddressScrubber
from relay.worker import prepare

NO_FILTERS = FiltersConfig(**{rule: {"enabled": False} for rule in FiltersConfig.model_fields})
ALL_FILTERS = FiltersConfig(**{rule: {"directions": ["seller_to_buyer"]} for rule, field in FiltersConfig.model_fields.items()
                               if "directions" in field.annotation.model_fields})  # rules, not the readers
FACTS = Facts(direction="seller_to_buyer", conversation_aliases=frozenset(), party_addresses=frozenset())

CORPUS = sorted((Path(__file__).parent / "data" / "corpus").glob("*.eml"))


def as_transmitted(path: Path) -> bytes:
    """A fixture as an SMTP client would send it: CRLF line ends."""
    return path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def party_addresses(raw: bytes) -> list[str]:
    message = email.message_from_bytes(raw, policy=compat32)
    fields = [str(v) for name in ("from", "to", "cc", "reply-to", "sender") for v in message.get_all(name, [])]
    return sorted({addr.lower() for _, addr in getaddresses(fields) if "@" in addr and addr.isascii()})


def binary_payloads(raw: bytes) -> list[bytes]:
    message = email.message_from_bytes(raw, policy=compat32)
    return [part.get_payload(decode=True) for part in message.walk()
            if not part.is_multipart() and part.get_content_maintype() not in ("text", "message")]


def plan_for(addresses: list[str]) -> Plan:
    aliases = {address: f"alias{i:011d}x@relay.test" for i, address in enumerate(addresses)}
    return Plan(
        sender_name="Seller", sender_alias="sellerxxxxxxxxxx@relay.test", recipient_address="buyer@example.net",
        message_id="<m@relay.test>", in_reply_to=(), references=(), scrubber=AddressScrubber(aliases),
        domain="relay.test", cid_key=b"k" * 16,
    )


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_message_is_rewritten_without_leaking(path):
    raw = as_transmitted(path)
    addresses = party_addresses(raw)
    try:
        outgoing = prepare(raw, plan_for(addresses), NO_FILTERS, FACTS, "en")
    except MalformedMessage:
        return  # refused with a reason: acceptable for broken input, a crash is not
    assert outgoing.leaks == ()
    # Binary parts change only by losing their author's metadata (relay/metadata.py).
    assert binary_payloads(outgoing.message) == [scrubbed("", "", data) or data for data in binary_payloads(raw)]
    # Every filter reads it too, without crashing, whatever it decides.
    judged = prepare(raw, plan_for(addresses), ALL_FILTERS, FACTS, "en")
    assert judged.judgement.bounce or judged.leaks == ()


def test_the_corpus_is_there():
    assert len(CORPUS) >= 30


def test_hostile_nesting_is_refused_not_crashed():
    depth = 200
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%dz"\r\n\r\n--b%dz\r\n' % (i, i) for i in range(depth))
    with pytest.raises(MalformedMessage, match="nested more than"):
        prepare(b"Subject: deep\r\n" + head + b"\r\ntext\r\n", plan_for([]), NO_FILTERS, FACTS, "en")


def test_a_flood_of_parts_is_refused_not_chewed_on():
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(1001))
    raw = b'Subject: many\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    with pytest.raises(MalformedMessage, match="more than 1000 MIME parts"):
        prepare(raw, plan_for([]), NO_FILTERS, FACTS, "en")

