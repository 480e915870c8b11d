"""Who may talk to the relay: the aiosmtpd handler hooks for EHLO, RCPT and DATA.

Decisions about the envelope are made here, as early as SMTP allows (RFC 5321,
and Haraka's safe defaults): a recipient outside the alias domain, an unknown
alias, or a sender who is not the alias's counterpart is refused at RCPT, so a
refused message is never received at all.

A transaction may name up to `[server] max_recipients` aliases: each gets its
own decision and its own queued copy, and the client hears 250 once all are
committed. Over SMTP there is one reply for all (any 4xx makes it 4xx, and the
copies already stored are not stored twice when the client retries); over
LMTP each recipient has its own.
"""
from __future__ import annotations

import asyncio
import logging
import uuid

from aiosmtpd.smtp import Envelope, Session, TLSSetupException

from aliases.queue import Queue
from aliases.store import Store
from filters.reading import comparable

from . import mime, replies
from .auth import Authenticator, Results
from .config import Config
from .decide import NULL_SENDER, Decider
from .delivery import BOUNCE_PREFIX
from .downstream import Downstream
from .limits import Strikes
from .logs import DECISIONS, AddressLabels
from .metrics import Metrics
from .sender import domain_of, shown_senders
from .view import decoded_header

log = logging.getLogger(__name__)


