"""One message's way through the relay, after the session accepted its recipient.

check the bytes -> thread ids and conversation facts (store) -> read, judge and
rewrite in a worker -> bounce with a notice, or leak check and next hop ->
message log and log line -> the reply the client sees.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Callable

from aliases.store import Store
from aliases.views import BUYER, SELLER_TO_BUYER, Activity, Decision, Route, ThreadLink
from bounces import notice
from filters.view import Facts

from . import delivery, mime, replies
from .config import Config
from .leaks import leaked_addresses
from .logs import DECISIONS, AddressLabels
from .mime import MalformedMessage
from .names import display_name
from .parse import TRACE_COMMENT, ThreadIds, line_end_problem, relay_traces, thread_ids
from .rewrite import Plan
from .scrub import AddressScrubber
from .view import decoded_header
from .worker import Outgoing, prepare

log = logging.getLogger(__name__)
NULL_SENDER = "<>"


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


class Forwarder:
    def __init__(self, config: Config, store: Store, executor: Callable[[], Executor]):
        self.config = config
        self.store = store
        self.executor = executor
        self.labels = AddressLabels(config.log.real_addresses)

    async def handle(self, route: Route, raw: bytes, envelope_from: str, smtputf8: bool) -> str:
        started = time.monotonic()
        arrival = Arrival(route, raw, mime.parse_entity(raw), envelope_from, smtputf8, datetime.now(timezone.utc))
        ids = None
        try:
            ids = thread_ids(arrival.entity)
            outcome = await self._decide(arrival, ids)
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("message handling failed", extra={"ref": ref, "conversation": route.conversation_id})
            outcome = Outcome(replies.INTERNAL_ERROR(ref=ref), "failed", "internal_error", f"internal error, ref {ref}")
        try:
            await self.store.record(Decision(
                conversation_id=route.conversation_id, direction=route.direction, size_in=len(raw),
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
            "size": len(raw), "size_out": outcome.size_out, "verdict": outcome.verdict, "rule": outcome.rule,
            "reason": outcome.reason, "message_id": outcome.relay_message_id, "next_hop": outcome.next_hop_reply,
            "notice": outcome.notice, "trail": outcome.trail, "reply": outcome.reply,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        })
        return outcome.reply

    async def _decide(self, arrival: Arrival, ids: ThreadIds) -> Outcome:
        route = arrival.route
        problem = line_end_problem(arrival.raw)
        if problem:
            return Outcome(replies.BARE_LINE_END(problem=problem), "refused", "bare_line_end", problem)
        hops = len(relay_traces(arrival.entity))
        if hops >= self.config.server.max_relay_hops:
            return Outcome(replies.MAIL_LOOP(hops=hops), "refused", "mail_loop", f"{hops} relay hops")

        links, activity = await asyncio.gather(  # two independent reads, one round trip of waiting
            self.store.thread_links(route.conversation_id, route.direction, ids.all_referenced),
            self.store.activity(route.conversation_id),
        )
        facts = self._facts(route, links, activity)
        plan = self._plan(route, ids, links, arrival)
        try:
            outgoing = await self._prepare(arrival.raw, plan, facts, route.recipient.locale)
        except MalformedMessage as exc:
            return Outcome(replies.MALFORMED(reason=str(exc)), "refused", "malformed", str(exc))

        outcome = await self._act(arrival, plan, facts, outgoing)
        outcome.trail = [f"{rule}:{verdict.action}" for rule, verdict in outgoing.judgement.trail] or None
        return outcome

    async def _act(self, arrival: Arrival, plan: Plan, facts: Facts, outgoing: Outgoing) -> Outcome:
        """Carry out the filters' judgement: bounce with a notice, or forward what the rewrite made."""
        route = arrival.route
        unsolicited = route.direction == SELLER_TO_BUYER and not facts.replies_to_buyer
        bounce = outgoing.judgement.bounce
        if bounce:
            return await self._bounce(arrival, outgoing, bounce.rule, bounce.reason, bounce.snippet)
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
        # A refusal often quotes the mailbox ("550 5.1.1 <ann@...>: User unknown"): the
        # sender hears it, and the log keeps it, with the aliases in its place.
        said = plan.scrubber.scrub_text(answer.text)
        common = dict(relay_message_id=plan.message_id, size_out=len(outgoing.message), next_hop_reply=said)
        if not answer.accepted:
            if answer.permanent:
                return Outcome(replies.NEXT_HOP_REFUSED(answer=said[:200]), "refused", "next_hop_refused", said, **common)
            reply = replies.NEXT_HOP_DEFERRED if said[:1] == "4" else replies.NEXT_HOP_UNAVAILABLE
            return Outcome(reply(), "failed", "next_hop_unavailable", said, **common)
        outcome = Outcome(replies.FORWARDED(message_id=plan.message_id), "forwarded", unsolicited=unsolicited, **common)
        if outgoing.removed:
            outcome.rule = "attachment_removed"
            outcome.reason = "; ".join(f"{v.rule}: {v.reason}" for v in outgoing.judgement.strips)
            outcome.notice = await self._notify(arrival, outgoing, "attachment_removed", outcome.reason, None)
        return outcome

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

    async def _prepare(self, raw: bytes, plan: Plan, facts: Facts, recipient_locale: str) -> Outgoing:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.executor(), prepare, raw, plan, self.config.filters, facts, recipient_locale)
        except BrokenProcessPool:
            # A worker died (killed, out of memory); the next call gets a fresh pool.
            log.error("rewrite worker died; restarting the pool")
            raise

    # -- notices -------------------------------------------------------------

    async def _bounce(self, arrival: Arrival, outgoing: Outgoing, rule: str, reason: str, snippet) -> Outcome:
        if _automatic(arrival, outgoing):
            # RFC 3834: never answer automatic mail automatically; say no in the session instead.
            return Outcome(replies.BLOCKED(reason=reason[:200]), "bounced", rule, reason,
                           notice="none: null sender or Auto-Submitted")
        sent = await self._notify(arrival, outgoing, rule, reason, snippet)
        if sent != "sent":
            return Outcome(replies.NOTICE_DEFERRED(), "failed", rule, reason, notice=sent)
        return Outcome(replies.BOUNCED(rule=rule), "bounced", rule, reason, notice=sent)

    async def _notify(self, arrival: Arrival, outgoing: Outgoing, rule: str, reason: str, snippet) -> str:
        """Send the sender a notice; say what became of it (sent, failed, or why none was sent)."""
        if _automatic(arrival, outgoing):
            return "none: null sender or Auto-Submitted"
        route = arrival.route
        # The sender's own words may name the recipient by real address: the notice says the alias.
        recipient_only = AddressScrubber({a: route.recipient_alias for a in route.recipient.sender_addresses})
        date = decoded_header(arrival.entity.first("date")) or arrival.received_at.strftime("%a, %d %b %Y %H:%M:%S +0000")
        blocked = notice.Blocked(
            subject=recipient_only.scrub_text(outgoing.subject), date=date, order_id=route.order_id, rule=rule,
            reason=reason, snippet=snippet and recipient_only.scrub_text(snippet), removed=outgoing.removed,
        )
        message = notice.build(
            blocked=blocked, sender=notice.Sender(arrival.envelope_from, route.sender.locale),
            recipient_role=route.recipient.role, recipient_alias=route.recipient_alias,
            original_headers=recipient_only.scrub(arrival.entity.header_block).decode("utf-8", "replace"),
            from_name=self.config.notices.from_name,
            from_address=f"{self.config.notices.from_local_part}@{self.config.aliases.domain}",
            reporting_mta=self.config.server.hostname,
        )
        if leaked_addresses(message, recipient_only):
            log.error("notice would show the recipient's address; not sent", extra={"conversation": route.conversation_id})
            return "failed: notice not anonymised"
        answer = await delivery.send(self.config.delivery, envelope_from="", recipients=[arrival.envelope_from],
                                     message=message, helo=self.config.server.hostname,
                                     smtputf8=not arrival.envelope_from.isascii())
        if answer.accepted:
            return "sent"
        # The refusal may quote the sender's own mailbox; the log shows their alias instead.
        return "failed: " + AddressScrubber({a: route.sender_alias for a in route.sender.sender_addresses}).scrub_text(
            recipient_only.scrub_text(answer.text))


def _automatic(arrival: Arrival, outgoing: Outgoing) -> bool:
    """Mail no notice may answer (RFC 3834): the null sender, or Auto-Submitted other than "no".
    The session refuses <> at RCPT already; this holds even if that ever changes."""
    return arrival.envelope_from == NULL_SENDER or outgoing.auto_submitted
