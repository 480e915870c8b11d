"""One message's way through the relay, after the session accepted its recipient.

check the bytes -> handed on before? -> thread ids and conversation facts
(store) -> read, judge and rewrite in a worker -> bounce with a notice, or leak
check and next hop -> message log and log line -> the reply the client sees.

Two promises shape it. 451 means the relay itself is in trouble (store or next
hop down): a message the relay can judge gets 250 with a notice, or a 5xx with
its reason. And a message is handed on at most once: once the next hop has it,
nothing after (the notice, the log row) can turn the answer into a 4xx, and a
client that sends it again (it never heard the 250) hears the same answer.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

from aliases.store import Store
from aliases.views import BUYER, SELLER_TO_BUYER, Activity, Decision, Route, ThreadLink
from bounces.notice import shown
from filters.reading import comparable
from filters.view import Facts

from . import delivery, mime, replies
from .config import Config
from .logs import DECISIONS, AddressLabels
from .mime import MalformedMessage
from .names import display_name
from .notices import DEFERRED, SENT, Notifier, Subject
from .parse import TRACE_COMMENT, ThreadIds, line_end_problem, relay_traces, thread_ids
from .rewrite import Plan
from .scrub import AddressScrubber
from .worker import Outgoing, prepare
from .workers import WorkerPool, WorkLimit

log = logging.getLogger(__name__)
NULL_SENDER = "<>"
_ENHANCED = re.compile(r"\A\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass
class Outcome:
    """What happened to one message: its log record, its log line, and the client's reply."""

    reply: str
    verdict: str
    rule: str | None = None
    reason: str | None = None
    relay_message_id: str | None = None
    size_out: int | None = None
    next_hop_reply: str | None = None
    unsolicited: bool = False
    notice: str | None = None
    """What became of the notice to the sender: sent, failed, or why none was sent."""
    trail: list[str] | None = None
    """Every rule that did not simply pass, with its verdict, in order."""


@dataclass(frozen=True)
class Arrival:
    """A message as the session received it."""

    route: Route
    raw: bytes
    entity: mime.Entity
    """The top-level header fields and body, split once (this never fails)."""
    envelope_from: str
    smtputf8: bool
    received_at: datetime


def message_identity(arrival: Arrival) -> str:
    """Who sent what to whom: the same for a client's retry of a message, different for a new one.

    The sender's Message-ID and Date with the body's digest, so that a retry
    through another of the sender's servers (other Received fields) is still
    the same message. A message with neither field is known by all its bytes:
    a second one identical to the octet within a day is taken for a retry.
    """
    entity = arrival.entity
    message_id, date = entity.first("message-id"), entity.first("date")
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(arrival.route.recipient_alias.encode()).digest())
    digest.update(hashlib.sha256(comparable(arrival.envelope_from).encode("utf-8", "replace")).digest())
    if message_id is None and date is None:
        digest.update(hashlib.sha256(arrival.raw).digest())
        return digest.hexdigest()
    for piece in (message_id or b"", date or b"", entity.first("subject") or b"", entity.first("from") or b""):
        digest.update(hashlib.sha256(piece).digest())
    digest.update(hashlib.sha256(entity.body).digest())
    return digest.hexdigest()


