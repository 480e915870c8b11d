"""An SMTP session: aiosmtpd's, able to tell an idle client from one with a transaction under way,
and reading DATA in blocks rather than lines. LMTP (RFC 2033) is the same with LHLO for EHLO."""
from __future__ import annotations

import asyncio
import collections
import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError

from aiosmtpd.smtp import SMTP, syntax

from . import replies
from .config import LimitsConfig
from .limits import Connections

_SIZE = re.compile(r"(?i)(?:^|\s)SIZE=(\d{1,20})(?=\s|$)")
CRLF = b"\r\n"
_END_OF_DATA = b"\r\n.\r\n"
_BLOCK = 1 << 16
_XFORWARD_ATTRIBUTES = frozenset({"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"})
_XTEXT = re.compile(r"\+([0-9A-Fa-f]{2})")


class Sessions:
    """The open sessions, and a signal whenever one may have become idle or gone (for shutdown)."""

    def __init__(self) -> None:
        self.open: set[RelaySession] = set()
        self.changed = asyncio.Event()

    def __iter__(self):
        return iter(list(self.open))

    def __len__(self) -> int:
        return len(self.open)

    def add(self, session: RelaySession) -> None:
        self.open.add(session)

    def discard(self, session: RelaySession) -> None:
        self.open.discard(session)
        self.changed.set()


