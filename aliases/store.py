"""The store's operations, in the domain's words; what they return is in aliases/views.py."""
from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Session, aliased

from . import record
from .addresses import new_local_part, normalize
from .database import Database
from .models import Alias, Conversation, MessageRecord, Party, SenderAddress, aware, utcnow
from .queue import Queue
from .views import (
    BUYER,
    BUYER_TO_SELLER,
    SELLER,
    SELLER_TO_BUYER,
    Activity,
    Decision,
    NotFound,
    OpenedConversation,
    PartyView,
    Route,
    ThreadLink,
)


def _party_state(p):
    return p.vacation_since, p.vacation_until, p.held_since, p.held_reason


_PARTY_WIDTH = 10


def _route_query():
    """Built once: constructing aliased joins costs more than running them."""
    target, other, buyer, seller = aliased(Alias), aliased(Alias), aliased(Party), aliased(Party)

    def party(p):
        return p.id, p.address, p.role, p.display_name, p.locale, p.opted_out, *_party_state(p)

    return (
        select(target.party_id, other.local_part, Conversation.id, Conversation.order_id,
               Conversation.category, Conversation.auto_replied_at, *party(buyer), *party(seller))
        .join(Conversation, Conversation.id == target.conversation_id)
        .join(other, (other.conversation_id == Conversation.id) & (other.local_part != target.local_part))
        .join(buyer, buyer.id == Conversation.buyer_id)
        .join(seller, seller.id == Conversation.seller_id)
        .where(target.local_part == bindparam("local_part"))
    )


_ROUTE = _route_query()


_FORWARDED = (MessageRecord.verdict == "forwarded")


def _activity_query():
    """Built once, like the route: the opt-out and over-messaging facts of a conversation in one statement."""
    conversation = bindparam("conversation")
    return select(
        exists().where(MessageRecord.conversation_id == conversation, _FORWARDED,
                       MessageRecord.direction == BUYER_TO_SELLER),
        select(func.count()).select_from(MessageRecord).where(
            MessageRecord.conversation_id == conversation, _FORWARDED, MessageRecord.direction == SELLER_TO_BUYER,
            MessageRecord.unsolicited.is_(True), MessageRecord.finished_at > bindparam("since")).scalar_subquery(),
    )


_ACTIVITY = _activity_query()
_BUYER_LINKS = select(MessageRecord.links_written).where(
    MessageRecord.conversation_id == bindparam("conversation"), MessageRecord.direction == BUYER_TO_SELLER,
    _FORWARDED, MessageRecord.links_written.is_not(None))
ROUTES_CACHED = 50_000


@dataclass(frozen=True)
class Arrived:
    """What the store says about a message as it arrives: all read at once, in one round trip."""

    route: Route | None
    """Read again, not cached: a party's opt-out, names and addresses may have changed since RCPT."""
    links: dict[str, ThreadLink]
    activity: Activity
    earlier_reply: str | None
    """The reply given when this very message was accepted before (a client's retry), or None."""


def _party_view(id: int, address: str, role: str, name: str | None, locale: str, opted_out: bool,
                vacation_since, vacation_until, held_since, held_reason, extras) -> PartyView:
    return PartyView(address, role, name, locale, opted_out, frozenset({address, *extras}), id,
                     aware(vacation_since), aware(vacation_until), aware(held_since), held_reason)


def _view(party: Party) -> PartyView:
    return _party_view(party.id, party.address, party.role, party.display_name, party.locale, party.opted_out,
                       *_party_state(party), [extra.address for extra in party.sender_addresses])


