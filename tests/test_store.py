"""The store on both backends: SQLite (the default) and PostgreSQL (several relay nodes, one store).

PostgreSQL comes from $RELAY_TEST_POSTGRES (a server URL; the tests share one
database, emptied after each). .ci/run starts one and sets it, so in CI these
run; elsewhere without it they are skipped.
"""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import asyncpg
import pytest
from conftest import BUYER, SELLER, both_backends, crlf, make_config, postgres_or_skip, send

from aliases import database
from aliases.store import Store
from aliases.views import Decision
from relay.server import Relay

backend = both_backends


@pytest.fixture
async def store(database_url):
    db = database.Database(database_url)
    await database.upgrade(db.engine)
    yield Store(db, "relay.test")
    await db.dispose()


async def test_schema_is_owned_by_migrations(backend, tmp_path):
    if backend == "sqlite":
        database_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:  # a database of its own, empty: not copied from the migrated template
        server = await asyncpg.connect(postgres_or_skip())
        name = f"relay_empty_{uuid.uuid4().hex[:12]}"
        await server.execute(f'CREATE DATABASE "{name}"')
        database_url = postgres_or_skip().rsplit("/", 1)[0] + "/" + name
    engine = database.create_engine(database_url)
    try:
        if not database.is_sqlite(database_url):
            with pytest.raises(database.DatabaseError, match="run `relay db upgrade`"):
                await database.prepare(engine, database_url)
        await database.upgrade(engine)
        await database.upgrade(engine)  # idempotent
        assert await database.current_revision(engine) == database.head_revision()
        await database.prepare(engine, database_url)
    finally:
        await engine.dispose()
        if backend != "sqlite":
            await server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await server.close()


async def test_open_is_idempotent_even_when_raced(store):
    opened = await asyncio.gather(*[store.open_conversation(BUYER, SELLER) for _ in range(5)])
    assert len({o.conversation_id for o in opened}) == 1
    with_order = await store.open_conversation(BUYER, SELLER, order_id="A-1")
    assert with_order.conversation_id != opened[0].conversation_id
    assert (await store.open_conversation(BUYER, SELLER, order_id="A-1")) == with_order


async def test_routes_threads_and_activity(store):
    opened = await store.open_conversation(BUYER, SELLER, seller_name="Shop", category="Wine")
    await store.add_seller_address(SELLER, "owner@gmail.example")
    to_seller = await store.route(opened.seller_alias.split("@")[0].upper())
    assert to_seller.direction == "buyer_to_seller" and to_seller.recipient.address == SELLER
    assert to_seller.recipient.sender_addresses == {SELLER, "owner@gmail.example"}
    assert to_seller.sender_alias == opened.buyer_alias and to_seller.category == "wine"
    assert await store.route("nosuchalias00000") is None

    now = datetime.now(timezone.utc)
    await store.record(Decision(opened.conversation_id, "buyer_to_seller", 10, "forwarded", now,
                                relay_message_id="<r1@relay.test>", original_message_id="<o1@example.com>"))
    links = await store.thread_links(opened.conversation_id, "seller_to_buyer", ["<r1@relay.test>", "<x@y>"])
    assert {k: (v.translated, v.sent_by) for k, v in links.items()} == {"<r1@relay.test>": ("<o1@example.com>", "buyer")}
    activity = await store.activity(opened.conversation_id)
    assert activity.buyer_has_written and activity.unsolicited_last_day == 0


async def test_the_relay_forwards_on_this_backend(database_url, tmp_path, sink):
    config = make_config(tmp_path, sink.port, database={"url": database_url})
    engine = database.create_engine(database_url)
    await database.upgrade(engine)  # `relay db upgrade`, as an operator runs it before starting nodes
    await engine.dispose()
    relay = Relay(config)
    await relay.start()
    try:
        opened = await relay.store.open_conversation(BUYER, SELLER)
        await send(relay, BUYER, opened.seller_alias, crlf(f"From: {BUYER}\nSubject: hi\n\nHello\n"))
        [arrived] = await sink.wait_for(1)
        assert arrived.rcpt_tos == [SELLER]
        shown = await relay.store.show(opened.conversation_id)
        assert [m["verdict"] for m in shown["messages"]] == ["forwarded"]
    finally:
        await relay.stop()
