"""Telling a sender what became of their message: build the notice, check it, hand it on.

A notice must never be the reason a message is answered 451: the sender's
server would retry for days and the sender would never hear why. So a notice
that cannot be built, or that would show the recipient's real address, is
sent again without anything the sender wrote (no subject, snippet or original
headers); only a notice the next hop cannot take right now is "deferred".
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from aliases.views import Route
from bounces import notice

from . import delivery
from .config import Config
from .leaks import leaked_addresses
from .mime import Entity
from .scrub import AddressScrubber
from .view import decoded_header

log = logging.getLogger(__name__)

SENT, DEFERRED, REFUSED = "sent", "deferred", "refused"


@dataclass(frozen=True)
class NoticeResult:
    state: str
    """SENT; DEFERRED (the next hop cannot take it now); REFUSED (it will never go: refused for good)."""
    detail: str
    """For the log: "sent", or why not, with the next hop's words scrubbed."""


@dataclass(frozen=True)
class Subject:
    """The message a notice is about, as the relay read it."""

    route: Route
    envelope_from: str
    entity: Entity
    received_at: datetime
    subject: str


class Notifier:
    def __init__(self, config: Config):
        self.config = config

    def _message(self, about: Subject, blocked: notice.Blocked, original_headers: str) -> bytes:
        route = about.route
        return notice.build(
            blocked=blocked, sender=notice.Sender(about.envelope_from, route.sender.locale),
            recipient_role=route.recipient.role, recipient_alias=route.recipient_alias,
            original_headers=original_headers, from_name=self.config.notices.from_name,
            from_address=f"{self.config.notices.from_local_part}@{self.config.aliases.domain}",
            reporting_mta=self.config.server.hostname,
        )

    def compose(self, about: Subject, rule: str, reason: str, snippet: str | None,
                removed: tuple[tuple[str, str], ...] = ()) -> bytes | None:
        """The notice, or its bare form if the full one fails or would leak; None if neither can be sent."""
        route = about.route
        # The sender's own words may name the recipient by real address: the notice says the alias.
        recipient_only = AddressScrubber({a: route.recipient_alias for a in route.recipient.sender_addresses})
        date = decoded_header(about.entity.first("date")) or about.received_at.strftime("%a, %d %b %Y %H:%M:%S +0000")
        blocked = notice.Blocked(
            subject=recipient_only.scrub_text(about.subject), date=recipient_only.scrub_text(date),
            order_id=route.order_id, rule=rule, reason=recipient_only.scrub_text(reason),
            snippet=snippet and recipient_only.scrub_text(snippet),
            removed=tuple((recipient_only.scrub_text(name), r) for name, r in removed),
        )
        headers = recipient_only.scrub_text(about.entity.header_block.decode("utf-8", "replace"))
        for attempt, (facts, quoted) in enumerate(((blocked, headers), (blocked.bare(), ""))):
            try:
                message = self._message(about, facts, quoted)
            except Exception:
                log.exception("notice could not be built", extra={"conversation": route.conversation_id})
                continue
            if not leaked_addresses(message, recipient_only):
                return message
            log.error("notice would show the recipient's address", extra={
                "conversation": route.conversation_id, "bare": bool(attempt)})
        return None

    async def send(self, about: Subject, rule: str, reason: str, snippet: str | None,
                   removed: tuple[tuple[str, str], ...] = ()) -> NoticeResult:
        message = self.compose(about, rule, reason, snippet, removed)
        if message is None:
            return NoticeResult(REFUSED, "not sent: no notice could be made without the recipient's address")
        answer = await delivery.send(self.config.delivery, envelope_from="", recipients=[about.envelope_from],
                                     message=message, helo=self.config.server.hostname,
                                     smtputf8=not about.envelope_from.isascii())
        if answer.accepted:
            return NoticeResult(SENT, SENT)
        route = about.route
        # The refusal may quote the sender's own mailbox; the log shows their alias instead.
        said = AddressScrubber({**{a: route.sender_alias for a in route.sender.sender_addresses},
                                **{a: route.recipient_alias for a in route.recipient.sender_addresses}}
                               ).scrub_text(answer.text)
        return NoticeResult(REFUSED if answer.permanent else DEFERRED, "failed: " + said)
