"""Issue 11.5: whatever a reader would read as a party's address is replaced, or the message is stopped.

A sender may write their own address, which the contact rule rightly lets
through because the rewrite turns it into the alias; the rewrite must then
find it however it is written. Each case is judged by tests/reader.py, a
reader that shares no code with the relay.
"""
from __future__ import annotations

import base64

import pytest
from conftest import BUYER, SELLER, bounce_address, crlf, send
from reader import readable_addresses

from filters.settings import FiltersConfig
from filters.view import Facts
from relay.rewrite import Plan
from relay.scrub import AddressScrubber
from relay.worker import prepare

SHOP = "kasimir.seller@sellerworks.example"
SHOP_ALIAS = "shopalias000000x@relay.test"
ANN = "ann@example.com"
ANN_ALIAS = "annalias0000000x@relay.test"
FACTS = Facts(direction="seller_to_buyer", conversation_aliases=frozenset({ANN_ALIAS, SHOP_ALIAS}),
              party_addresses=frozenset({ANN, SHOP}), replies_to_buyer=True, buyer_has_written=True)


def _plan() -> Plan:
    return Plan(sender_name="Shop", sender_alias=SHOP_ALIAS, recipient_address="buyer@example.net",
                message_id="<m@relay.test>", in_reply_to=(), references=(),
                scrubber=AddressScrubber({ANN: ANN_ALIAS, SHOP: SHOP_ALIAS}), domain="relay.test", cid_key=b"k" * 16)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


SPELLINGS = {
    "soft hyphen": "kasimir.sel\u00adler@sellerworks.example",
    "zero-width space": "kasi\u200bmir.seller@seller\u200bworks.example",
    "word joiner": "kasimir\u2060.seller@sellerworks\u2060.example",
    "zero-width non-joiner and BOM": "k\u200casimir.seller@\ufeffsellerworks.example",
    "fullwidth letters": _fullwidth(SHOP),
    "fullwidth at sign": "kasimir.seller\uff20sellerworks.example",
    "small at sign": "kasimir.seller\ufe6bsellerworks.example",
    "Kelvin sign": "\u212aasimir.seller@sellerworks.example",
    "mixed case": "Kasimir.Seller@SellerWorks.Example",
    "control characters": "kasimir.sel\x00ler@seller\x7fworks.example",
}


def _message(body: str, content_type: str = "text/plain; charset=utf-8", subject: str = "Your order") -> bytes:
    encoded = base64.encodebytes(body.encode("utf-8")).decode("ascii")
    return crlf(f"Subject: {subject}\nMIME-Version: 1.0\nContent-Type: {content_type}\n"
                f"Content-Transfer-Encoding: base64\n\n{encoded}")


def _leaves_no_real_address(raw: bytes, filters: FiltersConfig = FiltersConfig()):
    out = prepare(raw, _plan(), filters, FACTS, "en")
    assert out.judgement.bounce is None, out.judgement
    if out.leaks:
        return out  # stopped by the leak check: nothing leaves, which is safe
    assert not readable_addresses(out.message, [SHOP, ANN]), out.message.decode("utf-8", "replace")
    return out


