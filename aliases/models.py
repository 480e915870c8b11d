"""SQLAlchemy models. Alembic owns the schema: change these and add a migration."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything in the store is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


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
    vacation_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    vacation_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """A seller away: buyers get one automatic reply per conversation, and their messages leave the clock."""
    held_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """A seller over the [filters.sanctions] threshold: their mail to buyers waits until reinstated."""
    held_reason: Mapped[str | None] = mapped_column(Text)
    reinstated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Violations before this no longer count towards a hold."""

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
        Index("ix_conversations_order_id", "order_id"),
        Index("ix_conversations_seller_id", "seller_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("parties.id"))
    seller_id: Mapped[int] = mapped_column(ForeignKey("parties.id"))
    order_id: Mapped[str | None] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the order reached the buyer, as the marketplace says: review requests go 5 to 30 days after."""
    review_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    auto_replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """The last vacation auto-reply in this conversation: one per conversation per vacation."""

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
    subject: Mapped[str | None] = mapped_column(Text)
    """As the recipient saw it (addresses replaced), for the message center."""
    kind: Mapped[str] = mapped_column(String(20), default="message", server_default="message")
    """message (a party wrote it), auto_reply (vacation), standard (a template), review_request, flag."""
    no_response_needed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """A buyer's message the seller marked: it leaves the response-time clock."""
    auto_replied: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """A buyer's message that came while the seller was on vacation: it leaves the clock too."""
    removed: Mapped[str | None] = mapped_column(Text)
    """JSON list of the attachments removed from the forward: file name, type, rule."""


class MessageBody(Base):
    """What a party saw, kept for [retention] days for dispute resolution, then purged (the log row stays)."""

    __tablename__ = "message_bodies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # forward, notice, auto_reply
    seen_by: Mapped[str] = mapped_column(String(10))  # buyer or seller
    body: Mapped[bytes] = mapped_column(LargeBinary)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Flag(Base):
    """A delivered seller message a buyer (by reply) or the marketplace (by API) says broke the rules."""

    __tablename__ = "flags"
    __table_args__ = (UniqueConstraint("message_id", "source", name="uq_flags_message_source"),)
    """One flag per message from each side: a buyer replying FLAG three times is one violation."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("parties.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))  # buyer or marketplace
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A bearer token for the HTTP API, kept as its SHA-256: the token itself is shown once, at creation."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """A held seller's forward: kept, not delivered, until `relay seller reinstate`."""
    body_id: Mapped[int | None] = mapped_column(Integer)
    """The body kept for the message center, when it is: then `body` is empty, not written twice."""


class BounceToken(Base):
    """The token in a message's envelope sender (bounce+TOKEN@domain): reports sent there name this message."""

    __tablename__ = "bounce_tokens"

    token: Mapped[str] = mapped_column(String(40), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # forward or notice: a report about a notice is dropped
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
