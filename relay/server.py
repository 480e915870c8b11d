"""The running relay: the listening socket, its sessions, the store, the queue, workers and delivery.

Start-up opens (and on SQLite migrates) the store, loads the DKIM key, starts
the worker processes and delivery, then listens. An orderly stop (SIGTERM)
stops listening, answers idle sessions 421, lets begun transactions finish and
deliveries under way complete within `shutdown_grace`, and leaves the rest
queued for the next start.
"""
from __future__ import annotations

import asyncio
import logging
import os
import resource
from datetime import timedelta

from aliases import database
from aliases.center import MessageCenter
from aliases.queue import Queue
from aliases.store import Store

from . import replies, worker
from .auth import Authenticator
from .config import Config
from .decide import Decider
from .delivery import Delivery
from .downstream import Downstream
from .gate import Gatekeeper
from .limits import Connections, Rates, Strikes, Summary
from .logs import AddressLabels
from .metrics import Metrics
from .nexthop import NextHops
from .notices import Notifier
from .resolver import Resolver
from .sending import StandardMessages
from .session import LmtpSession, RelaySession, Sessions
from .signing import Signer, read_signer
from .standard import Templates
from .tls import Certificates, describe
from .workers import Limits, WorkerPool

log = logging.getLogger(__name__)


def load_signer(config: Config) -> Signer | None:
    """The DKIM signer from [dkim], or None when no key is configured; raises SigningKeyError for a bad key."""
    if not config.dkim.key_file:
        return None
    return read_signer(config.aliases.domain, config.dkim.selector, config.relative(config.dkim.key_file))


def load_certificates(config: Config) -> Certificates | None:
    """The STARTTLS pair from [server], or None; raises TlsError for a pair that cannot be used."""
    if not config.server.tls_cert:
        return None
    return Certificates(config.relative(config.server.tls_cert), config.relative(config.server.tls_key))


