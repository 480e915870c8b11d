"""The queue in the store: what the relay has accepted and not yet handed on.

Accepting and queueing are one commit. The message log row, its outgoing
copies, their bounce tokens and the message's identity (for a client's retry)
go in together, in one transaction with the acceptances of every other
session waiting at that moment: one fsync for many messages (group commit).
Bodies are written once, as bytes, through SQLAlchemy Core; no ORM object
holds them.

Delivery takes rows by lease: a node writes its name and an expiry into the
rows it claims (on PostgreSQL under FOR UPDATE SKIP LOCKED, so two nodes never
claim one row). A node that dies loses its claims when the lease runs out.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .database import Database
from .models import BounceToken, HandedOn, MessageBody, MessageRecord, OutgoingMessage, Party, aware, utcnow
from .views import Decision

log = logging.getLogger(__name__)
_MESSAGES, _OUTGOING, _TOKENS, _HANDED_ON, _BODIES = (
    MessageRecord.__table__, OutgoingMessage.__table__, BounceToken.__table__, HandedOn.__table__,
    MessageBody.__table__)
_PARTIES = Party.__table__
FORWARD, NOTICE, AUTO_REPLY_COPY = "forward", "notice", "auto_reply"
QUEUED, DEFERRED, DELIVERED, FAILED = "queued", "deferred", "delivered", "failed"
REMEMBER_HANDED_ON = timedelta(days=1)
KEEP_TOKENS = timedelta(days=30)


@dataclass(frozen=True)
class Copy:
    """One message to hand on: a forward to the recipient, or a notice to the sender."""

    kind: str
    envelope_from: str
    recipient: str
    body: bytes
    token: str
    """The bounce token in envelope_from."""
    seen_by: str | None = None
    """The role of the party who receives it: its body is kept for the message center under that role."""
    held_for: int | None = None
    """A held seller's party id: the forward is stored, not delivered, while that seller is still held
    when it is committed (a reinstatement in between must not leave it waiting for nothing)."""


@dataclass(frozen=True)
class Acceptance:
    """Everything one accepted message puts in the store, committed together."""

    decision: Decision
    identity: str
    reply: str
    copies: tuple[Copy, ...]
    notice_context: str | None = None
    also: tuple = ()
    """More writes that stand or fall with this message, each a function of (connection, message log id)."""


@dataclass(frozen=True)
class Claimed:
    id: int
    message_id: int | None
    kind: str
    envelope_from: str
    recipient: str
    attempts: int
    created_at: datetime
    warned: bool
    conversation_id: str | None = None
    """For the delivery's log lines, so `relay logs --conversation` shows them too."""


@dataclass(frozen=True)
class Waiting:
    """A queued message as an operator sees it."""

    id: int
    message_id: int | None
    kind: str
    recipient: str
    created_at: datetime
    due_at: datetime
    attempts: int
    last_reply: str | None
    conversation_id: str | None
    leased_by: str | None
    held: bool = False
    """A held seller's message: it waits for `relay seller reinstate`, not for a retry."""


