"""Writes about a conversation that go with a message's commit (aliases/queue.py Acceptance.also)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from .models import Conversation
from .views import StoreError

_CONVERSATIONS = Conversation.__table__


def auto_replied(connection, conversation_id: str, moment: datetime) -> None:
    connection.execute(update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == conversation_id)
                       .values(auto_replied_at=moment))


def review_requested(connection, conversation_id: str, moment: datetime) -> None:
    """Once per order: a second request racing the first finds it written and fails the commit."""
    done = connection.execute(update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == conversation_id,
                                                           _CONVERSATIONS.c.review_requested_at.is_(None))
                              .values(review_requested_at=moment))
    if not done.rowcount:
        raise StoreError("a review was already requested for this order")
