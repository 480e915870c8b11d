"""Hostile and unusual MIME that once let an address through, found in review; each is now a regression test.

Most call relay.worker.prepare directly (as tests/test_corpus.py does): `outgoing.leaks`
is the independent leak check's verdict, `outgoing.message` what would leave. A leak
the check catches is refused (550 5.7.0) and safe, so each leak test asserts
"the check caught it, or the recipient cannot read the address".
"""
from __future__ import annotations

import base64
import email
import html
import re
from email.header import decode_header
from email.policy import compat32

import aiosmtplib
import pytest
from conftest import NO_POLICY, SELLER, crlf

from filters.settings import FiltersConfig
from filters.view import Facts
from relay.rewrite import Plan
from relay.scrub import AddressScrubber
from relay.worker import prepare

ANN = "ann@example.com"            # the buyer's real address
ANN_ALIAS = "annalias0000000x@relay.test"
SHOP = "orders@shop.example"       # the seller's real address
SHOP_ALIAS = "shopalias000000x@relay.test"

NO_FILTERS = FiltersConfig(**{rule: {"enabled": False} for rule in FiltersConfig.model_fields})
FACTS = Facts(direction="seller_to_buyer", conversation_aliases=frozenset({ANN_ALIAS, SHOP_ALIAS}),
              party_addresses=frozenset({ANN, SHOP}), replies_to_buyer=True, buyer_has_written=True)


def plan() -> Plan:
    return Plan(
        sender_name="Shop", sender_alias=SHOP_ALIAS, recipient_address="buyer@example.net",
        message_id="<m@relay.test>", in_reply_to=(), references=(),
        scrubber=AddressScrubber({ANN: ANN_ALIAS, SHOP: SHOP_ALIAS}), domain="relay.test", cid_key=b"k" * 16,
    )


def rewrite(text: bytes, filters: FiltersConfig = NO_FILTERS):
    raw = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return prepare(raw, plan(), filters, FACTS, "en")


def parsed(message: bytes):
    return email.message_from_bytes(message, policy=compat32)


# -- 1. CRITICAL leak past the check: RFC 2231 parameters ---------------------------------------

def test_rfc2231_encoded_filename_is_scrubbed():
    # ONCE: RFC 2231 parameter values (percent-encoding of any character, or
    # continuations name*0/name*1) are neither decoded by the rewrite
    # (_scrub_field only knows RFC 2047 and the %40 form) nor by the leak check
    # (it reads header values raw). Every client shows the decoded filename.
    out = rewrite(b"Subject: invoice\n"
                  b"MIME-Version: 1.0\n"
                  b"Content-Type: multipart/mixed; boundary=b\n\n"
                  b"--b\nContent-Type: text/plain\n\nSee attached.\n"
                  b"--b\n"
                  b"Content-Type: application/pdf; name*=utf-8''%61nn%40example.com%20invoice.pdf\n"
                  b"Content-Disposition: attachment; filename*0=\"ann\"; filename*1=\"@example.com invoice.pdf\"\n"
                  b"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
                  b"--b--\n")
    attachment = list(parsed(out.message).walk())[2]
    shown = [attachment.get_filename(), email.utils.collapse_rfc2231_value(attachment.get_param("name"))]
    assert out.leaks or not any(ANN in name for name in shown), shown


# -- 2. CRITICAL leak past the check: charsets that are not ASCII supersets --------------------

@pytest.mark.parametrize("charset, encode", [
    ("utf-7", lambda s: s.replace("@", "+AEA-").encode("ascii")),  # '@' written +AEA- (valid UTF-7)
    ("unicode", lambda s: s.encode("utf-16-le")),              # WHATWG label for UTF-16LE
    ("ucs-2", lambda s: s.encode("utf-16-le")),                # WHATWG label for UTF-16LE
    ("utf_16", lambda s: s.encode("utf-16")),                  # a Python spelling the prefix test misses
])
def test_text_in_non_ascii_compatible_charset_is_scrubbed(charset, encode):
    # ONCE: rewrite._scrub_text decodes only charsets starting utf-16/utf-32 and
    # scrubs every other charset byte-wise; leaks.py does the same. In UTF-7 or
    # UTF-16 (under any other label) the address has no ASCII '@' byte sequence.
    body = encode(f"Reach me at {ANN} please")
    out = rewrite(b"Subject: x\nMIME-Version: 1.0\n"
                  b"Content-Type: text/plain; charset=" + charset.encode() + b"\n"
                  b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(body))
    payload = parsed(out.message).get_payload(decode=True)
    codec = {"unicode": "utf-16-le", "ucs-2": "utf-16-le"}.get(charset, charset)
    assert out.leaks or ANN not in payload.decode(codec), payload.decode(codec)


