"""Issue 13.5: the relay's decisions and what it writes do not depend on email-package fixes this Python lacks.

Python 3.11.7 predates the fixes for CVE-2023-27043 (parseaddr and getaddresses
read some From values as another address than a client shows), CVE-2024-6923
(line breaks in header values written out as new header lines) and gh-121284
(specials in a display name left unquoted when folded). The relay reads From
with its own reader (relay/sender.py) and writes every header field itself, so
each test here sends the hostile value over SMTP and reads what left the relay.
"""
from __future__ import annotations

import email.header
import re
from email.utils import getaddresses

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, SELLER_DOMAIN, crlf, open_conversation, send
from test_policy import notice_parts

from relay.sender import shown_senders

BUYER_DOMAIN = BUYER.split("@")[1]
INJECTED = re.compile(rb"(?im)^(bcc|cc|x-injected|reply-to)\s*:")

# From values a buyer could use to look like someone else (each shows another address where a client may).
AS_THE_SELLER = {
    "the CVE's shape: stdlib reads the first": f"{BUYER})<{SELLER}>",
    "text after the bracket": f"<{BUYER}>{SELLER}",
    "a quoted local part that is an address": f'"{SELLER}"@{BUYER_DOMAIN}',
    "a comment shown as the name": f"{BUYER} ({SELLER})",
    "a second @": f"{SELLER.split('@')[0]}@{BUYER_DOMAIN}@{SELLER_DOMAIN}",
    "a comma inside a quoted name": f'"Ann, {SELLER}" <{BUYER}>',
    "a group": f"Shop: {BUYER}, {SELLER};",
    "an encoded word hiding the @": f"=?utf-8?b?{__import__('base64').b64encode(SELLER.encode()).decode()}?= <{BUYER}>",
}


def test_the_stdlib_here_misreads_some_of_them():
    """Why these cases matter on this Python: a decision taken from getaddresses would miss the seller."""
    missed = [name for name, value in AS_THE_SELLER.items()
              if SELLER not in [address for _, address in getaddresses([value])]]
    assert missed, "every case is read right by this Python's email package: the test cases need renewing"
    for value in AS_THE_SELLER.values():
        assert set(shown_senders(value)) - {BUYER}, value


@pytest.mark.parametrize("from_value", AS_THE_SELLER.values(), ids=AS_THE_SELLER.keys())
async def test_a_from_the_stdlib_misreads_is_judged_as_a_client_shows_it(relay, sink, from_value):
    opened = await open_conversation(relay)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay, BUYER, opened.seller_alias, crlf(f"From: {from_value}\nSubject: hi\n\nHello\n"))
    assert refused.value.code == 550 and refused.value.message.startswith("5.7.1")
    assert sink.messages == []


@pytest.mark.parametrize("from_value", [
    f'"Doe, Ann" <{BUYER}>',
    f"{BUYER} (Ann Buyer)",
    f"=?utf-8?q?Ann_M=C3=BCller?= <{BUYER}>",
    f"Ann <{BUYER.upper()}>",
])
async def test_an_honest_from_with_specials_is_still_accepted(relay, sink, from_value):
    opened = await open_conversation(relay)
    await send(relay, BUYER, opened.seller_alias, crlf(f"From: {from_value}\nSubject: hi\n\nHello\n"))
    [forwarded] = await sink.wait_for(1)
    assert forwarded.rcpt_tos == [SELLER]


def _top_fields(content: bytes) -> list[tuple[str, bytes]]:
    """The message's own header fields, unfolded, as a receiving MTA splits them."""
    head = content.split(b"\r\n\r\n", 1)[0]
    fields: list[list] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += line
        else:
            name, _, value = line.partition(b":")
            fields.append([name.decode("ascii").lower(), value])
    return [(name, value) for name, value in fields]