class Gatekeeper:
    def __init__(self, config: Config, store: Store, decider: Decider, queue: Queue, downstream: Downstream,
                 authenticator: Authenticator, strikes: Strikes, metrics: Metrics | None = None):
        self.metrics = metrics or Metrics()
        self.authenticator = authenticator
        self.strikes = strikes
        self.limits = config.limits
        self.auth_mode = config.auth.require
        self.store = store
        self.decider = decider
        self.queue = queue
        self.downstream = downstream
        self.max_recipients = config.server.max_recipients
        self.deciding: set[asyncio.Task] = set()
        """Messages being decided; one goes on if its client hangs up, so that a retry finds it accepted."""
        self.domain = config.aliases.domain
        self.labels = AddressLabels.of(config)

    async def handle_EHLO(self, server, session: Session, envelope: Envelope, hostname: str, responses: list[str]):
        # aiosmtpd 1.4.6 handles pipelined commands in order but does not say so.
        session.host_name = hostname
        extra = ["250-PIPELINING"] + (["250-XFORWARD NAME ADDR PROTO HELO"] if getattr(server, "trusted", False) else [])
        return responses[:-1] + extra + [responses[-1]]

    async def handle_RCPT(self, server, session: Session, envelope: Envelope, address: str, options: list[str]):
        client = getattr(server, "client_address", "")
        if self.strikes.blocked_for(client, address.lower()):
            self.strikes.summary.count("refused_recipients", client)
            self.metrics.replied(str(replies.TOO_MANY_GUESSES), "rcpt")
            return str(replies.TOO_MANY_GUESSES)  # the same for every recipient, right or wrong
        local, _, domain = address.rpartition("@")
        if local.lower().startswith(BOUNCE_PREFIX) and domain.lower() == self.domain:
            return await self._report_recipient(envelope, address, local[len(BOUNCE_PREFIX):].lower())
        reply, route = await self._recipient_verdict(envelope, address)
        if reply in (replies.UNKNOWN_ALIAS, replies.NOT_COUNTERPART):
            self.strikes.strike(client, address.lower() if route is not None else None)
        if reply is not replies.RECIPIENT_OK:
            # An outside address may be somebody's real one; an alias is safe to show.
            at_home = address.lower().endswith("@" + self.domain)
            self.metrics.replied(str(reply), "rcpt")
            DECISIONS.info("refused", extra={
                "stage": "rcpt", "reply": str(reply), "recipient": address if at_home else self.labels(address),
                "sender": self.labels(envelope.mail_from), "conversation": route.conversation_id if route else None,
            })
            return str(reply)
        if getattr(envelope, "report", None):
            return str(replies.TOO_MANY_RECIPIENTS)  # a report travels alone
        if not hasattr(envelope, "routes"):
            envelope.routes = []
        envelope.routes.append(route)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return str(reply)

    async def _report_recipient(self, envelope: Envelope, address: str, token: str) -> str:
        """A bounce address: reports from <> about a message the relay sent, and nothing else."""
        found = await self.queue.token(token) if token.isalnum() else None
        if found is None or envelope.rcpt_tos:
            reply = replies.UNKNOWN_ALIAS if found is None else replies.TOO_MANY_RECIPIENTS
        elif envelope.mail_from != NULL_SENDER:
            reply = replies.REPORTS_ONLY
        else:
            envelope.report = found
            envelope.rcpt_tos.append(address)
            return str(replies.RECIPIENT_OK)
        DECISIONS.info("refused", extra={"stage": "rcpt", "reply": str(reply), "recipient": address,
                                         "sender": self.labels(envelope.mail_from)})
        return str(reply)

    async def _recipient_verdict(self, envelope: Envelope, address: str):
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return replies.TOO_MANY_RECIPIENTS, None
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
        if not _may_send(envelope.mail_from, route):
            # The cached route may predate an address the sender added since: ask the store itself.
            route = await self.store.route(local, fresh=True)
            if route is None or not _may_send(envelope.mail_from, route):
                return replies.NOT_COUNTERPART, route
        return replies.RECIPIENT_OK, route

    async def handle_DATA(self, server, session: Session, envelope: Envelope):
        if getattr(envelope, "report", None):
            return await self.downstream.handle(*envelope.report, envelope.original_content)
        lmtp = getattr(server, "lmtp", False)
        decision = asyncio.ensure_future(self._decide_all(server, envelope, lmtp))
        self.deciding.add(decision)
        decision.add_done_callback(self.deciding.discard)
        answers = await asyncio.shield(decision)
        if lmtp:
            return "\r\n".join(answers)  # RFC 2033 4.2: one reply per recipient, in order
        return _one_reply(answers)

    async def _decide_all(self, server, envelope: Envelope, lmtp: bool) -> list[str]:
        answers = await self._answers(server, envelope, lmtp)
        for answer in answers:
            self.metrics.replied(answer, "data")
        return answers

    async def _answers(self, server, envelope: Envelope, lmtp: bool) -> list[str]:
        raw, sender = envelope.original_content, envelope.mail_from
        head = mime.parse_head(raw)
        over = ("more than %d fields" % self.limits.max_header_fields if len(head.fields) > self.limits.max_header_fields
                else "more than %d bytes" % self.limits.max_header_bytes
                if len(head.header_block) > self.limits.max_header_bytes else None)
        if over:
            return [replies.HEADER_TOO_BIG(what=over)] * len(envelope.routes)
        results = await self._authenticate(server, raw, head, sender)
        answers = list(await asyncio.gather(*(self.decider.handle(route, raw, sender, envelope.smtp_utf8, results, head)
                                              for route in envelope.routes)))
        if not lmtp and any(a[:1] == "2" for a in answers) and any(a[:1] == "5" for a in answers):
            # One SMTP reply cannot say "yes for some": the 250 stands, and the sender hears of the others.
            for route, answer in zip(envelope.routes, answers):
                if answer[:1] == "5":
                    await self.decider.tell_refused(route, raw, sender, answer)
        return answers

    async def _authenticate(self, server, raw: bytes, entity: mime.Entity, sender: str) -> Results | None:
        """SPF, DKIM and DMARC once per message, whatever number of aliases it names."""
        if self.auth_mode == "none":
            return None
        shown = shown_senders(decoded_header(entity.first("from")))
        try:
            return await self.authenticator.check(raw, entity, server.client_address, server.client_helo, sender,
                                                  domain_of(shown[0]) if shown else "")
        except Exception:
            log.exception("sender authentication failed")
            return None

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default answer is "500 Error: (Type) text": permanent, and it shows internals.
        if isinstance(error, TLSSetupException):
            # Scanners and old clients fail handshakes all day: a line, not a traceback. aiosmtpd closes.
            log.info("TLS handshake failed", extra={"reason": str(error.__cause__ or error)[:200]})
            return replies.TLS_FAILED()
        ref = uuid.uuid4().hex[:12]
        log.error("session error", exc_info=error, extra={"ref": ref})
        return replies.INTERNAL_ERROR(ref=ref)


def _may_send(envelope_from: str | None, route) -> bool:
    return comparable(envelope_from or "") in {comparable(a) for a in route.sender.sender_addresses}


def _one_reply(answers: list[str]) -> str:
    """One SMTP reply for several recipients' decisions: a 4xx if any (the client retries them all, and
    what was stored is not stored again), the refusal if all were refused, else the 250."""
    if len(answers) == 1:
        return answers[0]
    for first in "452":
        same = [answer for answer in answers if answer[:1] == first]
        if first == "4" and same:
            return same[0]
        if first == "5" and len(same) == len(answers):
            return same[0]
    accepted = [answer for answer in answers if answer[:1] == "2"]
    refused = len(answers) - len(accepted)
    suffix = f"; {refused} refused, and a notice says why" if refused else ""
    return f"250 2.0.0 Queued for {len(accepted)} recipients{suffix}"