# -- 3. CRITICAL leak past the check: multipart epilogue (and undecodable bodies) ---------------

def test_multipart_epilogue_is_scrubbed():
    # ONCE: _rewrite_multipart scrubs the preamble but copies the epilogue (the
    # text after the close delimiter) untouched; leaks.py never looks at
    # preamble/epilogue. The recipient sees it in "view source".
    out = rewrite(b"Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
                  b"--b\nContent-Type: text/plain\n\nhi\n--b--\n"
                  b"-- \nAnn, ann@example.com\n")
    assert out.leaks or ANN.encode() not in out.message


def test_text_body_with_broken_base64_is_scrubbed_as_it_is():
    # ONCE (same class): a text part declared base64 whose body is plain text
    # decodes to garbage, the scrub changes nothing, and _transcode returns the
    # ORIGINAL bytes; the stdlib decoding in the check also sees garbage.
    out = rewrite(b"Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
                  b"Reach me: ann@example.com\n")
    assert out.leaks or ANN.encode() not in out.message


# -- 4. HIGH leak past the check: obsolete "Name :" header syntax --------------------------------

def test_obsolete_header_syntax_is_read_like_a_reader_does():
    # ONCE: mime.parse_entity accepts "Content-Transfer-Encoding : base64" (WSP
    # before the colon, RFC 5322 4.5 obs-optional, which receivers MUST accept)
    # as an allowed field and copies it out, but the stdlib header parser used
    # for entity.headers (and by the leak check) stops reading headers there, so
    # neither the rewrite nor the check decodes the base64 body. A conforming
    # reader does.
    out = rewrite(b"Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                  b"Content-Transfer-Encoding : base64\n\n"
                  + base64.b64encode(b"Reach me at ann@example.com") + b"\n")
    assert b"Content-Transfer-Encoding: base64" in out.message  # written the modern way, and read
    conforming = parsed(re.sub(rb"(?m)^([!-9;-~]+)[ \t]+:", rb"\1:", out.message))
    assert out.leaks or ANN.encode() not in conforming.get_payload(decode=True)


# -- 5. HIGH leak past the check: HTML character references the scrubber does not know ---------

@pytest.mark.parametrize("written", [
    "ann&#64example.com",        # numeric reference without ';' (HTML5 parsers decode it)
    "&#97;nn@example.com",       # any other character as a reference
    "ann@example&#46;com",
])
def test_html_character_references_are_scrubbed(written):
    # ONCE: scrub._AT knows only &#64; &#x40; &commat; (with ';') and nothing
    # else; leaks.py does not unescape HTML. Every HTML client renders these
    # as the address. (buyer_to_seller: no content rule runs by default.)
    out = rewrite(b"Subject: x\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
                  b"<p>Write to " + written.encode() + b"</p>\n")
    rendered = html.unescape(parsed(out.message).get_payload(decode=True).decode())
    assert out.leaks or ANN not in rendered, rendered


def test_seller_own_address_as_html_references_becomes_the_alias():
    # ONCE (same): in the seller's direction the contact rule reads the HTML
    # with entities decoded, sees the seller's own real address, allows it
    # ("the rewrite turns it into the alias"), but the rewrite does not.
    out = rewrite(b"Subject: x\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
                  b"<p>Write to &#111;rders@shop.example</p>\n", FiltersConfig())
    assert out.judgement.bounce is None  # the policy lets it through
    rendered = html.unescape(parsed(out.message).get_payload(decode=True).decode())
    assert out.leaks or SHOP not in rendered, rendered


# -- 6. MEDIUM crash: malformed encoded words give 451 + traceback instead of a 5xx ------------

