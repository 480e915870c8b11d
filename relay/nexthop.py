"""Handing a message to a next hop: the one way anything leaves the relay.

The next hop is `[delivery] smarthost` when it is set, otherwise the
recipient domain's mail exchangers in preference order, each by its A and
AAAA addresses (RFC 5321 5). A host that cannot be reached, or greets with a
4xx, gives way to the next; the first one that answers the transaction
decides. STARTTLS is used when offered (required with `[delivery]
require_tls`). Connections stay open for the next message to the same host,
for `idle_seconds`.

The envelope is always given explicitly: the sender is a bounce address (or
<> ), the recipients are passed in, never read from the message's To/Cc/Bcc.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import aiosmtplib

from .config import DeliveryConfig
from .resolver import DnsFailure, Resolver

_KEEP_PER_HOST = 4


@dataclass(frozen=True)
class NextHopAnswer:
    accepted: bool
    permanent: bool
    text: str
    """What the next hop said, e.g. '250 2.0.0 Ok: queued', or why it could not be reached; one line."""
    host: str = ""


def _one_line(text: str) -> str:
    """A multi-line reply as one log-safe line: its lines joined with " | ", control characters gone."""
    lines = [" ".join("".join(c if c.isprintable() else " " for c in line).split()) for line in text.splitlines()]
    return " | ".join(line for line in lines if line)[:2000]


class _Unreachable(Exception):
    """This host could not take the message now: try the next one."""


class NextHops:
    def __init__(self, config: DeliveryConfig, helo: str, resolver: Resolver):
        self.config = config
        self.helo = helo
        self.resolver = resolver
        self._idle: dict[tuple[str, int], list[tuple[aiosmtplib.SMTP, float]]] = {}
        context = ssl.create_default_context()
        if not config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # opportunistic TLS, as MTAs deliver between themselves
        self._tls = context

    async def route(self, recipient: str) -> list[tuple[str, int]]:
        """Where to take mail for recipient: (address or host, port) in the order to try."""
        if self.config.smarthost:
            return [(self.config.host, self.config.port)]
        domain = recipient.rpartition("@")[2].strip("[]").lower()
        hops = []
        for exchanger in await self.resolver.exchangers(domain):
            hops += [(address, self.config.mx_port) for address in await self.resolver.addresses(exchanger.host)]
        if not hops:
            raise DnsFailure(f"{domain}: its mail hosts have no addresses", permanent=True)
        return hops

    async def send(self, *, envelope_from: str, recipients: list[str], message: bytes,
                   smtputf8: bool = False) -> NextHopAnswer:
        """Deliver one message and report the next hop's answer; never raises for SMTP or DNS trouble."""
        try:
            hops = await self.route(recipients[0])
        except DnsFailure as exc:
            return NextHopAnswer(False, exc.permanent, _one_line(f"DNS: {exc}"))
        reasons = []
        for host, port in hops:
            try:
                return await self._send_via(host, port, envelope_from, recipients, message, smtputf8)
            except _Unreachable as exc:
                reasons.append(f"{host}:{port}: {exc}")
        return NextHopAnswer(False, False, _one_line("; ".join(reasons) or "no next hop"))

    async def _send_via(self, host: str, port: int, envelope_from: str, recipients: list[str], message: bytes,
                        smtputf8: bool) -> NextHopAnswer:
        for reused in (True, False):
            client = await self._client(host, port, reuse=reused)
            try:
                answer = await self._transaction(client, envelope_from, recipients, message, smtputf8)
            except aiosmtplib.SMTPServerDisconnected:
                client.close()
                if reused:
                    continue  # an idle connection the host had closed: once more on a new one
                raise _Unreachable("connection lost") from None
            except aiosmtplib.SMTPResponseException as exc:
                await self._keep_or_close(host, port, client, reset=True)
                return NextHopAnswer(False, exc.code >= 500, _one_line(f"{exc.code} {exc.message}"), host)
            except (aiosmtplib.SMTPException, OSError) as exc:
                client.close()
                raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
            await self._keep_or_close(host, port, client)
            return NextHopAnswer(True, False, _one_line(f"{answer.code} {answer.message}"), host)
        raise _Unreachable("no connection")

    async def _client(self, host: str, port: int, reuse: bool) -> aiosmtplib.SMTP:
        if reuse:
            idle = self._idle.get((host, port), [])
            while idle:
                client, since = idle.pop()
                if client.is_connected and time.monotonic() - since < self.config.idle_seconds:
                    return client
                client.close()
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=self.config.timeout, local_hostname=self.helo,
                                 start_tls=False)
        try:
            await client.connect()
            await client.ehlo()
            if client.supports_extension("starttls"):
                await client.starttls(tls_context=self._tls)
                await client.ehlo()
            elif self.config.require_tls:
                raise _Unreachable("TLS is required ([delivery] require_tls) and the host does not offer STARTTLS")
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise _Unreachable(f"{exc.code} {exc.message}") from None  # a 4xx or 5xx greeting: the next host
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
        except _Unreachable:
            client.close()
            raise
        return client

    async def _transaction(self, client: aiosmtplib.SMTP, envelope_from: str, recipients: list[str],
                           message: bytes, smtputf8: bool):
        encoding = "utf-8" if smtputf8 else "ascii"
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
        return await client.data(message)

    async def _keep_or_close(self, host: str, port: int, client: aiosmtplib.SMTP, reset: bool = False) -> None:
        idle = self._idle.setdefault((host, port), [])
        if not client.is_connected or len(idle) >= _KEEP_PER_HOST:
            client.close()
            return
        if reset:
            try:
                await client.rset()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
                return
        idle.append((client, time.monotonic()))

    async def close(self) -> None:
        for idle in self._idle.values():
            for client, _ in idle:
                try:
                    await asyncio.wait_for(client.quit(), 2)
                except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                    client.close()
        self._idle.clear()
