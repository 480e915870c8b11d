"""The SMTP side: who may talk to the relay, and an orderly stop.

Decisions about the envelope are made here, as early as SMTP allows (RFC 5321,
and Haraka's safe defaults): a recipient outside the alias domain, an unknown
alias, or a sender who is not the alias's counterpart is refused at RCPT, so a
refused message is never received at all.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from aliases import database
from aliases.store import Store
from filters.reading import comparable

from . import replies, worker
from .config import Config
from .forward import Forwarder
from .logs import DECISIONS, AddressLabels
from .workers import Limits, WorkerPool

log = logging.getLogger(__name__)
_SIZE = re.compile(r"(?i)(?:^|\s)SIZE=(\d{1,20})(?=\s|$)")
CRLF = b"\r\n"
_END_OF_DATA = b"\r\n.\r\n"
_BLOCK = 1 << 16


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

    def __init__(self, handler: Gatekeeper, sessions: Sessions, **kwargs):
        super().__init__(handler, **kwargs)
        self.receiving = False
        self.sessions = sessions

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.sessions.add(self)

    def connection_lost(self, error) -> None:
        self.sessions.discard(self)
        super().connection_lost(error)

    # The overrides keep aiosmtpd's @syntax, which HELP lists commands by.
    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        # aiosmtpd refuses an oversized SIZE itself, but without an enhanced
        # status code; answer first, in the relay's words (RFC 1870, RFC 3463).
        size = _SIZE.search(arg or "")
        if (size and self.session.extended_smtp and self.envelope.mail_from is None
                and int(size.group(1)) > (self.data_size_limit or 0) > 0):
            await self.push(replies.TOO_BIG(limit=str(self.data_size_limit)))
            return
        await super().smtp_MAIL(arg)

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


class Gatekeeper:
    """aiosmtpd handler hooks: EHLO, RCPT, DATA, and the reply for an unexpected error."""

    def __init__(self, config: Config, store: Store, forwarder: Forwarder):
        self.store = store
        self.forwarder = forwarder
        self.deciding: set[asyncio.Task] = set()
        """Messages being decided; one goes on if its client hangs up, so that a retry finds it handed on."""
        self.domain = config.aliases.domain
        self.labels = AddressLabels(config.log.real_addresses)

    async def handle_EHLO(self, server, session: Session, envelope: Envelope, hostname: str, responses: list[str]):
        # aiosmtpd 1.4.6 handles pipelined commands in order but does not say so.
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]]

    async def handle_RCPT(self, server, session: Session, envelope: Envelope, address: str, options: list[str]):
        reply, route = await self._recipient_verdict(envelope, address)
        if reply is not replies.RECIPIENT_OK:
            # An outside address may be somebody's real one; an alias is safe to show.
            at_home = address.lower().endswith("@" + self.domain)
            DECISIONS.info("refused", extra={
                "stage": "rcpt", "reply": str(reply), "recipient": address if at_home else self.labels(address),
                "sender": self.labels(envelope.mail_from), "conversation": route.conversation_id if route else None,
            })
            return str(reply)
        envelope.route = route
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return str(reply)

    async def _recipient_verdict(self, envelope: Envelope, address: str):
        if envelope.rcpt_tos:
            return replies.ONE_RECIPIENT, None
        local, _, domain = address.rpartition("@")
        if domain.lower() != self.domain:
            return replies.RELAY_DENIED, None
        route = await self.store.route(local)
        if route is None:
            return replies.UNKNOWN_ALIAS, None
        # The null sender <> is refused too. Delivery reports about forwards come
        # back that way, but a report written by the other party's mail server
        # names its hosts and mailboxes, which the relay cannot know to remove.
        # Compared as the addresses read, the way the rewrite finds the party's
        # address in the text: a spelling it would replace is that party.
        if comparable(envelope.mail_from or "") not in {comparable(a) for a in route.sender.sender_addresses}:
            return replies.NOT_COUNTERPART, route
        return replies.RECIPIENT_OK, route

    async def handle_DATA(self, server, session: Session, envelope: Envelope):
        decision = asyncio.ensure_future(self.forwarder.handle(
            envelope.route, envelope.original_content, envelope.mail_from, envelope.smtp_utf8))
        self.deciding.add(decision)
        decision.add_done_callback(self.deciding.discard)
        return await asyncio.shield(decision)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default answer is "500 Error: (Type) text": permanent, and it shows internals.
        ref = uuid.uuid4().hex[:12]
        log.error("session error", exc_info=error, extra={"ref": ref})
        return replies.INTERNAL_ERROR(ref=ref)


class Relay:
    """The running relay: listening socket, sessions, store and rewrite workers."""

    def __init__(self, config: Config):
        self.config = config
        self.engine = database.create_engine(config.database_url())
        self.store = Store(self.engine, config.aliases.domain)
        self.sessions = Sessions()
        limits = config.limits
        self.workers = WorkerPool(
            config.server.workers or os.cpu_count() or 1,
            Limits(limits.worker_memory_mb * 2**20, limits.worker_recycle_mb * 2**20),
            worker.warm_up, (config.filters,),
        )
        self.forwarder = Forwarder(config, self.store, self.workers)
        self.gatekeeper = Gatekeeper(config, self.store, self.forwarder)
        self.server: asyncio.AbstractServer | None = None

    def _session(self) -> RelaySession:
        server = self.config.server
        return RelaySession(
            self.gatekeeper, self.sessions,
            hostname=server.hostname, ident="marketplace-relay", data_size_limit=self.config.size_limit(),
            enable_SMTPUTF8=True, decode_data=False, timeout=server.session_timeout,
        )

    async def start(self) -> None:
        await database.prepare(self.engine, self.config.database_url())
        await self.workers.start()
        self.server = await asyncio.get_running_loop().create_server(
            self._session, host=self.config.server.host, port=self.config.server.port,
        )
        log.info("listening", extra={"address": self.address, "domain": self.config.aliases.domain,
                                      "next_hop": self.config.delivery.smarthost})

    @property
    def address(self) -> str:
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting; let begun transactions finish within the grace period; then close."""
        grace = self.config.server.shutdown_grace
        if self.server is not None:
            self.server.close()
        log.info("stopping", extra={"sessions": len(self.sessions), "grace_seconds": grace})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.sessions:
            # Cleared before looking, so a session that goes idle meanwhile is not missed.
            self.sessions.changed.clear()
            late = loop.time() >= deadline
            for session in self.sessions:
                if late or not session.in_transaction:
                    session.close_with(replies.SHUTTING_DOWN())
                    self.sessions.discard(session)
            if self.sessions:
                try:
                    await asyncio.wait_for(self.sessions.changed.wait(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    pass
        if self.gatekeeper.deciding:
            # Sessions are gone; messages whose clients hung up are still being decided.
            _, late = await asyncio.wait(self.gatekeeper.deciding, timeout=max(0.0, deadline - loop.time()))
            for decision in late:
                decision.cancel()
        if self.server is not None:
            await self.server.wait_closed()
        await self.workers.close()
        await self.engine.dispose()
        log.info("stopped")