class Store:
    def __init__(self, database: Database, domain: str):
        self.database = database
        self.engine = database.engine
        self.domain = domain
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        self._routes: OrderedDict[str, Route] = OrderedDict()
        """Routes read at RCPT, by local part. An alias never changes its conversation or party once
        issued, and sender addresses are only ever added: a cached route that admits a sender is right,
        one that does not is read again (route(fresh=True)). What can change is read at DATA (arrived)."""

    def address_of(self, local_part: str) -> str:
        return f"{local_part}@{self.domain}"

    # -- parties --------------------------------------------------------------

    async def _in_session(self, work, *args):
        """work(session, *args) with an ORM session on one store connection, committed when it returns.
        On the store's own threads (SQLite) or run_sync (PostgreSQL): one hop, not one per statement."""
        def run(connection):
            with Session(bind=connection, expire_on_commit=False) as db:
                result = work(db, *args)
                db.flush()
                return result
        return await self.database.write(run)

    @staticmethod
    def _party(db, address: str, role: str, name: str | None = None, locale: str | None = None) -> Party:
        party = db.scalar(select(Party).where(Party.address == address, Party.role == role))
        if party is None:
            party = Party(address=address, role=role, display_name=name, locale=locale or "en", opted_out=False)
            db.add(party)
            db.flush()
        else:
            if name:
                party.display_name = name
            if locale:
                party.locale = locale
        return party

    async def add_seller_address(self, seller: str, address: str) -> None:
        seller, address = normalize(seller), normalize(address)

        def add(db) -> None:
            party = db.scalar(select(Party).where(Party.address == seller, Party.role == SELLER))
            if party is None:
                raise NotFound(f"no seller is registered as {seller}; open a conversation for them first")
            if address not in {extra.address for extra in party.sender_addresses}:
                party.sender_addresses.append(SenderAddress(address=address))
        await self._in_session(add)

    async def set_opt_out(self, buyer: str, opted_out: bool, known_only: bool = False) -> None:
        """known_only: a buyer the relay has never seen is NotFound rather than added."""
        buyer = normalize(buyer)

        def set_(db) -> None:
            if known_only and db.scalar(select(Party.id).where(Party.address == buyer, Party.role == BUYER)) is None:
                raise NotFound(f"no buyer is registered as {buyer}")
            self._party(db, buyer, BUYER).opted_out = opted_out
        await self._in_session(set_)

    # -- conversations --------------------------------------------------------

    async def open_conversation(
        self,
        buyer: str,
        seller: str,
        *,
        buyer_name: str | None = None,
        seller_name: str | None = None,
        buyer_locale: str | None = None,
        seller_locale: str | None = None,
        order_id: str | None = None,
        category: str | None = None,
    ) -> OpenedConversation:
        """Open a conversation, or return the existing one for the same buyer, seller and order."""
        buyer, seller = normalize(buyer), normalize(seller)
        for attempt in range(2):
            try:
                return await self._in_session(self._open, buyer, seller, buyer_name, seller_name, buyer_locale,
                                              seller_locale, order_id, category)
            except IntegrityError:
                if attempt:  # a concurrent open won the race twice: not a race any more
                    raise
        raise AssertionError("unreachable")

    def _open(self, db, buyer, seller, buyer_name, seller_name, buyer_locale, seller_locale, order_id, category):
        buyer_party = self._party(db, buyer, BUYER, buyer_name, buyer_locale)
        seller_party = self._party(db, seller, SELLER, seller_name, seller_locale)
        conversation = db.scalar(
            select(Conversation).where(
                Conversation.buyer_id == buyer_party.id,
                Conversation.seller_id == seller_party.id,
                func.coalesce(Conversation.order_id, "") == (order_id or ""),
            )
        )
        if conversation is None:
            conversation = Conversation(
                id=uuid.uuid4().hex, buyer_id=buyer_party.id, seller_id=seller_party.id,
                order_id=order_id, category=category.lower() if category else None,
            )
            db.add(conversation)
            db.flush()
            for party in (buyer_party, seller_party):
                db.add(Alias(local_part=new_local_part(), party_id=party.id, conversation_id=conversation.id))
            db.flush()
        elif category:
            conversation.category = category.lower()
        aliases = {alias.party_id: alias.local_part
                   for alias in db.scalars(select(Alias).where(Alias.conversation_id == conversation.id))}
        return OpenedConversation(
            conversation_id=conversation.id,
            buyer_alias=self.address_of(aliases[buyer_party.id]),
            seller_alias=self.address_of(aliases[seller_party.id]),
        )

    async def route(self, local_part: str, fresh: bool = False) -> Route | None:
        """The route for mail to LOCAL@domain, or None for an alias nobody was given (never cached:
        it may be issued the next moment)."""
        local_part = local_part.lower()
        if not fresh and (cached := self._routes.get(local_part)) is not None:
            self._routes.move_to_end(local_part)
            return cached
        route = await self.database.read(self._route, local_part)
        if route is not None:
            self._routes[local_part] = route
            if len(self._routes) > ROUTES_CACHED:
                self._routes.popitem(last=False)
        return route

    async def arrived(self, route: Route, thread_ids: list[str], identity: str) -> Arrived:
        """The route again, the thread links, the conversation's activity and any earlier acceptance of
        this message: everything the decision needs from the store, in one go."""
        return await self.database.read(self._arrived, route, thread_ids, identity)

    def _arrived(self, connection, route: Route, thread_ids: list[str], identity: str) -> Arrived:
        fresh = self._route(connection, route.recipient_alias.partition("@")[0])
        links = self._thread_links(connection, route.conversation_id, route.direction, thread_ids)
        activity = (self._activity(connection, route.conversation_id, with_buyer_links=True)
                    if route.direction == SELLER_TO_BUYER else Activity(False, 0))
        return Arrived(fresh, links, activity, Queue.handed_on(connection, identity))

    def _route(self, connection, local_part: str) -> Route | None:
        """Two queries: the alias with its conversation, both parties and the other alias; then the
        parties' extra sender addresses."""
        row = connection.execute(_ROUTE, {"local_part": local_part}).first()
        if row is None:
            return None
        party_id, other_local, conversation_id, order_id, category, auto_replied_at = row[:6]
        buyer_row, seller_row = row[6:6 + _PARTY_WIDTH], row[6 + _PARTY_WIDTH:6 + 2 * _PARTY_WIDTH]
        extras = connection.execute(
            select(SenderAddress.party_id, SenderAddress.address)
            .where(SenderAddress.party_id.in_([buyer_row[0], seller_row[0]]))
        ).all()

        def view(party_row) -> PartyView:
            return _party_view(*party_row, [a for p, a in extras if p == party_row[0]])

        to_seller = party_id == seller_row[0]
        buyer_view, seller_view = view(buyer_row), view(seller_row)
        return Route(
            conversation_id=conversation_id, order_id=order_id, category=category,
            direction=BUYER_TO_SELLER if to_seller else SELLER_TO_BUYER,
            recipient=seller_view if to_seller else buyer_view,
            sender=buyer_view if to_seller else seller_view,
            recipient_alias=self.address_of(local_part),
            sender_alias=self.address_of(other_local),
            auto_replied_at=aware(auto_replied_at),
        )

    # -- threads and the message log -----------------------------------------

    async def thread_links(self, conversation_id: str, direction: str, ids: list[str]) -> dict[str, ThreadLink]:
        """Translate message ids the sender's client wrote into the ids the recipient's client knows.

        An id the recipient saw from the relay maps back to the sender's original,
        and the sender's own original maps to the id the relay gave it. Ids the
        relay never issued are absent from the result, so the caller drops them.
        """
        return await self.database.read(self._thread_links, conversation_id, direction, ids)

    @staticmethod
    def _thread_links(connection, conversation_id: str, direction: str, ids: list[str]) -> dict[str, ThreadLink]:
        if not ids:
            return {}
        rows = connection.execute(
            select(MessageRecord.direction, MessageRecord.relay_message_id, MessageRecord.original_message_id)
            .where(MessageRecord.conversation_id == conversation_id, _FORWARDED,
                   or_(MessageRecord.relay_message_id.in_(ids), MessageRecord.original_message_id.in_(ids)))
            .order_by(MessageRecord.id))
        links: dict[str, ThreadLink] = {}
        for sent_in, relay_message_id, original_message_id in rows:
            sent_by = BUYER if sent_in == BUYER_TO_SELLER else SELLER
            if sent_in != direction and relay_message_id in ids:
                # A reply to a message that came without an id of its own: still in that
                # thread, with nothing to translate its id back to.
                links[relay_message_id] = ThreadLink(original_message_id, sent_by)
            if sent_in == direction and original_message_id in ids and relay_message_id:
                links[original_message_id] = ThreadLink(relay_message_id, sent_by)
        return links

    async def activity(self, conversation_id: str, with_buyer_links: bool = False) -> Activity:
        """with_buyer_links: also the fingerprints of the links the buyer wrote (for a seller's reply)."""
        return await self.database.read(self._activity, conversation_id, with_buyer_links)

    @staticmethod
    def _activity(connection, conversation_id: str, with_buyer_links: bool) -> Activity:
        from_buyer, unsolicited = connection.execute(_ACTIVITY, {
            "conversation": conversation_id, "since": utcnow() - timedelta(hours=24)}).one()
        written = connection.execute(_BUYER_LINKS, {"conversation": conversation_id}).scalars() \
            if with_buyer_links and from_buyer else ()
        return Activity(buyer_has_written=bool(from_buyer), unsolicited_last_day=unsolicited or 0,
                        buyer_links=frozenset(p for value in written for p in value.split()))

    async def flagged_message(self, conversation_id: str, referenced: list[str]) -> int | None:
        """The seller's message a buyer's FLAG reply names (In-Reply-To/References), else the seller's
        latest forwarded message in the conversation; None if the seller has sent nothing."""
        def find(connection) -> int | None:
            theirs = select(MessageRecord.id).where(
                MessageRecord.conversation_id == conversation_id, record.flaggable()
            ).order_by(MessageRecord.id.desc()).limit(1)
            named = connection.execute(theirs.where(MessageRecord.relay_message_id.in_(referenced))).scalar() \
                if referenced else None
            return named or connection.execute(theirs).scalar()
        return await self.database.read(find)

    async def record(self, decision: Decision) -> None:
        async with self.session.begin() as db:
            db.add(MessageRecord(**decision.__dict__, finished_at=utcnow()))

    async def show(self, conversation_id: str) -> dict | None:
        async with self.session() as db:
            conversation = await db.get(Conversation, conversation_id)
            if conversation is None:
                return None
            aliases = {a.party_id: self.address_of(a.local_part)
                       for a in await db.scalars(select(Alias).where(Alias.conversation_id == conversation_id))}
            messages = await db.scalars(
                select(MessageRecord).where(MessageRecord.conversation_id == conversation_id).order_by(MessageRecord.id)
            )

            def party(p: Party) -> dict:
                view = _view(p)
                return {
                    "address": view.address, "display_name": view.display_name, "locale": view.locale,
                    "opted_out": view.opted_out, "alias": aliases[p.id],
                    "sender_addresses": sorted(view.sender_addresses),
                }

            return {
                "conversation_id": conversation.id,
                "order_id": conversation.order_id,
                "category": conversation.category,
                "created_at": conversation.created_at.isoformat(),
                "buyer": party(conversation.buyer),
                "seller": party(conversation.seller),
                "messages": [
                    {
                        "direction": m.direction, "verdict": m.verdict, "rule": m.rule, "reason": m.reason,
                        "relay_message_id": m.relay_message_id, "original_message_id": m.original_message_id,
                        "size_in": m.size_in, "size_out": m.size_out, "next_hop_reply": m.next_hop_reply,
                        "unsolicited": m.unsolicited, "delivery": m.delivery, "attempts": m.attempts,
                        "authentication": m.authentication,
                        "received_at": m.received_at.isoformat(), "finished_at": m.finished_at.isoformat(),
                    }
                    for m in messages
                ],
            }