@pytest.mark.parametrize("subject", [b"=?utf-8?b?Y?=", b"=?utf\xff8?q?hi?="])
def test_malformed_encoded_word_does_not_crash_the_worker(subject):
    # ONCE: view.decoded_header (also rewrite._scrub_field, leaks._header_text)
    # catch ValueError/LookupError/UnicodeError, but decode_header raises
    # email.errors.HeaderParseError and make_header raises CharsetError (both
    # MessageError, not ValueError).
    out = rewrite(b"Subject: " + subject + b"\nContent-Type: text/plain\n\nhi\n")
    assert out.message is not None


@pytest.fixture
def relay_sections():
    return {"filters": NO_POLICY}


async def test_malformed_encoded_word_is_no_temporary_error_over_smtp(relay, sink, conversation):
    # ONCE (as above, end to end): the client gets "451 4.3.0 Temporary local
    # problem" and will retry the same bytes forever; it should be a 5xx.
    from conftest import send
    message = crlf(f"From: {SELLER}\nTo: {conversation.buyer_alias}\nSubject: =?utf-8?b?Y?=\n\nhello\n")
    try:
        await send(relay, SELLER, conversation.buyer_alias, message)
    except aiosmtplib.SMTPDataError as exc:
        assert exc.code >= 500, f"{exc.code} {exc.message}"


# -- 7. MEDIUM corruption: an address in an RFC 2047 filename wrecks Content-Type -------------

def test_encoded_word_filename_with_address_keeps_content_type():
    # ONCE: _scrub_field re-encodes the WHOLE field value as one RFC 2047
    # encoded word; for Content-Type/Content-Disposition (structured fields)
    # that destroys the media type, the boundary and the filename.
    out = rewrite(b"Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
                  b"--b\nContent-Type: text/plain\n\nhi\n"
                  b"--b\nContent-Type: application/pdf; name=\"=?utf-8?q?ann=40example.com_invoice.pdf?=\"\n"
                  b"Content-Disposition: attachment; filename=\"=?utf-8?q?ann=40example.com_invoice.pdf?=\"\n"
                  b"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b--\n")
    attachment = list(parsed(out.message).walk())[2]
    assert attachment.get_content_type() == "application/pdf", attachment["Content-Type"]
    assert attachment.get_content_disposition() == "attachment", attachment["Content-Disposition"]


# -- 8. MEDIUM filter bypass: the Subject is never read by the content rules ------------------

@pytest.mark.parametrize("subject", [b"write me at joe.private@gmail.com", b"cheaper on www.myshop-direct.com"])
def test_contact_and_links_rules_read_the_subject(subject):
    # ONCE: filters.pipeline judges readable(view.texts, view.htmls) only;
    # view.subject (and attachment filenames) never reach contact/links.
    body_out = rewrite(b"Subject: x\nContent-Type: text/plain\n\n" + subject + b"\n", FiltersConfig())
    assert body_out.judgement.bounce is not None  # the same words in the body are caught
    out = rewrite(b"Subject: " + subject + b"\nContent-Type: text/plain\n\nThanks for your order.\n", FiltersConfig())
    assert out.judgement.bounce is not None


# -- 9. LOW/MEDIUM leak past the check: encoded word in a charset Python does not know ------

def test_encoded_word_in_unknown_charset_is_scrubbed():
    # ONCE: make_header raises LookupError for a charset Python lacks (here the
    # WHATWG label unicode-1-1-utf-8 = UTF-8, which encoding_rs-based clients
    # decode); _scrub_field and leaks._header_text then fall back to the raw
    # field, where the address is Q-encoded (ann=40example.com).
    out = rewrite(b"Subject: =?unicode-1-1-utf-8?q?write_to_ann=40example.com?=\nContent-Type: text/plain\n\nhi\n")
    [(word, _)] = decode_header(parsed(out.message)["Subject"])
    assert out.leaks or ANN not in word.decode("utf-8")


# -- 10. LOW leak past the check: an address directly followed by ".word" ------------------

@pytest.mark.parametrize("text", [b"Reach me: ann@example.com.Thanks, Ann", b"see ann@example.com.pdf"])
def test_address_followed_by_dot_and_letters_is_replaced(text):
    # ONCE: scrub._AFTER refuses a match followed by "." + alphanumeric (meant
    # for longer domains), so a missing space after the full stop, or a file
    # name, leaves the real address readable; the check uses the same pattern.
    out = rewrite(b"Subject: x\nContent-Type: text/plain\n\n" + text + b"\n")
    assert out.leaks or ANN.encode() not in out.message
