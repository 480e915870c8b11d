"""DKIM signing (relay/signing.py): what dkimpy's verifier accepts, and what it must refuse."""
from __future__ import annotations

from pathlib import Path

import dkim
import pytest

from relay.signing import Signer, SigningKeyError, new_key, read_signer, relaxed_body, txt_record

DATA = Path(__file__).parent / "data"
PEM, PUBLIC = new_key()
MESSAGE = (b"From: Shop <a1b2c3d4e5f6g7h8@relay.test>\r\nTo: ann@example.com\r\nSubject: Your order\r\n"
           b"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <0123@relay.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello  \t there \r\n\r\n\r\n")


def record(name, timeout=5):
    assert name == b"relay._domainkey.relay.test."
    return f"v=DKIM1; k=rsa; p={PUBLIC}".encode()


def test_a_signed_message_verifies_with_dkimpy():
    signed = Signer("relay.test", "relay", PEM).sign(MESSAGE)
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=relay.test;")
    assert dkim.verify(signed, dnsfunc=record)


@pytest.mark.parametrize("change", [
    lambda m: m.replace(b"Your order", b"Your 0rder"),                       # a signed field
    lambda m: m.replace(b"Hello", b"Hallo"),                                 # the body
    lambda m: m.replace(b"Subject:", b"From: evil@attacker.example\r\nSubject:", 1),  # a second From
])
def test_a_change_on_the_way_breaks_the_signature(change):
    signed = Signer("relay.test", "relay", PEM).sign(MESSAGE)
    assert not dkim.verify(change(signed), dnsfunc=record)


def test_relaxed_body_is_dkimpys_on_real_messages():
    policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    bodies = [b"", b"\r\n", b"a", b"a  ", b"a \t \r\n", b"a\r\n\r\n\r\n", b" \r\n", b"\t\r\n \r\n", b"x \t y\r\nz \r\n"]
    bodies += [p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for p in DATA.rglob("*.eml")]
    assert [relaxed_body(b) for b in bodies] == [policy.canonicalize_body(b) for b in bodies]


def test_an_unusable_key_is_one_clear_sentence(tmp_path):
    with pytest.raises(SigningKeyError, match="cannot read the DKIM key"):
        read_signer("relay.test", "relay", tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        read_signer("relay.test", "relay", tmp_path / "bad.key")


def test_the_txt_record_holds_the_public_key_in_short_strings():
    line = txt_record("relay.test", "relay", PUBLIC)
    assert line.startswith("relay._domainkey.relay.test. IN TXT (")
    strings = line.split('"')[1::2]
    assert all(len(s) <= 255 for s in strings) and "".join(strings) == f"v=DKIM1; k=rsa; p={PUBLIC}"
