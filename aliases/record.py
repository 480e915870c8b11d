"""The seller's record: every flag on their messages and every message of theirs the filters blocked.

Past [filters.sanctions] max_violations within window_days (counted from the
last reinstatement, if later), the seller is held: their mail to buyers is
kept, not delivered, until an operator reinstates them. The hold is written in
the same transaction as the violation that crosses the line, so a crash cannot
leave a seller over the threshold and not held.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, literal, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import Conversation, Flag, MessageRecord, OutgoingMessage, Party, aware, utcnow
from .views import REVIEW_REQUEST, SELLER_TO_BUYER

_MESSAGES, _FLAGS, _PARTIES, _CONVERSATIONS, _OUTGOING = (
    MessageRecord.__table__, Flag.__table__, Party.__table__, Conversation.__table__, OutgoingMessage.__table__)
BLOCKED_VERDICTS = ("bounced",)


@dataclass(frozen=True)
class Violation:
    kind: str
    """flag (by the buyer or the marketplace) or blocked (a filter bounced the message)."""
    rule: str
    at: datetime
    conversation_id: str
    message_id: int
    source: str
    """buyer, marketplace, or filter."""


def _violations_query(seller_id: int, since: datetime | None):
    flags = (select(literal("flag").label("kind"), func.coalesce(_FLAGS.c.reason, "flag").label("rule"),
                    _FLAGS.c.created_at.label("at"), _MESSAGES.c.conversation_id, _FLAGS.c.message_id,
                    _FLAGS.c.source)
             .select_from(_FLAGS.join(_MESSAGES, _MESSAGES.c.id == _FLAGS.c.message_id))
             .where(_FLAGS.c.seller_id == seller_id))
    blocked = (select(literal("blocked").label("kind"), func.coalesce(_MESSAGES.c.rule, "blocked").label("rule"),
                      _MESSAGES.c.finished_at.label("at"), _MESSAGES.c.conversation_id,
                      _MESSAGES.c.id.label("message_id"), literal("filter").label("source"))
               .select_from(_MESSAGES.join(_CONVERSATIONS, _CONVERSATIONS.c.id == _MESSAGES.c.conversation_id))
               .where(_CONVERSATIONS.c.seller_id == seller_id, _MESSAGES.c.direction == SELLER_TO_BUYER,
                      _MESSAGES.c.verdict.in_(BLOCKED_VERDICTS)))
    if since is not None:
        flags = flags.where(_FLAGS.c.created_at > since)
        blocked = blocked.where(_MESSAGES.c.finished_at > since)
    return union_all(flags, blocked)


def violations(connection, seller_id: int, since: datetime | None = None) -> list[Violation]:
    rows = connection.execute(_violations_query(seller_id, since)).all()
    found = [Violation(r.kind, r.rule, aware(r.at), r.conversation_id, r.message_id, r.source) for r in rows]
    return sorted(found, key=lambda v: (v.at, v.message_id))


def counting_since(connection, seller_id: int, window: timedelta, now: datetime) -> datetime:
    reinstated = aware(connection.execute(select(_PARTIES.c.reinstated_at).where(
        _PARTIES.c.id == seller_id)).scalar())
    start = now - window
    return max(start, reinstated) if reinstated else start


def hold_if_over(connection, seller_id: int, max_violations: int, window: timedelta,
                 now: datetime | None = None) -> bool:
    """Hold the seller if their violations in the window reach the threshold; True if held now."""
    now = now or utcnow()
    held = connection.execute(select(_PARTIES.c.held_since).where(_PARTIES.c.id == seller_id)).scalar()
    if held is not None:
        return False
    since = counting_since(connection, seller_id, window, now)
    count = connection.execute(select(func.count()).select_from(
        _violations_query(seller_id, since).subquery())).scalar_one()
    if count < max_violations:
        return False
    days = f"{window.total_seconds() / 86400:g}"
    connection.execute(update(_PARTIES).where(_PARTIES.c.id == seller_id).values(
        held_since=now, held_reason=f"{count} violations of the marketplace's messaging rules in {days} days"))
    return True


def add_flag(connection, message_id: int, seller_id: int, source: str, reason: str | None) -> bool:
    """False if this side flagged the message already: one flag per message and side."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_FLAGS).values(message_id=message_id, seller_id=seller_id, source=source,
                                              reason=reason, created_at=utcnow())
    return connection.execute(statement.on_conflict_do_nothing(index_elements=["message_id", "source"])).rowcount > 0


def flaggable():
    """A seller's message the buyer received: forwarded, not the marketplace's review request, not held."""
    held = select(_OUTGOING.c.id).where(_OUTGOING.c.message_id == _MESSAGES.c.id, _OUTGOING.c.held.is_(True))
    return (_MESSAGES.c.direction == SELLER_TO_BUYER) & (_MESSAGES.c.verdict == "forwarded") \
        & (_MESSAGES.c.kind != REVIEW_REQUEST) & ~held.exists()


def reinstate(connection, seller_id: int) -> int:
    """Lift the hold and release the held mail; returns how many messages are now due."""
    now = utcnow()
    connection.execute(update(_PARTIES).where(_PARTIES.c.id == seller_id).values(
        held_since=None, held_reason=None, reinstated_at=now))
    theirs = select(_MESSAGES.c.id).join(_CONVERSATIONS, _CONVERSATIONS.c.id == _MESSAGES.c.conversation_id).where(
        _CONVERSATIONS.c.seller_id == seller_id)
    return connection.execute(update(_OUTGOING).where(_OUTGOING.c.held.is_(True), _OUTGOING.c.message_id.in_(theirs))
                              .values(held=False, due_at=now, created_at=now)).rowcount
    # created_at anew: the delivery's retry and give-up clocks start at the release, not at the hold.
