"""One message's way through the relay, after the session accepted its recipient, up to the 250.

check the bytes -> handed on before? -> thread ids and conversation facts
(store) -> read, judge, rewrite and sign in a worker -> the forward, or the
notice of a bounce -> one commit to the queue -> the reply the client sees.
Delivery (relay/delivery.py) takes it from the queue.

Two promises shape it. 250 means stored: the forward and any notice are
committed, with the message log row and the message's identity, before the
client hears it, so a crash after the 250 loses nothing; a store that cannot
be written gives 451 before anything is handed on. And 451 means the relay
itself is in trouble: a message the relay can judge gets 250 with a notice, or
a 5xx with its reason. A client that sends a message again because it never
heard the 250 hears the same answer, and no second copy is queued.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from aliases import conversations
from aliases import record as record_module
from aliases.queue import AUTO_REPLY_COPY, FORWARD, Acceptance, Copy, Queue
from aliases.store import Store
from aliases.views import (
    BUYER,
    BUYER_TO_SELLER,
    FLAG,
    SELLER,
    SELLER_TO_BUYER,
    WRITTEN,
    Activity,
    Decision,
    Route,
    ThreadLink,
)
from bounces.notice import shown
from filters.reading import comparable
from filters.view import Facts

from . import auth, mime, replies
from .auth import Results
from .config import Config
from .delivery import Delivery, bounce_address, new_token
from .leaks import leaked_addresses
from .limits import Rates
from .logs import DECISIONS, AddressLabels
from .metrics import Metrics
from .mime import MalformedMessage
from .names import display_name
from .notices import NoticeContext
from .parse import TRACE_COMMENT, ThreadIds, line_end_problem, relay_traces, thread_ids
from .rewrite import Plan, clean_display_name
from .scrub import for_route
from .sender import shown_senders
from .standard import AUTO_REPLY, Templates, letter
from .view import decoded_header
from .worker import Outgoing, prepare
from .workers import WorkerPool, WorkLimit

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
    unsolicited: bool = False
    notice: str | None = None
    """What became of the notice to the sender: queued, or why none was made."""
    trail: list[str] | None = None
    """Every rule that did not simply pass, with its verdict, in order."""
    copies: list[Copy] = field(default_factory=list)
    """What to queue: the forward, a notice. Empty for a refusal."""
    context: NoticeContext | None = None
    links_written: str | None = None
    kind: str = WRITTEN
    auto_replied: bool = False
    """A buyer's message that came while the seller was away: it leaves the response-time clock."""
    removed: tuple[tuple[str, str], ...] = ()
    also: tuple = ()
    """Writes that go with this message's commit (aliases/queue.py Acceptance.also)."""


@dataclass(frozen=True)
class Arrival:
    """A message as the session received it."""

    route: Route
    raw: bytes
    entity: mime.Entity
    """The top-level header fields, and a view of the body (relay/mime.py parse_head)."""
    envelope_from: str
    smtputf8: bool
    received_at: datetime
    auth: Results | None = None
    """SPF, DKIM and DMARC as the relay found them; None when [auth] require is none."""


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


