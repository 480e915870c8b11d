"""Handing a message to the next hop: the one way anything leaves the relay.

Forwards and notices both go through `send`, so envelope rules live in
one place: the envelope sender is always given explicitly (an alias, or the
null sender <> for notices) and the recipients are passed in, never read from
the message's To/Cc/Bcc.
"""
from __future__ import annotations

from dataclasses import dataclass

import aiosmtplib

from .config import DeliveryConfig


@dataclass(frozen=True)
class NextHopAnswer:
    accepted: bool
    permanent: bool
    text: str
    """What the next hop said, e.g. '250 2.0.0 Ok: queued', or why it could not be reached."""


async def send(
    hop: DeliveryConfig, *, envelope_from: str, recipients: list[str], message: bytes,
    helo: str, smtputf8: bool = False,
) -> NextHopAnswer:
    """Deliver one message to the next hop and report its answer; never raises for SMTP trouble."""
    client = aiosmtplib.SMTP(
        hostname=hop.host, port=hop.port, timeout=hop.timeout, local_hostname=helo, start_tls=False,
    )
    encoding = "utf-8" if smtputf8 else "ascii"
    try:
        await client.connect()
        try:
            await client.ehlo()
            options = []
            if client.supports_extension("size"):
                options.append(f"SIZE={len(message)}")
            if smtputf8:
                options.append("SMTPUTF8")
            if client.supports_extension("8bitmime") and not message.isascii():
                options.append("BODY=8BITMIME")
            await client.mail(envelope_from, options=options, encoding=encoding)
            for recipient in recipients:
                await client.rcpt(recipient, encoding=encoding)
            answer = await client.data(message)
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    except aiosmtplib.SMTPResponseException as exc:
        return NextHopAnswer(False, exc.code >= 500, _one_line(f"{exc.code} {exc.message}"))
    except (aiosmtplib.SMTPException, OSError) as exc:
        return NextHopAnswer(False, False, _one_line(f"{hop.smarthost}: {exc.__class__.__name__}: {exc}"))
    return NextHopAnswer(True, False, _one_line(f"{answer.code} {answer.message}"))


def _one_line(text: str) -> str:
    """A multi-line reply as one log-safe line: its lines joined with " | ", control characters gone."""
    lines = [" ".join("".join(c if c.isprintable() else " " for c in line).split()) for line in text.splitlines()]
    return " | ".join(line for line in lines if line)[:2000]
