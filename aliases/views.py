"""What the store hands out: frozen dataclasses in the domain's words, never ORM objects,
so the rest of the relay cannot lazily touch the database by accident."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

BUYER, SELLER = "buyer", "seller"
BUYER_TO_SELLER, SELLER_TO_BUYER = "buyer_to_seller", "seller_to_buyer"
# What a message log row is: a party wrote it, the relay wrote it for a seller by name, the marketplace's
# review request, or a buyer's FLAG reply (kept in the record, never forwarded).
WRITTEN, STANDARD, REVIEW_REQUEST, FLAG = "message", "standard", "review_request", "flag"


class StoreError(ValueError):
    """A request the store refuses, worded for the person who made it."""


class NotFound(StoreError):
    """The conversation, message or party asked for does not exist."""


@dataclass(frozen=True)
class PartyView:
    address: str
    role: str
    display_name: str | None
    locale: str
    opted_out: bool
    sender_addresses: frozenset[str]
    """Every address this party may send from: its own and any registered extras."""
    id: int | None = None
    vacation_since: datetime | None = None
    vacation_until: datetime | None = None
    held_since: datetime | None = None
    held_reason: str | None = None

    def away_at(self, moment: datetime) -> bool:
        """On vacation at that moment: since (or always, unset) up to until."""
        return (self.vacation_until is not None and moment < self.vacation_until
                and (self.vacation_since is None or self.vacation_since <= moment))


@dataclass(frozen=True)
class OpenedConversation:
    conversation_id: str
    buyer_alias: str
    seller_alias: str


@dataclass(frozen=True)
class Route:
    """What an alias means: who it reaches, who may write to it, and as whom they appear."""

    conversation_id: str
    order_id: str | None
    category: str | None
    direction: str
    recipient: PartyView
    sender: PartyView
    recipient_alias: str
    sender_alias: str
    auto_replied_at: datetime | None = None
    """The last vacation auto-reply in this conversation."""


@dataclass(frozen=True)
class ThreadLink:
    """An id in a message's In-Reply-To/References, as the other side knows it."""

    translated: str | None  # None: the message it names came without a Message-ID
    sent_by: str  # role of the party who sent the message it names


@dataclass(frozen=True)
class Decision:
    """One message's outcome, for the message log."""

    conversation_id: str
    direction: str
    size_in: int
    verdict: str
    received_at: datetime
    relay_message_id: str | None = None
    original_message_id: str | None = None
    size_out: int | None = None
    rule: str | None = None
    reason: str | None = None
    next_hop_reply: str | None = None
    unsolicited: bool = False
    authentication: str | None = None
    links_written: str | None = None
    """Space-separated fingerprints of the links a forwarded buyer's message held (filters/links.py)."""
    subject: str | None = None
    kind: str = WRITTEN
    auto_replied: bool = False
    removed: str | None = None


@dataclass(frozen=True)
class Activity:
    """What has happened in a conversation so far, for the opt-out and over-messaging rules."""

    buyer_has_written: bool
    unsolicited_last_day: int
    buyer_links: frozenset[str] = frozenset()