class Queue:
    def __init__(self, database: Database, node: str, lease: float, keep_bodies: timedelta = timedelta(days=90),
                 purge_every: timedelta = timedelta(hours=1)):
        """keep_bodies: [retention] days; bodies older than that are purged in the group commit, every
        purge_every; the message log rows stay."""
        self.keep_bodies = keep_bodies
        self.purge_every = purge_every
        self.database = database
        self.engine = database.engine
        self.node = node
        self.lease = timedelta(seconds=lease)
        self.postgres = database.postgres
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._committer: asyncio.Task | None = None
        self._purged_at: datetime | None = None

    # -- accepting: group commit --------------------------------------------------------

    async def start(self) -> None:
        self._committer = asyncio.create_task(self._commit_forever(), name="queue-committer")

    async def close(self) -> None:
        if self._committer is not None:
            self._committer.cancel()
            try:
                await self._committer
            except asyncio.CancelledError:
                pass

    async def accept(self, acceptance: Acceptance) -> int:
        """Commit an accepted message and its copies; returns its message log id. Raises if the store
        cannot be written, before anything is handed on: the client then hears 451."""
        return await self._in_next_commit(lambda connection: self._write(connection, acceptance))

    async def _in_next_commit(self, work):
        """Run work(connection), a plain function, in the next group transaction, with whatever else is
        waiting then."""
        if self._committer is None or self._committer.done():  # a command, not a running relay
            return await self.database.write(work)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        self._wake.set()
        return await asyncio.shield(future)

    async def _commit_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[object, asyncio.Future]]) -> None:
        try:
            ids = await self.database.write(self._together, [work for work, _ in batch])
        except Exception as exc:
            if len(batch) > 1:  # one bad acceptance must not fail the others: each again, alone
                for single in batch:
                    await self._commit([single])
                return
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        for (_, future), result in zip(batch, ids):
            if not future.done():
                future.set_result(result)

    def _together(self, connection, works) -> list:
        results = [work(connection) for work in works]
        self._purge(connection)
        return results

    def _write(self, connection, acceptance: Acceptance) -> int:
        now = utcnow()
        decision = acceptance.decision
        forwards = [c for c in acceptance.copies if c.kind == FORWARD]
        message_id = (connection.execute(insert(_MESSAGES).returning(_MESSAGES.c.id), {
            **decision.__dict__, "finished_at": now, "delivery": QUEUED if forwards else None,
            "attempts": 0, "notice_context": acceptance.notice_context,
        })).scalar_one()
        if acceptance.copies:
            held = {copy.held_for for copy in acceptance.copies if copy.held_for is not None}
            still = set(connection.execute(select(_PARTIES.c.id).where(
                _PARTIES.c.id.in_(held), _PARTIES.c.held_since.is_not(None))).scalars()) if held else set()
            # A body the message center keeps is written once, there; its queue row points at it.
            kept = {index: connection.execute(insert(_BODIES).returning(_BODIES.c.id), {
                "message_id": message_id, "kind": copy.kind, "seen_by": copy.seen_by, "body": copy.body,
                "stored_at": now}).scalar_one() for index, copy in enumerate(acceptance.copies) if copy.seen_by}
            connection.execute(insert(_OUTGOING), [{
                "message_id": message_id, "kind": copy.kind, "envelope_from": copy.envelope_from,
                "recipient": copy.recipient, "body": b"" if index in kept else copy.body, "body_id": kept.get(index),
                "created_at": now, "due_at": now, "attempts": 0, "warned": False, "held": copy.held_for in still,
            } for index, copy in enumerate(acceptance.copies)])
            connection.execute(insert(_TOKENS), [
                {"token": copy.token, "message_id": message_id, "kind": copy.kind, "created_at": now}
                for copy in acceptance.copies])
        for also in acceptance.also:
            also(connection, message_id)
        if acceptance.reply.startswith("2"):  # a refusal is decided again on a retry, not remembered
            connection.execute(self._remember(acceptance.identity, acceptance.reply, now))
        return message_id

    def _remember(self, identity: str, reply: str, now: datetime):
        dialect = postgresql if self.postgres else sqlite
        statement = dialect.insert(_HANDED_ON).values(identity=identity, reply=reply, created_at=now)
        return statement.on_conflict_do_update(index_elements=["identity"], set_={"reply": reply, "created_at": now})

    def _purge(self, connection) -> None:
        now = utcnow()
        if self._purged_at is not None and now - self._purged_at < self.purge_every:
            return
        self._purged_at = now
        connection.execute(delete(_HANDED_ON).where(_HANDED_ON.c.created_at < now - REMEMBER_HANDED_ON))
        connection.execute(delete(_TOKENS).where(_TOKENS.c.created_at < now - KEEP_TOKENS))
        purged = self.purge_bodies(connection, now - self.keep_bodies)
        if purged:
            log.info("bodies past the retention purged", extra={"bodies": purged})

    @staticmethod
    def purge_bodies(connection, before: datetime, limit: int | None = None) -> int:
        """Delete kept bodies stored before `before` (at most limit of them); the message log rows stay."""
        queued = select(_OUTGOING.c.id).where(_OUTGOING.c.body_id == _BODIES.c.id)
        old = (_BODIES.c.stored_at < before) & ~queued.exists()  # a held message's body waits with it
        if limit is not None:
            old = _BODIES.c.id.in_(select(_BODIES.c.id).where(old).order_by(_BODIES.c.id).limit(limit))
        return connection.execute(delete(_BODIES).where(old)).rowcount

    @staticmethod
    def handed_on(connection, identity: str) -> str | None:
        """The reply given when this message was accepted within a day, or None."""
        return connection.execute(select(_HANDED_ON.c.reply).where(
            _HANDED_ON.c.identity == identity, _HANDED_ON.c.created_at > utcnow() - REMEMBER_HANDED_ON)).scalar()

    # -- delivering: claims, leases, outcomes --------------------------------------------

    async def claim(self, limit: int) -> list[Claimed]:
        """Up to limit due messages, leased to this node."""
        now = utcnow()
        due = (select(_OUTGOING.c.id)
               .where(_OUTGOING.c.due_at <= now, _OUTGOING.c.held.is_(False),
                      or_(_OUTGOING.c.lease_until.is_(None), _OUTGOING.c.lease_until < now))
               .order_by(_OUTGOING.c.due_at).limit(limit))
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        statement = (update(_OUTGOING).where(_OUTGOING.c.id.in_(due))
                     .values(lease_owner=self.node, lease_until=now + self.lease)
                     .returning(_OUTGOING.c.id, _OUTGOING.c.message_id, _OUTGOING.c.kind, _OUTGOING.c.envelope_from,
                                _OUTGOING.c.recipient, _OUTGOING.c.attempts, _OUTGOING.c.created_at,
                                _OUTGOING.c.warned))

        def claim(connection):
            rows = connection.execute(statement).all()
            ids = [row[1] for row in rows if row[1] is not None]
            return rows, dict(connection.execute(select(_MESSAGES.c.id, _MESSAGES.c.conversation_id).where(
                _MESSAGES.c.id.in_(ids))).all()) if ids else {}

        rows, conversations = await self._in_next_commit(claim)  # a write too: it shares the next fsync
        return [Claimed(*row[:6], aware(row[6]), row[7], conversations.get(row[1]))
                for row in sorted(rows, key=lambda r: r[0])]

    async def body(self, item: Claimed) -> bytes:
        return await self.database.read(lambda connection: connection.execute(
            select(func.coalesce(_BODIES.c.body, _OUTGOING.c.body))
            .select_from(_OUTGOING.outerjoin(_BODIES, _BODIES.c.id == _OUTGOING.c.body_id))
            .where(_OUTGOING.c.id == item.id)).scalar_one())

    async def release_own(self) -> int:
        """Leases this node's name held when it last stopped or died: free them now."""
        async with self.engine.begin() as connection:
            result = await connection.execute(update(_OUTGOING).where(_OUTGOING.c.lease_owner == self.node)
                                              .values(lease_owner=None, lease_until=None))
        return result.rowcount

    async def release(self, items: list[Claimed]) -> None:
        """Give back claims on messages not attempted (a clean stop): the next start takes them at once."""
        if items:
            async with self.engine.begin() as connection:
                await connection.execute(update(_OUTGOING).where(
                    _OUTGOING.c.id.in_([i.id for i in items]), _OUTGOING.c.lease_owner == self.node)
                    .values(lease_owner=None, lease_until=None))

    async def delivered(self, item: Claimed, reply: str) -> None:
        await self._finish(item, reply, DELIVERED)

    async def failed(self, item: Claimed, reply: str, notice: Copy | None = None) -> None:
        """A message that will never be delivered: out of the queue, its failure notice (if any) in."""
        await self._finish(item, reply, FAILED, notice)

    async def _finish(self, item: Claimed, reply: str, state: str, notice: Copy | None = None) -> None:
        await self._in_next_commit(lambda connection: self._finished(connection, item, reply, state, notice))

    def _finished(self, connection, item: Claimed, reply: str, state: str, notice: Copy | None) -> None:
        connection.execute(delete(_OUTGOING).where(_OUTGOING.c.id == item.id))
        if item.message_id is not None and item.kind == FORWARD:
            connection.execute(update(_MESSAGES).where(_MESSAGES.c.id == item.message_id).values(
                delivery=state, next_hop_reply=reply, attempts=item.attempts + 1))
        if notice is not None:
            self._add(connection, item.message_id, notice)

    async def deferred(self, item: Claimed, reply: str, due: datetime, warning: Copy | None = None) -> None:
        await self._in_next_commit(lambda connection: self._deferred(connection, item, reply, due, warning))

    def _deferred(self, connection, item: Claimed, reply: str, due: datetime, warning: Copy | None) -> None:
        connection.execute(update(_OUTGOING).where(_OUTGOING.c.id == item.id).values(
            attempts=item.attempts + 1, due_at=due, last_reply=reply, lease_owner=None, lease_until=None,
            warned=item.warned or warning is not None))
        if item.message_id is not None and item.kind == FORWARD:
            connection.execute(update(_MESSAGES).where(_MESSAGES.c.id == item.message_id).values(
                delivery=DEFERRED, next_hop_reply=reply, attempts=item.attempts + 1))
        if warning is not None:
            self._add(connection, item.message_id, warning)

    async def add(self, message_id: int | None, copy: Copy) -> None:
        """Queue one more copy about a message already accepted (a notice written later)."""
        await self.database.write(self._add, message_id, copy)

    def _add(self, connection, message_id: int | None, copy: Copy) -> None:
        now = utcnow()
        connection.execute(insert(_OUTGOING), {
            "message_id": message_id, "kind": copy.kind, "envelope_from": copy.envelope_from,
            "recipient": copy.recipient, "body": copy.body, "created_at": now, "due_at": now, "attempts": 0,
            "warned": False})
        if message_id is not None:
            connection.execute(insert(_TOKENS), {"token": copy.token, "message_id": message_id,
                                                       "kind": copy.kind, "created_at": now})

    async def notice_context(self, message_id: int | None) -> str | None:
        if message_id is None:
            return None
        async with self.engine.connect() as connection:
            return (await connection.execute(select(_MESSAGES.c.notice_context)
                                             .where(_MESSAGES.c.id == message_id))).scalar()

    # -- bounce tokens ------------------------------------------------------------------

    async def token(self, token: str) -> tuple[int, str] | None:
        """(message log id, kind) for a bounce token the relay issued, or None."""
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(_TOKENS.c.message_id, _TOKENS.c.kind)
                                            .where(_TOKENS.c.token == token))).first()
        return (row[0], row[1]) if row else None

    async def mark(self, message_id: int, state: str, reply: str) -> bool:
        """Record what a downstream report says of a delivered message; False if it said so already."""
        async with self.engine.begin() as connection:
            result = await connection.execute(update(_MESSAGES).where(
                _MESSAGES.c.id == message_id, or_(_MESSAGES.c.delivery.is_(None), _MESSAGES.c.delivery != state))
                .values(delivery=state, next_hop_reply=reply))
        return result.rowcount > 0

    # -- operators ----------------------------------------------------------------------

    async def waiting(self, item_id: int | None = None) -> list[Waiting]:
        statement = (select(_OUTGOING.c.id, _OUTGOING.c.message_id, _OUTGOING.c.kind, _OUTGOING.c.recipient,
                            _OUTGOING.c.created_at, _OUTGOING.c.due_at, _OUTGOING.c.attempts, _OUTGOING.c.last_reply,
                            _MESSAGES.c.conversation_id, _OUTGOING.c.lease_owner, _OUTGOING.c.held)
                     .select_from(_OUTGOING.outerjoin(_MESSAGES, _MESSAGES.c.id == _OUTGOING.c.message_id))
                     .order_by(_OUTGOING.c.due_at))
        if item_id is not None:
            statement = statement.where(_OUTGOING.c.id == item_id)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [Waiting(r[0], r[1], r[2], r[3], aware(r[4]), aware(r[5]), r[6], r[7], r[8], r[9], r[10]) for r in rows]

    async def retry(self, item_id: int | None) -> int:
        """Make one message (or all, with None) due now; returns how many."""
        statement = update(_OUTGOING).values(due_at=utcnow()).where(_OUTGOING.c.held.is_(False))
        if item_id is not None:
            statement = statement.where(_OUTGOING.c.id == item_id)
        async with self.engine.begin() as connection:
            return (await connection.execute(statement)).rowcount

    async def drop(self, item_id: int) -> Claimed | None:
        """Take one message out of the queue (for its failure notice); None if there is no such message."""
        async with self.engine.begin() as connection:
            row = (await connection.execute(
                select(_OUTGOING.c.id, _OUTGOING.c.message_id, _OUTGOING.c.kind, _OUTGOING.c.envelope_from,
                       _OUTGOING.c.recipient, _OUTGOING.c.attempts, _OUTGOING.c.created_at, _OUTGOING.c.warned)
                .where(_OUTGOING.c.id == item_id))).first()
        return Claimed(*row[:6], aware(row[6]), row[7]) if row else None

    async def depth(self) -> tuple[int, datetime | None]:
        async with self.engine.connect() as connection:
            count, oldest = (await connection.execute(
                select(func.count(), func.min(_OUTGOING.c.created_at)).select_from(_OUTGOING)
                .where(_OUTGOING.c.held.is_(False)))).one()
        return count, aware(oldest)

