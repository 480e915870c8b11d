"""SQLAlchemy models. Alembic owns the schema: change these and add a migration."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Party(Base):
    """A buyer or a seller, known by one real address in one role."""

    __tablename__ = "parties"
    __table_args__ = (UniqueConstraint("address", "role", name="uq_parties_address_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(10))  # "buyer" or "seller"
    display_name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    sender_addresses: Mapped[list[SenderAddress]] = relationship(lazy="selectin", cascade="all, delete-orphan")


class SenderAddress(Base):
    """One more address a seller may send from, beside the one they registered with."""

    __tablename__ = "sender_addresses"
    __table_args__ = (UniqueConstraint("party_id", "address", name="uq_sender_addresses_party_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))


class Conversation(Base):
    """One buyer, one seller, maybe one order."""

    __tablename__ = "conversations"
    __table_args__ = (
        # A conversation without an order is unique per buyer and seller too, hence the coalesce.
        Index("uq_conversations_buyer_seller_order", "buyer_id", "seller_id", text("coalesce(order_id, '')"), unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("parties.id"))
    seller_id: Mapped[int] = mapped_column(ForeignKey("parties.id"))
    order_id: Mapped[str | None] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    buyer: Mapped[Party] = relationship(foreign_keys=[buyer_id], lazy="joined")
    seller: Mapped[Party] = relationship(foreign_keys=[seller_id], lazy="joined")


class Alias(Base):
    """A masked address: mail to it reaches `party` within `conversation`."""

    __tablename__ = "aliases"

    local_part: Mapped[str] = mapped_column(String(64), primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("parties.id"))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MessageRecord(Base):
    """One message the relay decided on: what came in, what went out, and why."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_relay_message_id", "relay_message_id"),
        Index("ix_messages_original_message_id", "original_message_id"),
        Index("ix_messages_activity", "conversation_id", "direction", "verdict", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    direction: Mapped[str] = mapped_column(String(20))  # buyer_to_seller / seller_to_buyer
    relay_message_id: Mapped[str | None] = mapped_column(String(255))
    original_message_id: Mapped[str | None] = mapped_column(String(998))
    size_in: Mapped[int] = mapped_column(Integer)
    size_out: Mapped[int | None] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(20))  # forwarded / refused / failed
    rule: Mapped[str | None] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(Text)
    next_hop_reply: Mapped[str | None] = mapped_column(Text)
    unsolicited: Mapped[bool] = mapped_column(Boolean, default=False)
    """A seller's message that answers nothing the buyer sent: these are counted per day."""
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivery: Mapped[str | None] = mapped_column(String(20))
    """What became of a forward after it was queued: queued, deferred, delivered, failed."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    authentication: Mapped[str | None] = mapped_column(Text)
    """RFC 8601 Authentication-Results value: SPF, DKIM and DMARC as the relay found them. Never sent on."""
    links_written: Mapped[str | None] = mapped_column(Text)
    """Fingerprints of the links a forwarded buyer's message held, so a seller's quote of them is not the seller's."""
    notice_context: Mapped[str | None] = mapped_column(Text)
    """JSON: what a notice written later (delivery failed, delayed, bounced downstream) needs to say."""


class HandedOn(Base):
    """A message the relay handed on (forwarded, or answered with a notice), by its identity, for a day.

    A client that never heard the 250 (a timeout, a dropped connection) sends the
    same message again; its identity says it was already handed on, and the
    client hears the same answer instead of the recipient getting a second copy.
    """

    __tablename__ = "handed_on"

    identity: Mapped[str] = mapped_column(String(64), primary_key=True)
    reply: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class OutgoingMessage(Base):
    """One message waiting to be handed to a next hop: a forward, or a notice to a sender.

    Committed before the client hears 250, so it survives a crash; deleted once a
    next hop has it or it has failed for good. A node claims rows by writing its
    name and a lease into them; a lease that runs out (the node died) frees the row.
    """

    __tablename__ = "outgoing"
    __table_args__ = (Index("ix_outgoing_due", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # forward, notice, warning
    envelope_from: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_reply: Mapped[str | None] = mapped_column(Text)
    warned: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BounceToken(Base):
    """The token in a message's envelope sender (bounce+TOKEN@domain): reports sent there name this message."""

    __tablename__ = "bounce_tokens"

    token: Mapped[str] = mapped_column(String(40), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # forward or notice: a report about a notice is dropped
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