class Relay:
    def __init__(self, config: Config, process: tuple[int, int] | None = None):
        """process: (index, count) for one of several relays sharing the port (relay/processes.py)."""
        self.config = config
        self.process = process
        self.signer = load_signer(config)
        self.certificates = load_certificates(config)
        self.database = database.Database(config.database_url())
        self.engine = self.database.engine
        self.store = Store(self.database, config.aliases.domain)
        self.sessions = Sessions()
        limits = config.limits
        self.summary = Summary(AddressLabels.of(config))
        self.connections = Connections(limits, self.summary)
        dkim = (self.signer.domain, self.signer.selector, self.signer.key_pem) if self.signer else None
        cores = os.cpu_count() or 1
        self.workers = WorkerPool(
            config.server.workers or (max(1, cores // process[1]) if process else cores),
            Limits(limits.worker_memory_mb * 2**20, limits.worker_recycle_mb * 2**20),
            worker.warm_up, (config.filters, dkim),
        )
        node = config.server.node or f"{config.server.hostname}:{config.server.port}"
        self.node = f"{node}/{process[0]}" if process else node
        self.queue = Queue(self.database, self.node, config.delivery.lease_seconds,
                           timedelta(days=config.retention.days), timedelta(seconds=config.retention.purge_every))
        self.resolver = Resolver(config.dns)
        self.metrics = Metrics()
        self.templates = Templates(config.relative(config.messages.templates) if config.messages.templates else None)
        self.delivery = Delivery(config, self.queue, NextHops(config.delivery, config.server.hostname, self.resolver),
                                 Notifier(config), self.signer, self.metrics)
        self.decider = Decider(config, self.store, self.queue, self.workers, self.delivery, Rates(limits),
                               self.metrics, self.templates)
        self.gatekeeper = Gatekeeper(config, self.store, self.decider, self.queue,
                                     Downstream(config, self.queue, self.workers, self.delivery),
                                     Authenticator(config, self.resolver, self.workers), Strikes(limits, self.summary),
                                     self.metrics)
        self.server: asyncio.AbstractServer | None = None
        self.center = MessageCenter(self.database, config.aliases.domain)
        self.standard = StandardMessages(config, self.store, self.center, self.queue, self.delivery, self.templates,
                                         self.decider.clock_now)
        self.metrics.sessions.set_function(lambda: len(self.sessions))
        self.http: list = []

    def _session(self) -> RelaySession:
        server = self.config.server
        kind = LmtpSession if server.protocol == "lmtp" else RelaySession
        return kind(
            self.gatekeeper, self.sessions, trusts=server.trusts, limits=self.config.limits,
            connections=self.connections, require_tls=server.require_tls,
            tls_context=self.certificates.context if self.certificates else None,
            hostname=server.hostname, ident="marketplace-relay", data_size_limit=self.config.size_limit(),
            enable_SMTPUTF8=True, decode_data=False, timeout=server.session_timeout,
            command_call_limit=self.config.limits.max_commands_per_session,
        )

    async def start(self) -> None:
        _raise_file_limit(self.config.limits.max_connections)
        await database.prepare(self.engine, self.config.database_url())
        await self.workers.start()
        await self.queue.start()
        await self.delivery.start()
        self.server = await asyncio.get_running_loop().create_server(
            self._session, host=self.config.server.host, port=self.config.server.port,
            backlog=1024,  # a burst of connections waits in the kernel instead of retrying SYNs for seconds
            reuse_port=self.process is not None or None,
        )
        await self._start_http()
        if self.certificates is None:
            log.warning("STARTTLS is off: set [server] tls_cert and tls_key (relay tls selfsigned writes a pair)")
        else:
            log.info("STARTTLS on", extra=describe(self.certificates.cert))
        if self.signer is None:
            log.warning("DKIM signing is off: set [dkim] key_file (relay dkim keygen writes one)")
        ocr = self._ocr_engine()
        log.info("listening", extra={"address": self.address, "domain": self.config.aliases.domain,
                                      "protocol": self.config.server.protocol,
                                      "next_hop": self.config.delivery.smarthost or "MX", "ocr": ocr,
                                      "node": self.node})

    async def _start_http(self) -> None:
        """The API on every relay of a node (they share its port); /metrics on the first only."""
        from .api import app as api_app
        from .api import health
        from .api.serving import HttpServer

        if self.config.api.enabled:
            host, port = self.config.api.address
            self.http.append(HttpServer(api_app.build(self), host, port, self.process is not None, "api"))
        if self.config.metrics.enabled and (self.process is None or self.process[0] == 0):
            host, port = self.config.metrics.address
            self.http.append(HttpServer(health.build(self), host, port, False, "metrics"))
        for server in self.http:
            await server.start()
            log.info(f"{server.name} listening", extra={"address": f"{server.host}:{server.port}"})

    def http_port(self, name: str) -> int:
        return next(server.port for server in self.http if server.name == name)

    def _ocr_engine(self) -> str:
        """Said once at start: without Tesseract, links printed in images go unread."""
        reading = self.config.filters.images
        if not reading.enabled:
            return "off"
        from filters.images import engine

        version = engine()
        if version is None:
            what = "delivered unread" if reading.when_unreadable == "pass" else "removed"
            log.warning(f"OCR engine not installed (Debian: tesseract-ocr): images are {what}, "
                        f"[filters.images] when_unreadable = {reading.when_unreadable!r}; QR codes are still read")
            return "missing"
        return f"tesseract {version}"

    def reload(self) -> None:
        """SIGHUP: read the TLS certificate and key again; sessions that start after this use them."""
        if self.certificates is not None:
            self.certificates.reload()

    @property
    def address(self) -> str:
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting; let begun transactions and deliveries finish within the grace period; then close."""
        grace = self.config.server.shutdown_grace
        if self.server is not None:
            self.server.close()
        for http in self.http:
            await http.stop()
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
        await self.delivery.stop(max(0.0, deadline - loop.time()))
        if self.server is not None:
            await self.server.wait_closed()
        await self.queue.close()
        await self.workers.close()
        await self.database.dispose()
        self.summary.flush()
        log.info("stopped")


def _raise_file_limit(connections: int) -> None:
    """Room for max_connections sockets, plus the store's, the workers' and the next hops'."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted,
                                                    hard))
        if min(wanted, hard) < wanted:
            log.warning("the file limit is below [limits] max_connections", extra={"limit": hard})
