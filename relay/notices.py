"""Telling a sender what became of their message: the notice, built and checked, ready to queue.

A notice must never be the reason a message is answered 451: the sender's
server would retry for days and the sender would never hear why. So a notice
that cannot be built, or that would show the recipient's real address, is
built again without anything the sender wrote (no subject, snippet or original
headers); only if even that fails is there no notice.

What a notice needs to know is a NoticeContext, kept with the message in the
store as JSON, so that a notice written days later (the delivery failed, a
report came back) says the same things as one written at once.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from aliases.views import Route
from bounces import notice

from .config import Config
from .leaks import leaked_addresses
from .mime import Entity
from .scrub import AddressScrubber
from .view import decoded_header

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NoticeContext:
    """The message a notice is about, as the relay read it; the recipient's real address already replaced."""

    conversation_id: str
    sender_address: str
    """The envelope sender: where the notice goes."""
    sender_locale: str
    sender_alias: str
    recipient_role: str
    recipient_alias: str
    recipient_addresses: tuple[str, ...]
    """For the leak check only: none of these may appear in the notice."""
    order_id: str | None
    subject: str
    date: str
    headers: str
    """The original's header block, scrubbed, for text/rfc822-headers."""

    @classmethod
    def of(cls, route: Route, envelope_from: str, entity: Entity, subject: str, received: str) -> NoticeContext:
        recipient_only = AddressScrubber({a: route.recipient_alias for a in route.recipient.sender_addresses})
        date = decoded_header(entity.first("date")) or received
        return cls(
            conversation_id=route.conversation_id, sender_address=envelope_from, sender_locale=route.sender.locale,
            sender_alias=route.sender_alias, recipient_role=route.recipient.role,
            recipient_alias=route.recipient_alias, recipient_addresses=tuple(sorted(route.recipient.sender_addresses)),
            order_id=route.order_id, subject=recipient_only.scrub_text(subject),
            date=recipient_only.scrub_text(date),
            headers=recipient_only.scrub_text(entity.header_block.decode("utf-8", "replace")),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> NoticeContext:
        data = json.loads(text)
        data["recipient_addresses"] = tuple(data["recipient_addresses"])
        return cls(**data)

    @property
    def recipient_only(self) -> AddressScrubber:
        return AddressScrubber({a: self.recipient_alias for a in self.recipient_addresses})


class Notifier:
    def __init__(self, config: Config):
        sanctions = config.filters.sanctions
        self.flag_word = sanctions.flag_word if sanctions.enabled else None
        self.config = config

    def _message(self, about: NoticeContext, blocked: notice.Blocked, original_headers: str) -> bytes:
        return notice.build(
            blocked=blocked, sender=notice.Sender(about.sender_address, about.sender_locale),
            recipient_role=about.recipient_role, recipient_alias=about.recipient_alias,
            original_headers=original_headers, from_name=self.config.notices.from_name,
            from_address=f"{self.config.notices.from_local_part}@{self.config.aliases.domain}",
            reporting_mta=self.config.server.hostname,
        )

    def compose(self, about: NoticeContext, rule: str, reason: str, snippet: str | None = None,
                removed: tuple[tuple[str, str], ...] = (), delayed: bool = False,
                appeal: str | None = None) -> bytes | None:
        """The notice, or its bare form if the full one fails or would leak; None if neither can be sent."""
        recipient_only = about.recipient_only
        blocked = notice.Blocked(
            subject=about.subject, date=about.date, order_id=about.order_id, rule=rule,
            reason=recipient_only.scrub_text(reason), snippet=snippet and recipient_only.scrub_text(snippet),
            removed=tuple((recipient_only.scrub_text(name), r) for name, r in removed), delayed=delayed,
            appeal=appeal, flag_word=self.flag_word,
        )
        for attempt, (facts, quoted) in enumerate(((blocked, about.headers), (blocked.bare(), ""))):
            try:
                message = self._message(about, facts, quoted)
            except Exception:
                log.exception("notice could not be built", extra={"conversation": about.conversation_id})
                continue
            if not leaked_addresses(message, recipient_only):
                return message
            log.error("notice would show the recipient's address", extra={
                "conversation": about.conversation_id, "bare": bool(attempt)})
        return None