def _assert_no_injected_field(content: bytes) -> None:
    names = [name for name, _ in _top_fields(content)]
    assert not {"bcc", "cc", "x-injected", "reply-to"} & set(names), names
    assert names.count("from") == 1 and names.count("to") == 1 and names.count("subject") <= 1
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in names), names
    head = content.split(b"\r\n\r\n", 1)[0]
    assert not INJECTED.search(head) and b"\r\n\r\n" not in head and b"\n" not in head.replace(b"\r\n", b"")


BREAKS = {
    "raw CR LF": "\r\nBcc: evil@evil.example",
    "bare LF": "\nX-Injected: yes",
    "line separator": "\u2028Bcc: evil@evil.example",
}


@pytest.mark.parametrize("breaking", BREAKS.values(), ids=BREAKS.keys())
async def test_a_line_break_in_a_registered_name_never_makes_a_header(relay, sink, breaking):
    """Names come from the marketplace's backend; a shop name with a line break stays in From."""
    opened = await open_conversation(relay, buyer_name=f"Ann{breaking}", seller_name=f"Shop{breaking}")
    await send(relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: hi\n\nHello\n"))
    await send(relay, SELLER, opened.buyer_alias, crlf(f"From: {SELLER}\nSubject: re\n\nThanks\n"))
    for forwarded in await sink.wait_for(2):
        _assert_no_injected_field(forwarded.content)


ENCODED_SUBJECTS = {
    "q-encoded CR LF": "=?utf-8?q?Order_question=0D=0ABcc:_evil@evil.example?=",
    "b-encoded LF": "=?utf-8?b?" + __import__("base64").b64encode(b"Order question\nX-Injected: yes").decode() + "?=",
    "encoded CR LF CR LF (a body)": "=?utf-8?q?Order=0D=0A=0D=0Ahttp://evil.example?=",
}


@pytest.mark.parametrize("subject", ENCODED_SUBJECTS.values(), ids=ENCODED_SUBJECTS.keys())
async def test_an_encoded_line_break_in_a_subject_never_makes_a_header_in_the_forward_or_the_notice(
        relay, sink, subject):
    opened = await open_conversation(relay)
    await send(relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: {subject}\n\nHello\n"))
    # The seller's reply carries a link: it bounces, and the notice quotes the subject back.
    await send(relay, SELLER, opened.buyer_alias,
               crlf(f"From: {SELLER}\nSubject: Re: {subject}\n\nSee https://seller-shop.example/x\n"))
    forwarded, notice = sorted(await sink.wait_for(2), key=lambda m: m.rcpt_tos != [SELLER])
    for message in (forwarded, notice):
        _assert_no_injected_field(message.content)
    shown = dict(_top_fields(notice.content))["subject"].decode("ascii")
    decoded = "".join(text.decode(charset or "ascii") if isinstance(text, bytes) else text
                      for text, charset in email.header.decode_header(shown))
    assert "\r" not in decoded and "\n" not in decoded and "Order" in decoded
    assert not re.search(r"(?mi)^(bcc|x-injected|http)", notice_parts(notice)["text"])


NAMES = {
    "comma and quotes": 'Shop, "Best" Deals',
    "angle brackets and an at sign": "Shop <sales@elsewhere.example>",
    "semicolon and colon": "Team: Shop; Sales",
    "non-ASCII and long, folded": "Tienda de artesanía Ñandú " * 6,
    "text that looks like an encoded word": "=?utf-8?q?Bcc:_x@evil.example?=",
    "backslashes": "Shop \\\" , <x@y.example>",
}


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
async def test_a_display_name_with_specials_serialises_as_one_address_the_alias(relay, sink, name):
    opened = await open_conversation(relay, seller_name=name)
    await send(relay, SELLER, opened.buyer_alias, crlf(f"From: {SELLER}\nSubject: hi\n\nThanks\n"))
    [forwarded] = await sink.wait_for(1)
    _assert_no_injected_field(forwarded.content)
    value = dict(_top_fields(forwarded.content))["from"].decode("ascii")
    assert [address for _, address in getaddresses([value])] == [opened.seller_alias]
    assert shown_senders(value) == [opened.seller_alias]  # nor a name a reader could take for an address