class Forwarder:
    def __init__(self, config: Config, store: Store, workers: WorkerPool):
        self.config = config
        self.store = store
        self.workers = workers
        self.labels = AddressLabels(config.log.real_addresses)
        self.notifier = Notifier(config)
        self._in_flight: dict[str, asyncio.Future] = {}

    async def handle(self, route: Route, raw: bytes, envelope_from: str, smtputf8: bool) -> str:
        arrival = Arrival(route, raw, mime.parse_head(raw), envelope_from, smtputf8, datetime.now(timezone.utc))
        identity = message_identity(arrival)
        while identity in self._in_flight:  # the client's retry, while its first try is still being decided
            await asyncio.shield(self._in_flight[identity])
        self._in_flight[identity] = asyncio.get_running_loop().create_future()
        try:
            return await self._handle(arrival, identity)
        finally:
            self._in_flight.pop(identity).set_result(None)

    async def _handle(self, arrival: Arrival, identity: str) -> str:
        started = time.monotonic()
        route = arrival.route
        ids = None
        try:
            ids = thread_ids(arrival.entity)
            outcome = await self._decide(arrival, ids, identity)
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("message handling failed", extra={"ref": ref, "conversation": route.conversation_id})
            outcome = Outcome(replies.INTERNAL_ERROR(ref=ref), "failed", "internal_error", f"internal error, ref {ref}")
        try:
            await self.store.record(Decision(
                conversation_id=route.conversation_id, direction=route.direction, size_in=len(arrival.raw),
                verdict=outcome.verdict, received_at=arrival.received_at, relay_message_id=outcome.relay_message_id,
                original_message_id=ids.message_id if ids else None, size_out=outcome.size_out,
                rule=outcome.rule, reason=outcome.reason, next_hop_reply=outcome.next_hop_reply,
                unsolicited=outcome.unsolicited,
            ))
        except Exception:
            # The decision stands: answering 451 now would make the client send a
            # message the next hop already has a second time. The log line keeps it.
            log.exception("message log write failed", extra={"conversation": route.conversation_id})
        DECISIONS.info(outcome.verdict, extra={
            "conversation": route.conversation_id, "direction": route.direction,
            "sender_alias": route.sender_alias, "recipient_alias": route.recipient_alias,
            "sender": self.labels(route.sender.address), "recipient": self.labels(route.recipient.address),
            "size": len(arrival.raw), "size_out": outcome.size_out, "verdict": outcome.verdict, "rule": outcome.rule,
            "reason": outcome.reason, "message_id": outcome.relay_message_id, "next_hop": outcome.next_hop_reply,
            "notice": outcome.notice, "trail": outcome.trail, "reply": outcome.reply,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        })
        return outcome.reply

    async def _decide(self, arrival: Arrival, ids: ThreadIds, identity: str) -> Outcome:
        route = arrival.route
        problem = line_end_problem(arrival.raw)
        if problem:
            return Outcome(replies.BARE_LINE_END(problem=problem), "refused", "bare_line_end", problem)
        hops = len(relay_traces(arrival.entity))
        if hops >= self.config.server.max_relay_hops:
            return Outcome(replies.MAIL_LOOP(hops=hops), "refused", "mail_loop", f"{hops} relay hops")

        links, activity, earlier = await asyncio.gather(  # independent reads, one round trip of waiting
            self.store.thread_links(route.conversation_id, route.direction, ids.all_referenced),
            self.store.activity(route.conversation_id),
            self.store.handed_on(identity),
        )
        if earlier:
            return Outcome(replies.ALREADY_HANDLED(reply=earlier), "duplicate", "retry",
                           "the same message was handed on before; not again")
        facts = self._facts(route, links, activity)
        plan = self._plan(route, ids, links, arrival)
        try:
            outgoing = await self.workers.run(self.config.limits.cpu_seconds(len(arrival.raw)), prepare, arrival.raw,
                                              plan, self.config.filters, facts, route.recipient.locale)
        except MalformedMessage as exc:
            return Outcome(replies.MALFORMED(reason=str(exc)), "refused", "malformed", str(exc))
        except WorkLimit as exc:
            log.warning("message over a limit; its worker was replaced", extra={
                "conversation": route.conversation_id, "resource": exc.resource})
            return Outcome(replies.TOO_COSTLY(resource=exc.resource), "refused", "over_limit",
                           f"needed more {exc.resource} than one message may have")
        except Exception:  # WorkerLost included
            # A fault in reading this message is the same fault on every retry: say no for good.
            ref = uuid.uuid4().hex[:12]
            log.exception("message could not be read", extra={"ref": ref, "conversation": route.conversation_id})
            return Outcome(replies.UNREADABLE(ref=ref), "refused", "unreadable", f"reading failed, ref {ref}")

        outcome = await self._act(arrival, plan, facts, outgoing, identity)
        outcome.trail = [f"{rule}:{verdict.action}" for rule, verdict in outgoing.judgement.trail] or None
        return outcome

    async def _act(self, arrival: Arrival, plan: Plan, facts: Facts, outgoing: Outgoing,
                   identity: str) -> Outcome:
        """Carry out the filters' judgement: bounce with a notice, or forward what the rewrite made."""
        route = arrival.route
        unsolicited = route.direction == SELLER_TO_BUYER and not facts.replies_to_buyer
        bounce = outgoing.judgement.bounce
        if bounce:
            return await self._bounce(arrival, outgoing, identity, bounce.rule, bounce.reason, bounce.snippet)
        if outgoing.leaks:
            ref = uuid.uuid4().hex[:12]
            log.error("rewrite left a real address in the message; not forwarded",
                      extra={"ref": ref, "conversation": route.conversation_id, "count": len(outgoing.leaks)})
            return Outcome(replies.NOT_ANONYMISED(ref=ref), "refused", "not_anonymised", f"address left after rewrite, ref {ref}")

        answer = await delivery.send(
            self.config.delivery, envelope_from=route.sender_alias, recipients=[route.recipient.address],
            message=outgoing.message, helo=self.config.server.hostname,
            smtputf8=arrival.smtputf8 or not route.recipient.address.isascii(),
        )
        # A refusal often quotes the mailbox ("550 5.1.1 <ann@...>: User unknown") and
        # names internal hosts: the log keeps it, with the aliases in place of addresses;
        # the sender hears the relay's own words and the status code.
        said = plan.scrubber.scrub_text(answer.text)
        common = dict(relay_message_id=plan.message_id, size_out=len(outgoing.message), next_hop_reply=said)
        if not answer.accepted:
            if answer.permanent:
                status = _ENHANCED.match(said)
                reply = replies.NEXT_HOP_REFUSED(status=status.group(1) if status and status.group(1)[0] == "5" else None)
                return Outcome(reply, "refused", "next_hop_refused", said, **common)
            reply = replies.NEXT_HOP_DEFERRED if said[:1] == "4" else replies.NEXT_HOP_UNAVAILABLE
            return Outcome(reply(), "failed", "next_hop_unavailable", said, **common)
        reply = replies.FORWARDED(message_id=plan.message_id)
        await self._remember(identity, reply)
        outcome = Outcome(reply, "forwarded", unsolicited=unsolicited, **common)
        if outgoing.removed:
            outcome.rule = "attachment_removed"
            outcome.reason = "; ".join(f"{v.rule}: {v.reason}" for v in outgoing.judgement.strips)
            try:
                result = await self.notifier.send(self._about(arrival, outgoing), "attachment_removed",
                                                  outcome.reason, None, outgoing.removed)
                outcome.notice = result.detail
            except Exception:
                # The message is delivered: nothing may turn that into a 4xx now.
                log.exception("notice after delivery failed", extra={"conversation": route.conversation_id})
                outcome.notice = "failed: internal error"
        return outcome

    async def _remember(self, identity: str, reply: str) -> None:
        try:
            await self.store.remember_handed_on(identity, reply)
        except Exception:
            log.exception("could not remember a message handed on", extra={"identity": identity[:16]})

    def _facts(self, route: Route, links: dict[str, ThreadLink], activity: Activity) -> Facts:
        return Facts(
            direction=route.direction,
            conversation_aliases=frozenset({route.sender_alias, route.recipient_alias}),
            party_addresses=route.sender.sender_addresses | route.recipient.sender_addresses,
            category=route.category,
            buyer_opted_out=route.recipient.role == BUYER and route.recipient.opted_out,
            buyer_has_written=activity.buyer_has_written,
            replies_to_buyer=any(link.sent_by == BUYER for link in links.values()),
            unsolicited_last_day=activity.unsolicited_last_day,
        )

    def _plan(self, route: Route, ids: ThreadIds, links: dict[str, ThreadLink], arrival: Arrival) -> Plan:
        def translated(id_list):
            return tuple(links[i].translated for i in id_list if i in links)

        domain = self.config.aliases.domain
        token = secrets.token_hex(12)
        protocol = "UTF8SMTP" if arrival.smtputf8 else "ESMTP"
        return Plan(
            sender_name=display_name(route.sender, route.recipient.locale),
            sender_alias=route.sender_alias,
            recipient_address=route.recipient.address,
            message_id=f"<{token}@{domain}>",
            in_reply_to=translated(ids.in_reply_to),
            references=translated(ids.references),
            scrubber=AddressScrubber({
                **{address: route.sender_alias for address in route.sender.sender_addresses},
                **{address: route.recipient_alias for address in route.recipient.sender_addresses},
            }),
            domain=domain,
            cid_key=secrets.token_bytes(16),
            trace=f"by {self.config.server.hostname} {TRACE_COMMENT} with {protocol} id {token};\r\n "
                  f"{format_datetime(arrival.received_at)}",
        )

    # -- notices -------------------------------------------------------------

    def _about(self, arrival: Arrival, outgoing: Outgoing) -> Subject:
        return Subject(arrival.route, arrival.envelope_from, arrival.entity, arrival.received_at, outgoing.subject)

    async def _bounce(self, arrival: Arrival, outgoing: Outgoing, identity: str,
                      rule: str, reason: str, snippet) -> Outcome:
        said = shown(reason, 200)
        if _automatic(arrival, outgoing):
            # RFC 3834: never answer automatic mail automatically; say no in the session instead.
            return Outcome(replies.BLOCKED(reason=said), "bounced", rule, reason,
                           notice="none: null sender or Auto-Submitted")
        result = await self.notifier.send(self._about(arrival, outgoing), rule, reason, snippet)
        if result.state == SENT:
            reply = replies.BOUNCED(rule=rule)
            await self._remember(identity, reply)
            return Outcome(reply, "bounced", rule, reason, notice=result.detail)
        if result.state == DEFERRED:
            return Outcome(replies.NOTICE_DEFERRED(), "failed", rule, reason, notice=result.detail)
        # The notice will never go: say it in the session, and the sender's own server tells them.
        return Outcome(replies.BLOCKED(reason=said), "bounced", rule, reason, notice=result.detail)


def _automatic(arrival: Arrival, outgoing: Outgoing) -> bool:
    """Mail no notice may answer (RFC 3834): the null sender, or Auto-Submitted other than "no".
    The session refuses <> at RCPT already; this holds even if that ever changes."""
    return arrival.envelope_from == NULL_SENDER or outgoing.auto_submitted
