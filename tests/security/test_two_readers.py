"""Issue 13.4: where the relay's splitter and another reader could see different parts.

Either the message is refused (`550 5.6.0`, nothing forwarded), or what only
some readers would see is judged or taken out, so that everyone after the
relay reads the same parts the filters judged.
"""
from __future__ import annotations

import email
from email.policy import default as default_policy

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, crlf, open_conversation, send, settled
from test_files_hidden_in_text import EXE

HEAD = f"From: Shop <{SELLER}>\nSubject: Your order\nDate: Wed, 02 Dec 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
EXE_B64 = __import__("base64").encodebytes(EXE).decode()


def _part(text: str, boundary: str) -> str:
    return f"--{boundary}\nContent-Type: text/plain\n\n{text}\n"


def _exe_part(boundary: str, name: str = "tool.exe") -> str:
    return (f"--{boundary}\nContent-Type: application/octet-stream; name={name}\n"
            f"Content-Transfer-Encoding: base64\n\n{EXE_B64}")


AMBIGUOUS = {
    "the boundary parameter given twice":
        'Content-Type: multipart/mixed; boundary="a1"; boundary="b2"\n\n'
        + _part("Hello", "a1") + _exe_part("b2") + "--a1--\n--b2--\n",
    "two Content-Type fields":
        'Content-Type: multipart/mixed; boundary="a1"\nContent-Type: multipart/mixed; boundary="b2"\n\n'
        + _part("Hello", "a1") + _exe_part("b2") + "--a1--\n--b2--\n",
    "a nested boundary that extends the outer one":
        'Content-Type: multipart/mixed; boundary="abc"\n\n' + _part("Hello", "abc")
        + '--abc\nContent-Type: multipart/mixed; boundary="abcd"\n\n' + _exe_part("abcd") + "--abcd--\n--abc--\n",
    "an outer boundary that extends the nested one":
        'Content-Type: multipart/mixed; boundary="abcd"\n\n' + _part("Hello", "abcd")
        + '--abcd\nContent-Type: multipart/mixed; boundary="abc"\n\n' + _part("inner", "abc") + "--abc--\n--abcd--\n",
    "a line that starts like the boundary":
        'Content-Type: multipart/mixed; boundary="sep"\n\n' + _part("Hello", "sep")
        + "--sep-not-quite\nContent-Type: application/octet-stream\n\nMZ\n--sep--\n",
    "a multipart encoded as base64":
        'Content-Type: multipart/mixed; boundary="sep"\nContent-Transfer-Encoding: base64\n\n'
        + __import__("base64").encodebytes(crlf(_part("Hello", "sep") + _exe_part("sep") + "--sep--\n")).decode(),
    "a multipart with only its closing boundary":
        'Content-Type: multipart/mixed; boundary="sep"\n\n' + "Hello, see https://elsewhere.example\n--sep--\n",
}


@pytest.mark.parametrize("body", AMBIGUOUS.values(), ids=list(AMBIGUOUS))
async def test_a_message_readers_could_split_differently_is_refused(relay, sink, body):
    opened = await open_conversation(relay)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(relay, SELLER, opened.buyer_alias, crlf(HEAD + body))
    assert refused.value.code == 550 and refused.value.message.startswith("5.6.0")
    await settled(relay)
    assert sink.messages == []


UNION = {
    "a file before the first delimiter":
        'Content-Type: multipart/mixed; boundary="sep"\n\n'
        "Content-Type: application/octet-stream; name=tool.exe\nContent-Transfer-Encoding: base64\n\n"
        + EXE_B64 + _part("Hello", "sep") + "--sep--\n",
    "a part after the closing delimiter":
        'Content-Type: multipart/mixed; boundary="sep"\n\n' + _part("Hello", "sep") + "--sep--\n"
        + _exe_part("sep") + "--sep--\n",
    "a missing closing delimiter":
        'Content-Type: multipart/mixed; boundary="sep"\n\n' + _part("Hello", "sep") + _exe_part("sep"),
}


@pytest.mark.parametrize("body", UNION.values(), ids=list(UNION))
async def test_what_only_some_readers_see_is_judged_or_taken_out(relay, sink, body):
    opened = await open_conversation(relay)
    await send(relay, SELLER, opened.buyer_alias, crlf(HEAD + body))
    delivered = [m for m in await sink.wait_for(1) if m.rcpt_tos == [BUYER]]
    await settled(relay)
    [message] = delivered
    assert EXE_B64.splitlines()[0].encode() not in message.content
    assert b"MZ" not in b"".join(p.get_payload(decode=True) or b"" for p in email.message_from_bytes(
        message.content, policy=default_policy).walk() if not p.is_multipart())
    # What the buyer gets ends its multipart properly, so no later reader finds more in it.
    shown = email.message_from_bytes(message.content, policy=default_policy)
    assert not [defect for part in shown.walk() for defect in part.defects]
    assert "Hello" in message.content.decode()
