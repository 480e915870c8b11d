"""The relay keeps the routes it read at RCPT; what a party changes in the store afterwards still counts.

The changes are made through a Store of their own, as `relay seller add-address` and `relay optout add`
make them from another process: nothing tells the running relay.
"""
from __future__ import annotations

import pytest
from conftest import BUYER, SELLER, both_backends, crlf, open_conversation, send
from test_policy import notice_parts, seller_message

from aliases.database import Database
from aliases.store import Store

backend = both_backends


@pytest.fixture
async def elsewhere(relay):
    """The store as another process (the CLI, another node) sees it."""
    database = Database(relay.config.database_url())
    yield Store(database, relay.config.aliases.domain)
    await database.dispose()


async def test_an_address_added_after_the_route_was_read_may_write_at_once(relay, sink, elsewhere):
    opened = await open_conversation(relay)
    await send(relay, SELLER, opened.buyer_alias, seller_message("Shipped", "Your parcel left today."))
    await sink.wait_for(1)
    await elsewhere.add_seller_address(SELLER, "owner@gmail.example")
    await send(relay, "owner@gmail.example", opened.buyer_alias,
               crlf("From: Owner <owner@gmail.example>\nSubject: Also\n\nWrite to owner@gmail.example\n"))
    _, second = await sink.wait_for(2)
    assert second.rcpt_tos == [BUYER]
    assert b"gmail.example" not in second.content and opened.seller_alias.encode() in second.content


async def test_an_address_added_after_the_route_was_read_is_scrubbed(relay, sink, elsewhere):
    opened = await open_conversation(relay)
    await send(relay, SELLER, opened.buyer_alias, seller_message("Shipped", "Your parcel left today."))
    await sink.wait_for(1)
    await elsewhere.add_seller_address(SELLER, "owner@gmail.example")
    await send(relay, SELLER, opened.buyer_alias, seller_message("Also", "Or write to owner@gmail.example"))
    _, second = await sink.wait_for(2)
    assert second.rcpt_tos == [BUYER]
    assert b"gmail.example" not in second.content and b"Or write to " + opened.seller_alias.encode() in second.content


async def test_an_opt_out_after_the_route_was_read_holds_the_next_message(relay, sink, elsewhere):
    opened = await open_conversation(relay, order_id="A-77")
    await send(relay, SELLER, opened.buyer_alias, seller_message("Your order", "Can you be home on Tuesday?"))
    [first] = await sink.wait_for(1)
    assert first.rcpt_tos == [BUYER]
    await elsewhere.set_opt_out(BUYER, True)
    await send(relay, SELLER, opened.buyer_alias, seller_message("Your order", "Or on Wednesday?"))
    _, second = await sink.wait_for(2)
    assert second.rcpt_tos == [SELLER]
    assert "[Important]" in notice_parts(second)["text"]
    shown = await relay.store.show(opened.conversation_id)
    assert [m["rule"] for m in shown["messages"]] == [None, "opt_out"]