@pytest.mark.parametrize("how", SPELLINGS)
def test_a_disguised_own_address_in_plain_text_becomes_the_alias(how):
    out = _leaves_no_real_address(_message(f"Write to me at {SPELLINGS[how]} any time."))
    assert not out.leaks, f"the rewrite should have replaced it, not left it for the check ({out.leaks})"
    assert SHOP_ALIAS.encode() in base64.b64decode(out.message.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize("html", [
    "<p>Write to kasi<span></span>mir.seller@sellerworks.example</p>",
    "<p>Write to kasimir.seller<!-- hidden -->@sellerworks.example</p>",
    "<p>Write to <b>kasimir</b>.seller@<i>sellerworks</i>.example</p>",
    "<p>Write to kasimir&#46;seller&#x40;sellerworks&period;example</p>",
    "<p>Write to kasimir.seller&#64sellerworks.example</p>",
    "<p>Write to k&shy;asimir.seller@sellerworks.example</p>",
    "<p>Write to \uff4basimir.seller\uff20sellerworks.example</p>",
])
def test_an_address_split_or_disguised_by_html_is_replaced(html):
    out = _leaves_no_real_address(_message(html, "text/html; charset=utf-8"))
    assert not out.leaks, out.leaks


def test_html_keeps_its_tags_paired_around_the_alias():
    out = _leaves_no_real_address(_message("<p>Write to <b>kasimir</b>.seller@sellerworks.example</p>",
                                           "text/html; charset=utf-8"))
    html = base64.b64decode(out.message.split(b"\r\n\r\n", 1)[1]).decode()
    assert html.count("<b>") == html.count("</b>") == 1 and SHOP_ALIAS in html, html


@pytest.mark.parametrize("content_type, filename", [
    ("application/octet-stream", "notes.txt"),
    ("application/octet-stream", "NOTES.TXT"),
    ("text/plain", "notes.txt"),
])
def test_a_text_file_is_read_as_text_whatever_its_declared_type(content_type, filename):
    note = base64.encodebytes(f"My mail: {SPELLINGS['fullwidth letters']} or {SHOP}\n".encode()).decode()
    raw = crlf("Subject: notes\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
               "--b\nContent-Type: text/plain\n\nSee the notes.\n"
               f"--b\nContent-Type: {content_type}\nContent-Disposition: attachment; filename={filename}\n"
               f"Content-Transfer-Encoding: base64\n\n{note}--b--\n")
    _leaves_no_real_address(raw, FiltersConfig(attachments={"enabled": False}))


@pytest.mark.parametrize("how", ["fullwidth letters", "zero-width space", "Kelvin sign"])
def test_a_disguised_address_in_the_subject_or_a_file_name_is_replaced(how):
    word = "=?utf-8?b?" + base64.b64encode(f"from {SPELLINGS[how]}".encode()).decode() + "?="
    raw = crlf(f"Subject: {word}\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
               "--b\nContent-Type: text/plain\n\nAttached.\n"
               f"--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"{word}.pdf\"\n"
               "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b--\n")
    out = _leaves_no_real_address(raw)
    assert not out.leaks, out.leaks


@pytest.mark.parametrize("charset", ["utf-16", "utf-32", "x-unknown"])
def test_an_address_in_html_attributes_is_replaced_whatever_the_charset_label_says(charset):
    """Found by the fuzzer: ASCII bytes labelled UTF-16 read as nothing in the label's charset, but "show
    original" reads them as UTF-8, attributes included; the image the cid: named had been removed."""
    raw = crlf("Subject: proof\nMIME-Version: 1.0\nContent-Type: multipart/related; boundary=b\n\n"
               f"--b\nContent-Type: text/html; charset={charset}\n\n"
               f'<p><img src="cid:{SHOP}" alt="proof"> <a title="{SHOP}" href="#">contact</a></p>\n'
               "--b\nContent-Type: image/png; name=proof.png\nContent-Transfer-Encoding: base64\n\nAAAA\n--b--\n")
    out = _leaves_no_real_address(raw)
    assert not out.leaks, out.leaks


async def test_over_smtp_the_buyer_reads_only_the_alias(relay, sink, conversation):
    body = (f"Hello, my address is {_fullwidth(SELLER)}, or o\u00adrders@seller-shop.example, "
            f"or <b>orders</b>@seller-shop.example.")
    html = f"<p>{body}</p>"
    raw = crlf(f"From: Shop <{SELLER}>\nTo: {conversation.buyer_alias}\nSubject: Order\nMIME-Version: 1.0\n"
               "Content-Type: multipart/alternative; boundary=alt\n\n"
               f"--alt\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
               f"--alt\nContent-Type: text/html; charset=utf-8\n\n{html}\n--alt--\n")
    await send(relay, SELLER, conversation.buyer_alias, raw)
    [delivered] = await sink.wait_for(1)
    assert not readable_addresses(delivered.content, [SELLER])
    assert delivered.content.count(conversation.seller_alias.encode()) >= 4


@pytest.mark.parametrize("spelling", ["ORDERS@SELLER-SHOP.EXAMPLE", "\uff4frders@seller-shop.example",
                                      "orders@seller-sh\u00adop.example"])
async def test_the_counterpart_is_recognised_the_way_its_address_reads(relay, sink, conversation, spelling):
    # One comparison decides both "is this the counterpart?" and "is this the
    # party's address in the text?": a spelling the rewrite replaces is the party.
    raw = crlf(f"From: {spelling}\nTo: {conversation.buyer_alias}\nSubject: hi\n\nHello from {spelling}\n")
    await send(relay, spelling, conversation.buyer_alias, raw, mail_options=[] if spelling.isascii() else ["SMTPUTF8"])
    [delivered] = await sink.wait_for(1)
    assert bounce_address(delivered.mail_from) and delivered.rcpt_tos == [BUYER]
    assert not readable_addresses(delivered.content, [SELLER])
