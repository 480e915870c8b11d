"""What the filters look at: the message already decoded, and the facts the store knows about it.

The relay builds these; filters only read them. Nothing here parses MIME or
touches the database, so a filter is a small pure function of its inputs.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attachment:
    id: str
    """Where the part sits in the MIME tree, e.g. "2.1"; the rewrite removes parts by it."""
    filename: str
    content_type: str
    data: bytes
    text: str | None = None
    """What a reader sees when opening it, if it is text (by type or by name, as the relay decides)."""


@dataclass(frozen=True)
class WrappedFile:
    """A file inside text (uuencode, yEnc, BinHex, pasted base64): an attachment to the attachment rule."""

    container: str
    """The id of the part whose text holds it."""
    in_body: bool
    """In the message's own text (the sender is told) rather than in a text attachment (that one is removed)."""
    filename: str
    wrapping: str
    data: bytes | None
    """None where the wrapping cannot be opened."""


@dataclass(frozen=True)
class MessageView:
    subject: str
    texts: tuple[str, ...]
    """Decoded text/plain bodies (not attachments)."""
    htmls: tuple[str, ...]
    """Decoded text/html bodies."""
    attachments: tuple[Attachment, ...]
    auto_submitted: bool = False
    wrapped: tuple[WrappedFile, ...] = ()


@dataclass(frozen=True)
class Facts:
    """What the store knows about the message's conversation and thread."""

    direction: str
    conversation_aliases: frozenset[str]
    party_addresses: frozenset[str]
    """Both parties' real addresses: the rewrite turns these into aliases, so they are not off-platform."""
    category: str | None = None
    buyer_opted_out: bool = False
    buyer_has_written: bool = False
    replies_to_buyer: bool = False
    """In-Reply-To/References name a message the buyer sent in this conversation."""
    unsolicited_last_day: int = 0
    buyer_links: frozenset[str] = frozenset()
    """Fingerprints (filters/links.py) of the links the buyer wrote in this conversation: a link in the
    seller's quote of them is the buyer's own, not the seller's."""

    @property
    def buyer_thread(self) -> bool:
        return self.buyer_has_written or self.replies_to_buyer