class Decider:
    def __init__(self, config: Config, store: Store, queue: Queue, workers: WorkerPool, delivery: Delivery,
                 rates: Rates, metrics: Metrics | None = None, templates: Templates | None = None):
        self.rates = rates
        self.metrics = metrics or Metrics()
        self.templates = templates or Templates()
        self.clock = None
        """When a message arrives, if not now: tests script a day of traffic through it."""
        sanctions = config.filters.sanctions
        self._flag_word = re.compile(
            rf"(?:(?i:re|aw|sv|r|rv|fw|fwd)\s*:\s*)*{re.escape(sanctions.flag_word)}\b") if sanctions.enabled else None
        """FLAG as written, first in a subject (after any Re:) or a first line."""
        self.config = config
        self.store = store
        self.queue = queue
        self.workers = workers
        self.delivery = delivery
        self.labels = AddressLabels.of(config)
        self._in_flight: dict[str, asyncio.Future] = {}

    async def handle(self, route: Route, raw: bytes, envelope_from: str, smtputf8: bool,
                     auth: Results | None = None, head: mime.Entity | None = None) -> str:
        """head: raw's parse_head, when the caller has it already (it is read, never changed)."""
        arrival = Arrival(route, raw, head or mime.parse_head(raw), envelope_from, smtputf8, self.clock_now(), auth)
        identity = message_identity(arrival)
        while identity in self._in_flight:  # the client's retry, while its first try is still being decided
            await asyncio.shield(self._in_flight[identity])
        self._in_flight[identity] = asyncio.get_running_loop().create_future()
        try:
            return await self._handle(arrival, identity)
        finally:
            self._in_flight.pop(identity).set_result(None)

    def clock_now(self) -> datetime:
        return self.clock() if self.clock else datetime.now(timezone.utc)

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
        decision = Decision(
            conversation_id=route.conversation_id, direction=route.direction, size_in=len(arrival.raw),
            verdict=outcome.verdict, received_at=arrival.received_at, relay_message_id=outcome.relay_message_id,
            original_message_id=ids.message_id if ids else None, size_out=outcome.size_out,
            rule=outcome.rule, reason=_scrubbed(route, outcome.reason), unsolicited=outcome.unsolicited,
            authentication=arrival.auth.header(self.config.server.hostname) if arrival.auth else None,
            links_written=outcome.links_written, kind=outcome.kind, auto_replied=outcome.auto_replied,
            subject=self._subject(arrival), removed=_removed_json(route, outcome.removed),
        )
        if outcome.copies or outcome.also:
            outcome = await self._commit(outcome, decision, identity)
        else:
            try:
                await self.store.record(decision)
            except Exception:
                # A refusal stands without its log row; the log line keeps it.
                log.exception("message log write failed", extra={"conversation": route.conversation_id})
        DECISIONS.info(outcome.verdict, extra={
            "conversation": route.conversation_id, "direction": route.direction,
            "sender_alias": route.sender_alias, "recipient_alias": route.recipient_alias,
            "sender": self.labels(route.sender.address), "recipient": self.labels(route.recipient.address),
            "size": len(arrival.raw), "size_out": outcome.size_out, "verdict": outcome.verdict, "rule": outcome.rule,
            "reason": self.labels.within(outcome.reason), "message_id": outcome.relay_message_id, "notice": outcome.notice,
            "trail": outcome.trail, "reply": outcome.reply, "duration_ms": round((time.monotonic() - started) * 1000, 1),
        })
        self.metrics.decided(outcome.verdict, outcome.rule, outcome.removed, time.monotonic() - started)
        return outcome.reply

    async def _commit(self, outcome: Outcome, decision: Decision, identity: str) -> Outcome:
        """250 only once the copies are stored; a store that cannot be written is the relay's trouble: 451."""
        context = outcome.context.to_json() if outcome.context else None
        try:
            await self.queue.accept(Acceptance(decision, identity, outcome.reply, tuple(outcome.copies), context,
                                               outcome.also))
        except Exception as exc:
            ref = uuid.uuid4().hex[:12]
            log.error("could not store an accepted message; the client will try again", extra={
                "ref": ref, "conversation": decision.conversation_id, "error": f"{type(exc).__name__}: {exc}"})
            return Outcome(replies.STORE_UNAVAILABLE(ref=ref), "failed", "store_unavailable",
                           f"the queue could not be written, ref {ref}")
        self.delivery.poke()
        return outcome

    async def _decide(self, arrival: Arrival, ids: ThreadIds, identity: str) -> Outcome:
        route = arrival.route
        problem = line_end_problem(arrival.raw)
        if problem:
            return Outcome(replies.BARE_LINE_END(problem=problem), "refused", "bare_line_end", problem)
        hops = len(relay_traces(arrival.entity))
        if hops >= self.config.server.max_relay_hops:
            return Outcome(replies.MAIL_LOOP(hops=hops), "refused", "mail_loop", f"{hops} relay hops")
        known = await self.store.arrived(route, ids.all_referenced, identity)
        if known.route is not None:  # the parties as they are now, not as the RCPT cache had them
            arrival = replace(arrival, route=known.route)
            route = known.route
        refused = self._who(arrival)
        if refused:
            return refused
        links, activity = known.links, known.activity
        if known.earlier_reply:
            return Outcome(replies.ALREADY_HANDLED(reply=known.earlier_reply), "duplicate", "retry",
                           "the same message was accepted before; not again")
        # Counted only now: a forger refused above, or a client's retry, uses up nobody's hour.
        over = self.rates.over(route.sender.address, route.conversation_id)
        if over:
            return Outcome(replies.TOO_MANY_MESSAGES(what=over), "failed", "rate_limited", f"too many {over}")
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

        flagged = None
        if route.direction == BUYER_TO_SELLER and self._is_flag(outgoing):
            flagged = await self.store.flagged_message(route.conversation_id, ids.all_referenced)
        outcome = self._act(arrival, plan, facts, outgoing, flagged)
        outcome.trail = [f"{rule}:{verdict.action}" for rule, verdict in outgoing.judgement.trail] or None
        return outcome

    def _is_flag(self, outgoing: Outgoing) -> bool:
        return self._flag_word is not None and any(
            self._flag_word.match(text) for text in (outgoing.subject.strip(), outgoing.first_line))

    def _subject(self, arrival: Arrival) -> str | None:
        """The subject as the recipient saw it: both parties' addresses replaced by their aliases."""
        subject = decoded_header(arrival.entity.first("subject"))
        return for_route(arrival.route).scrub_text(subject)[:998] if subject else None

    def _who(self, arrival: Arrival) -> Outcome | None:
        """Is the message from the party it says? Its From, and under [auth] require its SPF, DKIM and DMARC."""
        route = arrival.route
        own = {comparable(address) for address in route.sender.sender_addresses}
        strangers = [a for a in shown_senders(decoded_header(arrival.entity.first("from"))) if a not in own]
        if strangers:
            return Outcome(replies.NOT_YOUR_FROM(), "refused", "from_not_sender",
                           f"From shows {self.labels(strangers[0])}, not an address of the sending party")
        refusal = auth.refusal(arrival.auth, self.config.auth.require, seller=route.sender.role == SELLER)
        if refusal is None:
            return None
        temporary, reason = refusal
        if temporary:
            return Outcome(replies.AUTH_UNAVAILABLE(reason=reason), "failed", "auth_unavailable", reason)
        return Outcome(replies.AUTH_FAILED(reason=reason), "refused", "auth_failed", reason)

    def _act(self, arrival: Arrival, plan: Plan, facts: Facts, outgoing: Outgoing,
             flagged: int | None = None) -> Outcome:
        """Carry out the filters' judgement: a notice for a bounce, or the forward the rewrite made."""
        route = arrival.route
        bounce = outgoing.judgement.bounce
        if flagged is not None:
            return self._flag(route, flagged)
        context = NoticeContext.of(route, arrival.envelope_from, arrival.entity, outgoing.subject,
                                   format_datetime(arrival.received_at))
        if bounce:
            return self._bounce(arrival, outgoing, context, bounce.rule, bounce.reason, bounce.snippet)
        if outgoing.leaks:
            ref = uuid.uuid4().hex[:12]
            log.error("rewrite left a real address in the message; not forwarded",
                      extra={"ref": ref, "conversation": route.conversation_id, "count": len(outgoing.leaks)})
            return Outcome(replies.NOT_ANONYMISED(ref=ref), "refused", "not_anonymised", f"address left after rewrite, ref {ref}")
        token = new_token()
        held = route.direction == SELLER_TO_BUYER and route.sender.held_since is not None
        forward = Copy(FORWARD, bounce_address(token, self.config.aliases.domain), route.recipient.address,
                       outgoing.message, token, seen_by=route.recipient.role,
                       held_for=route.sender.id if held else None)
        outcome = Outcome(replies.FORWARDED(message_id=plan.message_id), "forwarded", relay_message_id=plan.message_id,
                          size_out=len(outgoing.message), copies=[forward], context=context,
                          unsolicited=route.direction == SELLER_TO_BUYER and not facts.replies_to_buyer,
                          links_written=" ".join(sorted(outgoing.links_written)) or None, removed=outgoing.removed)
        if outgoing.removed:
            outcome.rule = "attachment_removed"
            outcome.reason = "; ".join(f"{v.rule}: {v.reason}" for v in outgoing.judgement.strips)
            outcome.notice = self._notice(arrival, outgoing, context, outcome, "attachment_removed", outcome.reason,
                                          None, outgoing.removed)
        if held:
            outcome.rule = "seller_held"
            outcome.reason = (f"held until the seller is reinstated: {route.sender.held_reason or 'over the limit'}. "
                              f"To appeal: {self.config.filters.sanctions.appeal}")
            outcome.notice = self._notice(arrival, outgoing, context, outcome, "seller_held", outcome.reason, None)
        if route.direction == BUYER_TO_SELLER and route.recipient.away_at(arrival.received_at):
            outcome.auto_replied = True
            self._vacation_reply(arrival, outgoing, plan, outcome)
        return outcome

    def _vacation_reply(self, arrival: Arrival, outgoing: Outgoing, plan: Plan, outcome: Outcome) -> None:
        """RFC 3834: one reply per conversation per vacation, never to automatic mail or the null sender."""
        route, seller = arrival.route, arrival.route.recipient
        precedence = decoded_header(arrival.entity.first("precedence")).strip().lower()
        if _automatic(arrival, outgoing) or precedence in ("bulk", "list", "junk") \
                or arrival.entity.first("list-id") is not None:
            return
        if route.auto_replied_at is not None and (seller.vacation_since is None
                                                  or route.auto_replied_at >= seller.vacation_since):
            return
        buyer = route.sender
        until = seller.vacation_until.date().isoformat()
        scrubber = for_route(route)
        name = clean_display_name(display_name(seller, buyer.locale))
        subject, body, _ = self.templates.fill(AUTO_REPLY, buyer.locale, {}, {
            "until": until, "seller": name, "order": route.order_id or "",
            "subject": scrubber.scrub_text(outgoing.subject) or "-"})
        original = re.fullmatch(r"<[!-;=?-~]{1,500}>", decoded_header(arrival.entity.first("message-id")).strip())
        letter_bytes = letter(
            sender_name=name, sender_alias=route.recipient_alias, recipient=arrival.envelope_from,
            subject=scrubber.scrub_text(subject), body=scrubber.scrub_text(body),
            message_id=f"<{secrets.token_hex(12)}@{self.config.aliases.domain}>", date=arrival.received_at,
            in_reply_to=original.group(0) if original else None, auto_submitted="auto-replied")
        if leaked_addresses(letter_bytes, scrubber):  # the buyer's own address, in To, is theirs to see
            log.error("vacation reply would show the seller's address; not sent",
                      extra={"conversation": route.conversation_id})
            return
        outcome.copies.append(replace(self.delivery.notice_copy(arrival.envelope_from, letter_bytes, AUTO_REPLY_COPY),
                                      seen_by=buyer.role))
        moment = arrival.received_at
        outcome.also += (lambda connection, _id: conversations.auto_replied(connection, route.conversation_id,
                                                                             moment),)

    def _flag(self, route: Route, message_id: int) -> Outcome:
        """A buyer's FLAG reply: it goes into the seller's record, not to the seller."""
        seller_id = route.recipient.id
        hold = self._hold_if_over(seller_id)

        def record(connection, message_log_id) -> None:
            record_module.add_flag(connection, message_id, seller_id, "buyer", "flagged by the buyer")
            hold(connection, message_log_id)

        return Outcome(replies.FLAGGED(), "flagged", "flag", f"the buyer flagged message {message_id}",
                       kind=FLAG, also=(record,))

    def _hold_if_over(self, seller_id: int):
        """The write that holds a seller whose violations reached [filters.sanctions], in the violation's commit."""
        sanctions = self.config.filters.sanctions
        window = timedelta(days=sanctions.window_days)
        return lambda connection, _id: sanctions.enabled and record_module.hold_if_over(
            connection, seller_id, sanctions.max_violations, window)

    def _notice(self, arrival: Arrival, outgoing: Outgoing, context: NoticeContext, outcome: Outcome, rule: str,
                reason: str, snippet: str | None, removed=()) -> str:
        """Add the sender's notice to what is queued; say what became of it."""
        if _automatic(arrival, outgoing):
            return "none: null sender or Auto-Submitted"
        appeal = self.config.filters.sanctions.appeal if rule == "seller_held" else None
        message = self.delivery.notifier.compose(context, rule, reason, snippet, removed, appeal=appeal)
        if message is None:
            return "none: no notice could be made without the recipient's address"
        outcome.copies.append(replace(self.delivery.notice_copy(arrival.envelope_from, message),
                                      seen_by=arrival.route.sender.role))
        return "queued"

    def _bounce(self, arrival: Arrival, outgoing: Outgoing, context: NoticeContext, rule: str, reason: str,
                snippet) -> Outcome:
        outcome = Outcome(replies.BOUNCED(rule=rule), "bounced", rule, reason, context=context)
        seller = arrival.route.sender
        if arrival.route.direction == SELLER_TO_BUYER and self.config.filters.sanctions.enabled \
                and seller.id is not None:
            outcome.also = (self._hold_if_over(seller.id),)
        outcome.notice = self._notice(arrival, outgoing, context, outcome, rule, reason, snippet)
        if not outcome.copies:
            # RFC 3834: no notice answers automatic mail; and one that cannot be made is not sent.
            # Either way the session says no, for good, and the sender's own server tells them.
            outcome.reply = replies.BLOCKED(reason=shown(reason, 200))
        return outcome

    async def tell_refused(self, route: Route, raw: bytes, envelope_from: str, reply: str) -> None:
        """A notice for one recipient refused in a transaction whose other recipients were accepted."""
        entity = mime.parse_head(raw)
        automatic = decoded_header(entity.first("auto-submitted")).strip().lower() not in ("", "no")
        if automatic or envelope_from == NULL_SENDER:
            return  # RFC 3834: automatic mail is never answered automatically
        context = NoticeContext.of(route, envelope_from, entity, decoded_header(entity.first("subject")),
                                   format_datetime(datetime.now(timezone.utc)))
        message = self.delivery.notifier.compose(context, "refused", reply[4:], None)
        if message is None:
            return
        copy = self.delivery.notice_copy(envelope_from, message)
        decision = Decision(conversation_id=route.conversation_id, direction=route.direction, size_in=len(raw),
                            verdict="notice", received_at=datetime.now(timezone.utc), rule="refused",
                            reason=f"refused for this recipient, others accepted: {reply}")
        try:
            await self.queue.accept(Acceptance(decision, uuid.uuid4().hex, reply, (copy,), context.to_json()))
            self.delivery.poke()
        except Exception:
            log.exception("could not queue the notice of a refused recipient",
                          extra={"conversation": route.conversation_id})

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
            buyer_links=activity.buyer_links,
        )

    def _plan(self, route: Route, ids: ThreadIds, links: dict[str, ThreadLink], arrival: Arrival) -> Plan:
        def translated(id_list):
            return tuple(links[i].translated for i in id_list if i in links and links[i].translated)

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
            scrubber=for_route(route),
            domain=domain,
            cid_key=secrets.token_bytes(16),
            scrub_metadata=self.config.rewrite.scrub_metadata,
            trace=f"by {self.config.server.hostname} {TRACE_COMMENT} with {protocol} id {token};\r\n "
                  f"{format_datetime(arrival.received_at)}",
        )


def _scrubbed(route: Route, text: str | None) -> str | None:
    """Text for the message center, where parties are shown by alias: a file named after an address too."""
    return for_route(route).scrub_text(text) if text else text


def _removed_json(route: Route, removed: tuple[tuple[str, str], ...]) -> str | None:
    return json.dumps([{"file": _scrubbed(route, name), "rule": rule} for name, rule in removed],
                      ensure_ascii=False) if removed else None


def _automatic(arrival: Arrival, outgoing: Outgoing) -> bool:
    """Mail no notice may answer (RFC 3834): the null sender, or Auto-Submitted other than "no".
    The session refuses <> at RCPT already; this holds even if that ever changes."""
    return arrival.envelope_from == NULL_SENDER or outgoing.auto_submitted
