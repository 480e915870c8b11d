"""One message's way through the relay, after the session accepted its recipient.

check the bytes -> translate thread ids (store) -> rewrite in a worker -> leak check
-> next hop -> message log and log line -> the reply the client sees.
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
from typing import Callable

from aliases.store import Decision, Route, Store

from . import delivery, mime, replies
from .config import Config
from .logs import DECISIONS, AddressLabels
from .names import display_name
from .parse import line_end_problem, thread_ids
from .rewrite import MalformedMessage, Plan
from .scrub import AddressScrubber
from .worker import Outgoing, prepare

log = logging.getLogger(__name__)


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


class Forwarder:
    def __init__(self, config: Config, store: Store, executor: Callable[[], Executor]):
        self.config = config
        self.store = store
        self.executor = executor
        self.labels = AddressLabels(config.log.real_addresses)

    async def handle(self, route: Route, raw: bytes, smtputf8: bool) -> str:
        started, received_at = time.monotonic(), datetime.now(timezone.utc)
        ids = None
        try:
            entity = mime.parse_entity(raw)
            ids = thread_ids(entity)
            outcome = await self._decide_and_send(route, raw, ids, smtputf8)
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("message handling failed", extra={"ref": ref, "conversation": route.conversation_id})
            outcome = Outcome(replies.INTERNAL_ERROR(ref=ref), "failed", "internal_error", f"internal error, ref {ref}")
        await self.store.record(Decision(
            conversation_id=route.conversation_id, direction=route.direction, size_in=len(raw),
            verdict=outcome.verdict, received_at=received_at, relay_message_id=outcome.relay_message_id,
            original_message_id=ids.message_id if ids else None, size_out=outcome.size_out,
            rule=outcome.rule, reason=outcome.reason, next_hop_reply=outcome.next_hop_reply,
        ))
        DECISIONS.info(outcome.verdict, extra={
            "conversation": route.conversation_id, "direction": route.direction,
            "sender_alias": route.sender_alias, "recipient_alias": route.recipient_alias,
            "sender": self.labels(route.sender.address), "recipient": self.labels(route.recipient.address),
            "size": len(raw), "size_out": outcome.size_out, "verdict": outcome.verdict, "rule": outcome.rule,
            "reason": outcome.reason, "message_id": outcome.relay_message_id, "next_hop": outcome.next_hop_reply,
            "reply": outcome.reply, "duration_ms": round((time.monotonic() - started) * 1000, 1),
        })
        return outcome.reply

    async def _decide_and_send(self, route: Route, raw: bytes, ids, smtputf8: bool) -> Outcome:
        problem = line_end_problem(raw)
        if problem:
            return Outcome(replies.BARE_LINE_END(problem=problem), "refused", "bare_line_end", problem)

        links = await self.store.thread_links(route.conversation_id, route.direction, ids.all_referenced)
        plan = self._plan(route, ids, links)
        try:
            outgoing = await self._prepare(raw, plan)
        except MalformedMessage as exc:
            return Outcome(replies.MALFORMED(reason=str(exc)), "refused", "malformed", str(exc))
        if outgoing.leaks:
            ref = uuid.uuid4().hex[:12]
            log.error("rewrite left a real address in the message; not forwarded",
                      extra={"ref": ref, "conversation": route.conversation_id, "count": len(outgoing.leaks)})
            return Outcome(replies.NOT_ANONYMISED(ref=ref), "refused", "not_anonymised", f"address left after rewrite, ref {ref}")

        answer = await delivery.send(
            self.config.delivery, envelope_from=route.sender_alias, recipients=[route.recipient.address],
            message=outgoing.message, helo=self.config.server.hostname,
            smtputf8=smtputf8 or not route.recipient.address.isascii(),
        )
        common = dict(relay_message_id=plan.message_id, size_out=len(outgoing.message), next_hop_reply=answer.text)
        if answer.accepted:
            return Outcome(replies.FORWARDED(message_id=plan.message_id), "forwarded", **common)
        if answer.permanent:
            return Outcome(replies.NEXT_HOP_REFUSED(answer=answer.text[:200]), "refused", "next_hop_refused", answer.text, **common)
        reply = replies.NEXT_HOP_DEFERRED if answer.text[:1] == "4" else replies.NEXT_HOP_UNAVAILABLE
        return Outcome(reply(), "failed", "next_hop_unavailable", answer.text, **common)

    def _plan(self, route: Route, ids, links) -> Plan:
        def translated(id_list):
            return tuple(links[i].translated for i in id_list if i in links)

        domain = self.config.aliases.domain
        scrubber = AddressScrubber({
            **{address: route.sender_alias for address in route.sender.sender_addresses},
            **{address: route.recipient_alias for address in route.recipient.sender_addresses},
        })
        return Plan(
            sender_name=display_name(route.sender, route.recipient.locale),
            sender_alias=route.sender_alias,
            recipient_address=route.recipient.address,
            message_id=f"<{secrets.token_hex(12)}@{domain}>",
            in_reply_to=translated(ids.in_reply_to),
            references=translated(ids.references),
            scrubber=scrubber,
            domain=domain,
            cid_key=secrets.token_bytes(16),
        )

    async def _prepare(self, raw: bytes, plan: Plan) -> Outgoing:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor(), prepare, raw, plan)
        except BrokenProcessPool:
            # A worker died (killed, out of memory); the next call gets a fresh pool.
            log.error("rewrite worker died; restarting the pool")
            raise
