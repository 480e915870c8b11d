"""The message center: a conversation as each party saw it, and what the marketplace and operators change.

Support staff settle disputes from it, so it shows parties by role and alias;
a real address appears only when the caller asks as an operator (reveal=True).
It reads and writes on the cold path, through the async engine: nothing here
is on the way of a message being accepted.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, update

from . import record as seller_record
from .addresses import normalize
from .database import Database
from .models import (
    Alias,
    ApiToken,
    Conversation,
    Flag,
    MessageBody,
    MessageRecord,
    Party,
    aware,
    utcnow,
)
from .queue import AUTO_REPLY_COPY, NOTICE, Queue
from .views import BUYER, BUYER_TO_SELLER, SELLER, NotFound, StoreError

_MESSAGES, _BODIES, _CONVERSATIONS, _PARTIES, _ALIASES, _FLAGS, _TOKENS = (
    MessageRecord.__table__, MessageBody.__table__, Conversation.__table__, Party.__table__, Alias.__table__,
    Flag.__table__, ApiToken.__table__)
TOKEN_BYTES = 32


@dataclass(frozen=True)
class Body:
    message_id: int
    kind: str
    seen_by: str
    body: bytes
    stored_at: datetime


def _iso(moment: datetime | None) -> str | None:
    return aware(moment).isoformat() if moment is not None else None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class MessageCenter:
    def __init__(self, database: Database, domain: str):
        self.database = database
        self.engine = database.engine
        self.domain = domain

    def _alias(self, local_part: str) -> str:
        return f"{local_part}@{self.domain}"

    # -- reading a conversation ---------------------------------------------------------

    async def conversation(self, conversation_id: str, reveal: bool = False) -> dict:
        async with self.engine.connect() as connection:
            return await connection.run_sync(self._conversation, conversation_id, reveal)

    def _conversation(self, connection, conversation_id: str, reveal: bool) -> dict:
        row = connection.execute(select(_CONVERSATIONS).where(_CONVERSATIONS.c.id == conversation_id)).first()
        if row is None:
            raise NotFound(f"no conversation {conversation_id}")
        aliases = dict(connection.execute(select(_ALIASES.c.party_id, _ALIASES.c.local_part)
                                          .where(_ALIASES.c.conversation_id == conversation_id)).all())
        parties = {p.id: p for p in connection.execute(
            select(_PARTIES).where(_PARTIES.c.id.in_([row.buyer_id, row.seller_id]))).all()}

        def party(party_id: int, role: str) -> dict:
            p = parties[party_id]
            shown = {"role": role, "alias": self._alias(aliases[party_id]), "display_name": p.display_name,
                     "locale": p.locale}
            if role == BUYER:
                shown["opted_out"] = p.opted_out
            else:
                shown["on_vacation_until"] = _iso(p.vacation_until)
                shown["held_since"] = _iso(p.held_since)
            if reveal:
                shown["address"] = p.address
            return shown

        buyer, seller = party(row.buyer_id, BUYER), party(row.seller_id, SELLER)
        flags: dict[int, list[dict]] = {}
        for flag in connection.execute(select(_FLAGS).join(_MESSAGES, _MESSAGES.c.id == _FLAGS.c.message_id)
                                       .where(_MESSAGES.c.conversation_id == conversation_id)
                                       .order_by(_FLAGS.c.id)):
            flags.setdefault(flag.message_id, []).append(
                {"source": flag.source, "reason": flag.reason, "at": _iso(flag.created_at)})
        bodies: dict[int, list[dict]] = {}
        for body in connection.execute(
                select(_BODIES.c.message_id, _BODIES.c.kind, _BODIES.c.seen_by, func.length(_BODIES.c.body))
                .join(_MESSAGES, _MESSAGES.c.id == _BODIES.c.message_id)
                .where(_MESSAGES.c.conversation_id == conversation_id).order_by(_BODIES.c.id)):
            bodies.setdefault(body[0], []).append({"kind": body[1], "seen_by": body[2], "size": body[3]})
        messages = []
        for m in connection.execute(select(_MESSAGES).where(_MESSAGES.c.conversation_id == conversation_id)
                                    .order_by(_MESSAGES.c.received_at, _MESSAGES.c.id)):
            writer, reader = (buyer, seller) if m.direction == BUYER_TO_SELLER else (seller, buyer)
            kept = bodies.get(m.id, [])
            messages.append({
                "id": m.id, "kind": m.kind, "direction": m.direction,
                "from": {"role": writer["role"], "alias": writer["alias"]},
                "to": {"role": reader["role"], "alias": reader["alias"]},
                "received_at": _iso(m.received_at), "subject": m.subject,
                "verdict": m.verdict, "rule": m.rule, "reason": m.reason,
                "delivery": m.delivery, "attempts": m.attempts, "next_hop_reply": m.next_hop_reply,
                "removed_attachments": json.loads(m.removed) if m.removed else [],
                "notice_sent": any(b["kind"] == NOTICE for b in kept),
                "auto_reply_sent": any(b["kind"] == AUTO_REPLY_COPY for b in kept),
                "no_response_needed": m.no_response_needed, "during_vacation": m.auto_replied,
                "unsolicited": m.unsolicited, "flags": flags.get(m.id, []), "bodies": kept,
                "size_in": m.size_in, "size_out": m.size_out,
            })
        return {
            "conversation_id": row.id, "order_id": row.order_id, "category": row.category,
            "created_at": _iso(row.created_at), "delivered_at": _iso(row.delivered_at),
            "review_requested_at": _iso(row.review_requested_at),
            "buyer": buyer, "seller": seller, "messages": messages,
        }

    async def bodies(self, conversation_id: str) -> list[tuple[dict, list[Body]]]:
        """Every message of the conversation in order, each with the bodies kept for it."""
        thread = await self.conversation(conversation_id)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(
                select(_BODIES).join(_MESSAGES, _MESSAGES.c.id == _BODIES.c.message_id)
                .where(_MESSAGES.c.conversation_id == conversation_id).order_by(_BODIES.c.id))).all()
        kept: dict[int, list[Body]] = {}
        for r in rows:
            kept.setdefault(r.message_id, []).append(Body(r.message_id, r.kind, r.seen_by, r.body, aware(r.stored_at)))
        return [(m, kept.get(m["id"], [])) for m in thread["messages"]]

    async def search(self, query: str, limit: int = 50) -> list[dict]:
        """Conversations by order id, by alias (whole or local part), or by a party's address."""
        query = query.strip()
        if not query:
            return []
        local = query.lower().partition("@")[0] if query.lower().endswith("@" + self.domain) or "@" not in query \
            else None
        conditions = [_CONVERSATIONS.c.order_id == query, _CONVERSATIONS.c.id == query.lower()]
        if local:
            conditions.append(_CONVERSATIONS.c.id.in_(select(_ALIASES.c.conversation_id)
                                                      .where(_ALIASES.c.local_part == local)))
        if "@" in query:
            try:
                address = normalize(query)
            except ValueError:
                address = None
            if address:
                conditions.append(or_(
                    _CONVERSATIONS.c.buyer_id.in_(select(_PARTIES.c.id).where(_PARTIES.c.address == address)),
                    _CONVERSATIONS.c.seller_id.in_(select(_PARTIES.c.id).where(_PARTIES.c.address == address))))
        async with self.engine.connect() as connection:
            rows = (await connection.execute(
                select(_CONVERSATIONS.c.id, _CONVERSATIONS.c.order_id, _CONVERSATIONS.c.category,
                       _CONVERSATIONS.c.created_at,
                       select(func.count()).where(_MESSAGES.c.conversation_id == _CONVERSATIONS.c.id)
                       .scalar_subquery())
                .where(or_(*conditions)).order_by(_CONVERSATIONS.c.created_at.desc()).limit(limit))).all()
        return [{"conversation_id": r[0], "order_id": r[1], "category": r[2], "created_at": _iso(r[3]),
                 "messages": r[4]} for r in rows]

    async def recent(self, limit: int = 20) -> list[dict]:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(
                select(_CONVERSATIONS.c.id, _CONVERSATIONS.c.order_id, _CONVERSATIONS.c.category,
                       _CONVERSATIONS.c.created_at).order_by(_CONVERSATIONS.c.created_at.desc()).limit(limit))).all()
        return [{"conversation_id": r[0], "order_id": r[1], "category": r[2], "created_at": _iso(r[3])}
                for r in rows]

    # -- marks, flags, holds --------------------------------------------------------------

    async def _message(self, connection, message_id: int):
        row = (await connection.execute(
            select(_MESSAGES.c.id, _MESSAGES.c.direction, _MESSAGES.c.verdict, _MESSAGES.c.conversation_id,
                   _CONVERSATIONS.c.seller_id)
            .join(_CONVERSATIONS, _CONVERSATIONS.c.id == _MESSAGES.c.conversation_id)
            .where(_MESSAGES.c.id == message_id))).first()
        if row is None:
            raise NotFound(f"no message {message_id}")
        return row

    async def no_response_needed(self, message_id: int, needed: bool = True) -> None:
        """A buyer's message the seller need not answer: it leaves the response-time clock."""
        async with self.engine.begin() as connection:
            row = await self._message(connection, message_id)
            if row.direction != BUYER_TO_SELLER:
                raise StoreError(f"message {message_id} is the seller's: only a buyer's message awaits an answer")
            await connection.execute(update(_MESSAGES).where(_MESSAGES.c.id == message_id)
                                     .values(no_response_needed=needed))

    async def flag(self, message_id: int, source: str, reason: str | None, max_violations: int | None,
                   window: timedelta) -> bool:
        """Flag a seller's delivered message; True if it put the seller on hold."""
        async with self.engine.begin() as connection:
            row = await self._message(connection, message_id)
            if not (await connection.execute(select(_MESSAGES.c.id).where(
                    _MESSAGES.c.id == message_id, seller_record.flaggable()))).first():
                raise StoreError(f"message {message_id} is not a message the buyer received from the seller")

            def write(sync) -> bool:
                if not seller_record.add_flag(sync, message_id, row.seller_id, source, reason):
                    raise StoreError(f"message {message_id} is flagged by the {source} already")
                return max_violations is not None and seller_record.hold_if_over(
                    sync, row.seller_id, max_violations, window)
            return await connection.run_sync(write)

    async def _party_id(self, connection, address: str, role: str) -> int:
        party_id = (await connection.execute(select(_PARTIES.c.id).where(
            _PARTIES.c.address == normalize(address), _PARTIES.c.role == role))).scalar()
        if party_id is None:
            raise NotFound(f"no {role} is registered as {normalize(address)}")
        return party_id

    async def record(self, seller: str, window: timedelta) -> dict:
        async with self.engine.connect() as connection:
            seller_id = await self._party_id(connection, seller, SELLER)
            party = (await connection.execute(select(_PARTIES).where(_PARTIES.c.id == seller_id))).one()

            def read(sync):
                since = seller_record.counting_since(sync, seller_id, window, utcnow())
                return seller_record.violations(sync, seller_id), since
            found, since = await connection.run_sync(read)
        return {
            "seller": normalize(seller), "display_name": party.display_name,
            "held_since": _iso(party.held_since), "held_reason": party.held_reason,
            "reinstated_at": _iso(party.reinstated_at),
            "vacation": {"since": _iso(party.vacation_since), "until": _iso(party.vacation_until)},
            "counting_since": since.isoformat(),
            "violations_counting": sum(1 for v in found if v.at > since),
            "violations": [{"kind": v.kind, "rule": v.rule, "at": v.at.isoformat(), "source": v.source,
                            "conversation_id": v.conversation_id, "message_id": v.message_id} for v in found],
        }

    async def held_sellers(self) -> list[dict]:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(select(_PARTIES.c.address, _PARTIES.c.display_name,
                                                    _PARTIES.c.held_since, _PARTIES.c.held_reason)
                                             .where(_PARTIES.c.role == SELLER, _PARTIES.c.held_since.is_not(None))
                                             .order_by(_PARTIES.c.held_since))).all()
        return [{"seller": r[0], "display_name": r[1], "held_since": _iso(r[2]), "held_reason": r[3]} for r in rows]

    async def reinstate(self, seller: str) -> int:
        """Lift a seller's hold; returns how many held messages are released to delivery."""
        async with self.engine.begin() as connection:
            seller_id = await self._party_id(connection, seller, SELLER)
            return await connection.run_sync(seller_record.reinstate, seller_id)

    async def set_vacation(self, seller: str, until: datetime | None, since: datetime | None = None) -> None:
        """until None: back now. since defaults to now, or to when a vacation still running began: moving
        its end must not send every conversation a second automatic reply."""
        async with self.engine.begin() as connection:
            seller_id = await self._party_id(connection, seller, SELLER)
            now = utcnow()
            if since is None:
                running = (await connection.execute(select(_PARTIES.c.vacation_since, _PARTIES.c.vacation_until)
                                                    .where(_PARTIES.c.id == seller_id))).one()
                away = running[1] is not None and aware(running[1]) > now and (
                    running[0] is None or aware(running[0]) <= now)
                since = aware(running[0]) if away and running[0] is not None else now
            values = {"vacation_since": since, "vacation_until": until} if until else {"vacation_until": None}
            await connection.execute(update(_PARTIES).where(_PARTIES.c.id == seller_id).values(**values))

    async def set_delivered(self, conversation_id: str, delivered_at: datetime) -> None:
        async with self.engine.begin() as connection:
            done = await connection.execute(update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == conversation_id)
                                            .values(delivered_at=delivered_at))
            if not done.rowcount:
                raise NotFound(f"no conversation {conversation_id}")

    async def review_state(self, conversation_id: str) -> tuple[datetime | None, datetime | None]:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(_CONVERSATIONS.c.delivered_at, _CONVERSATIONS.c.review_requested_at)
                                            .where(_CONVERSATIONS.c.id == conversation_id))).first()
        if row is None:
            raise NotFound(f"no conversation {conversation_id}")
        return aware(row[0]), aware(row[1])

    # -- retention ------------------------------------------------------------------------

    async def old_bodies(self, before: datetime) -> int:
        async with self.engine.connect() as connection:
            return (await connection.execute(select(func.count()).select_from(_BODIES)
                                             .where(_BODIES.c.stored_at < before))).scalar_one()

    async def purge(self, before: datetime, batch: int = 500) -> AsyncIterator[int]:
        """Delete bodies stored before `before`, a batch per transaction; yields each batch's count."""
        while True:
            async with self.engine.begin() as connection:
                count = await connection.run_sync(Queue.purge_bodies, before, batch)
            if not count:
                return
            yield count

    # -- tokens ---------------------------------------------------------------------------

    async def create_token(self, name: str) -> str:
        if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
            raise StoreError("a token name is 1 to 100 letters, digits, '-', '_' or '.'")
        token = "mr_" + secrets.token_urlsafe(TOKEN_BYTES)
        async with self.engine.begin() as connection:
            if (await connection.execute(select(_TOKENS.c.name).where(_TOKENS.c.name == name))).first():
                raise StoreError(f"a token named {name} exists; revoke it first")
            await connection.execute(insert(_TOKENS).values(name=name, digest=token_digest(token),
                                                            created_at=utcnow()))
        return token

    async def revoke_token(self, name: str) -> bool:
        async with self.engine.begin() as connection:
            return (await connection.execute(delete(_TOKENS).where(_TOKENS.c.name == name))).rowcount > 0

    async def token_name(self, token: str) -> str | None:
        """The name of a valid token, or None. Looked up by its digest, compared in constant time."""
        digest = token_digest(token)
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(_TOKENS.c.name, _TOKENS.c.digest)
                                            .where(_TOKENS.c.digest == digest))).first()
        return row[0] if row and hmac.compare_digest(row[1], digest) else None

    # -- the response-time report's rows -----------------------------------------------------

    async def response_rows(self, since: datetime) -> list:
        """Messages of conversations with activity since `since`, in order, with their seller."""
        async with self.engine.connect() as connection:
            active = select(_MESSAGES.c.conversation_id).where(_MESSAGES.c.received_at >= since).distinct()
            return (await connection.execute(
                select(_CONVERSATIONS.c.seller_id, _PARTIES.c.address, _PARTIES.c.display_name,
                       _MESSAGES.c.conversation_id, _MESSAGES.c.id, _MESSAGES.c.direction, _MESSAGES.c.kind,
                       _MESSAGES.c.verdict, _MESSAGES.c.received_at, _MESSAGES.c.no_response_needed,
                       _MESSAGES.c.auto_replied)
                .join(_CONVERSATIONS, _CONVERSATIONS.c.id == _MESSAGES.c.conversation_id)
                .join(_PARTIES, _PARTIES.c.id == _CONVERSATIONS.c.seller_id)
                .where(_MESSAGES.c.conversation_id.in_(active))
                .order_by(_MESSAGES.c.conversation_id, _MESSAGES.c.received_at, _MESSAGES.c.id))).all()