class RelaySession(SMTP):
    """aiosmtpd's session, able to tell an idle client from one with a transaction under way,
    and reading DATA in blocks rather than lines."""

    lmtp = False

    def __init__(self, handler, sessions: Sessions, trusts=lambda address: False, limits: LimitsConfig | None = None,
                 connections: Connections | None = None, require_tls: bool = False, **kwargs):
        # aiosmtpd keeps command_size_limits on the class, so one client's EHLO would raise the
        # command-length limit of every other session: each session gets its own.
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)
        super().__init__(handler, **kwargs)
        self.receiving = False
        self.sessions = sessions
        self._trusts = trusts
        self.trusted = False
        self.xforward: dict[str, str] = {}
        """What a trusted MTA in front said of its own client (Postfix's XFORWARD)."""
        self.limits = limits or LimitsConfig()
        self.require_tls = require_tls
        """Checked at MAIL, in the relay's words; aiosmtpd's own require_starttls answers without a status code."""
        self.connections = connections
        self.admitted: str | None = None
        self.errors = 0
        self.transactions = 0
        self._lifetime: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        if self._original_transport is not None:
            # aiosmtpd calls this again once STARTTLS is done: the session starts over (RFC 3207 4.2),
            # unencrypted bytes that were pipelined behind STARTTLS are discarded, and what a peer
            # said before TLS (XFORWARD) is forgotten. The connection was admitted already.
            super().connection_made(transport)
            self.xforward = {}
            return
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        client = peer[0] if peer else ""
        over = self.connections.admit(client) if self.connections is not None else None
        if over:
            # Before the greeting, and without a log line of its own (relay/limits.py sums them up).
            self.close_with(replies.BUSY() if over == "connections" else replies.TOO_MANY_CONNECTIONS())
            return
        self.admitted = client
        self.sessions.add(self)
        self.trusted = bool(peer) and self._trusts(client)
        self._lifetime = self.loop.call_later(self.limits.max_session_seconds, self.close_with,
                                              replies.SESSION_TOO_LONG())

    async def push(self, status) -> None:
        await super().push(status)
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        if text[:1] == "5":
            self.errors += 1
            if self.errors >= self.limits.max_errors_per_session:
                self.close_with(replies.TOO_MANY_ERRORS())

    @property
    def client_address(self) -> str:
        """The address the message came from: the peer's, or its client's when a trusted MTA forwards."""
        return self.xforward.get("ADDR") or (self.session.peer[0] if self.session and self.session.peer else "")

    @property
    def client_helo(self) -> str:
        return self.xforward.get("HELO") or (self.session.host_name or "" if self.session else "")

    @syntax("XFORWARD attribute=value ...")
    async def smtp_XFORWARD(self, arg: str) -> None:
        """Postfix's XFORWARD (smtp_send_xforward_command): believed from [server] trusted_peers only."""
        if not self.trusted:
            await self.push(replies.XFORWARD_REFUSED())
            return
        if self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: XFORWARD inside a transaction")
            return
        for attribute in (arg or "").split():
            name, equals, value = attribute.partition("=")
            name = name.upper()
            if not equals or name not in _XFORWARD_ATTRIBUTES:
                await self.push("501 5.5.4 Error: bad XFORWARD attribute")
                return
            value = _XTEXT.sub(lambda m: chr(int(m.group(1), 16)), value)
            if value.upper() in ("[UNAVAILABLE]", "[TEMPUNAVAIL]"):
                self.xforward.pop(name, None)
                continue
            if name == "ADDR" and value.upper().startswith("IPV6:"):
                value = value[5:]
            self.xforward[name] = value
        await self.push("250 2.0.0 Ok")

    def connection_lost(self, error) -> None:
        self.sessions.discard(self)
        if self._lifetime is not None:
            self._lifetime.cancel()
        if self.admitted is not None and self.connections is not None:
            self.connections.release(self.admitted)
            self.admitted = None
        super().connection_lost(error)

    # The overrides keep aiosmtpd's @syntax, which HELP lists commands by.
    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        # aiosmtpd refuses an oversized SIZE itself, but without an enhanced
        # status code; answer first, in the relay's words (RFC 1870, RFC 3463).
        if arg and ("\x00" in arg or (not arg.isascii() and "SMTPUTF8" not in arg.upper())):
            # 8-bit addresses are for SMTPUTF8 (RFC 6531); a NUL is never part of one.
            await self.push(replies.BAD_SENDER(why="a NUL or 8-bit byte without SMTPUTF8"))
            return
        if self.require_tls and self._tls_protocol is None:
            await self.push(replies.TLS_FIRST())
            return
        size = _SIZE.search(arg or "")
        if (size and self.session.extended_smtp and self.envelope.mail_from is None
                and int(size.group(1)) > (self.data_size_limit or 0) > 0):
            await self.push(replies.TOO_BIG(limit=str(self.data_size_limit)))
            return
        await super().smtp_MAIL(arg)

    def _getaddr(self, arg: str):
        """aiosmtpd's, without the typing.Protocol class it defines on every call (a twentieth of the
        main thread's time at 2 KB: class creation is slow)."""
        if not arg:
            return "", ""
        try:
            address, rest = (get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec)(arg)
        except HeaderParseError:
            return None, None
        addr = address.addr_spec
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        self.transactions += 1
        if self.transactions > self.limits.max_transactions_per_session:
            self.close_with(replies.TOO_MANY_TRANSACTIONS())
            return
        # Stays set until the reply to the data has been written, so shutdown
        # never cuts in between a message's arrival and its answer.
        self.receiving = True
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            content = await self._receive_data()
            if content is None:
                await self.push(replies.TOO_BIG(limit=str(self.data_size_limit)))
                self._set_post_data_state()
                return
            self.envelope.content = self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)
        finally:
            self.receiving = False
            self.sessions.changed.set()

    async def _receive_data(self) -> bytes | None:
        """The message up to CRLF.CRLF with its dots unstuffed (RFC 5321 4.5.2); None if over the size limit.

        aiosmtpd reads DATA a line at a time, a few microseconds each: 18 MB of
        short lines held the event loop, and every other session, for half a
        minute. This reads blocks and finds the end with bytes.find. Only
        CRLF.CRLF ends the data, never a bare LF or CR around the dot (the SMTP
        smuggling class); a line of any length is taken, as Postfix does, and
        the rewrite folds long text lines before they leave.
        """
        limit = self.data_size_limit or 0
        buffer = bytearray(CRLF)  # the DATA command's own line end: data that is just ".\r\n" ends at once
        searched, dropped = 0, 0
        while (end := buffer.find(_END_OF_DATA, searched)) == -1:
            searched = max(0, len(buffer) - len(_END_OF_DATA) + 1)
            if limit and len(buffer) + dropped > limit + 2:
                # Over the limit: read on to the end, keeping only what the end could start in.
                dropped += len(buffer) - 4
                del buffer[:-4]
                searched = 0
            block = await self._reader.read(_BLOCK)
            if not block:
                raise ConnectionResetError("connection closed during DATA")
            self._reset_timeout()
            buffer += block
        # What came after the end (pipelined commands) goes back to be read as commands.
        self._reader._buffer[0:0] = buffer[end + len(_END_OF_DATA):]
        if dropped:
            return None
        data = bytes(memoryview(buffer)[2:end + 2])  # one copy, not a slice and then a copy of it
        del buffer
        # A line that starts with a dot had one added by the client: take it away.
        data = data.replace(b"\r\n.", b"\r\n")
        return data[1:] if data.startswith(b".") else data

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:
        await super().smtp_RSET(arg)
        self.sessions.changed.set()

    @property
    def in_transaction(self) -> bool:
        return self.receiving or (self.envelope is not None and self.envelope.mail_from is not None)

    def close_with(self, reply: str) -> None:
        """Say goodbye (421) and hang up, whatever the session was waiting for."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply.encode("ascii") + b"\r\n")
            self.transport.close()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()


class LmtpSession(RelaySession):
    """LMTP for an MTA in front: LHLO instead of HELO/EHLO, and one reply per recipient after DATA."""

    lmtp = True

    @syntax("LHLO hostname")
    async def smtp_LHLO(self, arg: str) -> None:
        await super().smtp_EHLO(arg)

    async def smtp_HELO(self, arg: str) -> None:
        await self.push('500 5.5.1 Error: command "HELO" not recognized (this is LMTP: LHLO)')

    async def smtp_EHLO(self, arg: str) -> None:
        await self.push('500 5.5.1 Error: command "EHLO" not recognized (this is LMTP: LHLO)')
