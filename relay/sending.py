"""Messages a party sends through the API, not by mail: a standard message by name, a review request.

They are queued as forwards from the seller's alias to the buyer, in the
buyer's language, DKIM-signed, logged in the conversation like mail the seller
wrote, and held like it when the seller is on hold. Each check that can say no
returns a Refusal with its reason, for the API to show.
"""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from aliases import conversations
from aliases.center import MessageCenter, NotFound
from aliases.models import Alias, Conversation
from aliases.queue import FORWARD, Acceptance, Queue
from aliases.store import Store
from aliases.views import BUYER, SELLER_TO_BUYER, STANDARD, Decision, Route
from filters.view import Facts, MessageView

from .config import Config
from .delivery import Delivery
from .leaks import leaked_addresses
from .names import display_name
from .rewrite import clean_display_name
from .scrub import for_route
from .standard import RESERVED, REVIEW_REQUEST, TemplateError, Templates, letter
from .worker import _pipeline


def filled_by_relay(route: Route) -> dict[str, str]:
    """The fields the relay fills itself: the order and the seller's name as the buyer sees it."""
    return {"order": route.order_id or "-", "seller": clean_display_name(display_name(route.sender,
                                                                                      route.recipient.locale))}


class Refusal(Exception):
    """The message is not sent; the text says why, for the seller or the marketplace."""


@dataclass(frozen=True)
class Sent:
    message_id: int
    relay_message_id: str
    subject: str
    locale: str
    held: bool


class StandardMessages:
    def __init__(self, config: Config, store: Store, center: MessageCenter, queue: Queue, delivery: Delivery,
                 templates: Templates, clock=None):
        self.config = config
        self.store = store
        self.center = center
        self.queue = queue
        self.delivery = delivery
        self.templates = templates
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    async def _route_to_buyer(self, conversation_id: str) -> Route:
        async with self.store.engine.connect() as connection:
            local = (await connection.execute(
                select(Alias.local_part).join(Conversation, Conversation.id == Alias.conversation_id)
                .where(Alias.conversation_id == conversation_id, Alias.party_id == Conversation.buyer_id))).scalar()
        route = await self.store.route(local, fresh=True) if local else None
        if route is None:
            raise NotFound(f"no conversation {conversation_id}")
        return route

    async def standard(self, conversation_id: str, name: str, fields: dict[str, str]) -> Sent:
        if name in RESERVED:
            raise TemplateError(f"{name!r} is the relay's own text; it cannot be sent as a standard message")
        route = await self._route_to_buyer(conversation_id)
        subject, body, critical = self.templates.fill(name, route.recipient.locale, fields, self._filled(route))
        self._judge_fields(route, fields)
        if route.recipient.opted_out and not critical:
            exempt = {c.lower() for c in self.config.filters.optout.exempt_categories}
            activity = await self.store.activity(conversation_id)
            if not activity.buyer_has_written and (route.category or "").lower() not in exempt:
                raise Refusal(f"the buyer has opted out of unsolicited messages, and {name!r} is not critical "
                              f"to the order; it can be sent once the buyer has written")
        return await self._queue(route, subject, body, STANDARD, f"standard message {name}")

    async def review_request(self, conversation_id: str) -> Sent:
        """One per order, 5 to 30 days after delivery ([messages] review_after_days, review_until_days),
        never to a buyer who opted out of unsolicited messages."""
        route = await self._route_to_buyer(conversation_id)
        delivered, requested = await self.center.review_state(conversation_id)
        settings = self.config.messages
        if delivered is None:
            raise Refusal("the order's delivery date is not known: give it first (PUT .../delivery)")
        if requested is not None:
            raise Refusal(f"a review was already requested for this order, on {requested.date().isoformat()}")
        days = (self.clock() - delivered) // timedelta(days=1)
        if days < settings.review_after_days:
            raise Refusal(f"the order was delivered {days} day(s) ago; a review may be requested from day "
                          f"{settings.review_after_days} after delivery")
        if days > settings.review_until_days:
            raise Refusal(f"the order was delivered {days} days ago; a review may be requested only up to day "
                          f"{settings.review_until_days} after delivery")
        if route.recipient.opted_out:
            raise Refusal("the buyer has opted out of unsolicited messages; a review request is one")
        subject, body, _ = self.templates.fill(REVIEW_REQUEST, route.recipient.locale, {}, self._filled(route))
        now = self.clock()
        return await self._queue(route, subject, body, REVIEW_REQUEST, "review request", (
            lambda connection, _id: conversations.review_requested(connection, conversation_id, now),))

    def _filled(self, route: Route) -> dict[str, str]:
        return filled_by_relay(route)

    def _judge_fields(self, route: Route, fields: dict[str, str]) -> None:
        """What the seller wrote into the fields faces the rules their mail faces (links, contact details,
        promotion, review requests); the marketplace's own text around them does not."""
        if not fields:
            return
        view = MessageView(subject="", texts=("\n".join(fields.values()),), htmls=(), attachments=())
        facts = Facts(direction=SELLER_TO_BUYER, conversation_aliases=frozenset({route.sender_alias,
                                                                                  route.recipient_alias}),
                      party_addresses=route.sender.sender_addresses | route.recipient.sender_addresses,
                      category=route.category, buyer_has_written=True)
        bounce = _pipeline(self.config.filters).judge(view, facts).bounce
        if bounce:
            raise TemplateError(f"fields: {bounce.rule}: {bounce.reason}")

    async def _queue(self, route: Route, subject: str, body: str, kind: str, reason: str, also=()) -> Sent:
        buyer, seller = route.recipient, route.sender
        now = self.clock()
        relay_message_id = f"<{secrets.token_hex(12)}@{self.config.aliases.domain}>"
        scrubber = for_route(route)
        message = letter(sender_name=display_name(seller, buyer.locale), sender_alias=route.sender_alias,
                         recipient=buyer.address, subject=scrubber.scrub_text(subject),
                         body=scrubber.scrub_text(body), message_id=relay_message_id, date=now)
        if leaked_addresses(message, scrubber):
            raise Refusal("the message would show a real address; check the seller's registered name")
        held = seller.held_since is not None
        copy = replace(self.delivery.notice_copy(buyer.address, message, kind=FORWARD), seen_by=BUYER,
                       held_for=seller.id if held else None)
        decision = Decision(conversation_id=route.conversation_id, direction=SELLER_TO_BUYER, size_in=len(message),
                            verdict="forwarded", received_at=now, relay_message_id=relay_message_id,
                            size_out=len(copy.body), rule="seller_held" if held else None, reason=reason,
                            subject=subject, kind=kind)
        message_id = await self.queue.accept(Acceptance(decision, uuid.uuid4().hex, "250 2.0.0 queued", (copy,),
                                                        None, tuple(also)))
        self.delivery.poke()
        return Sent(message_id, relay_message_id, subject, buyer.locale, held)
