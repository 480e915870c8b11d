"""The store at scale: the per-message reads timed on a store holding N aliases.

    .venv/bin/python bench/store.py --aliases 1000 --calls 2000
    .venv/bin/python bench/store.py --aliases 10000000 --calls 2000 --keep /var/tmp/relay-10m.db

Fills a SQLite store (migrated by alembic, then rows written straight through sqlite3 in one
transaction: the CLI would take hours for ten million) with N aliases, two per conversation,
among N/20 buyers and 10,000 sellers, then times, on aliases picked at random, the RCPT route read
from the store (not the relay's cache) and the read at DATA (route, activity, thread links, an
earlier acceptance), and prints milliseconds per call with the store's size. `--keep FILE` keeps
the store, and reuses it when it already holds the aliases; bench/forward.py --store FILE sends
through it.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

from aliases import database
from aliases.store import Store

SELLERS = 10_000
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_NOW = "2026-12-01 10:00:00.000000"


def buyer_address(i: int) -> str:
    return f"buyer{i}@example.com"


def seller_address(i: int) -> str:
    return f"seller{i}@seller-shop.example"


async def migrate(url: str) -> None:
    db = database.Database(url)
    try:
        await database.prepare(db.engine, url)
    finally:
        await db.dispose()


def aliases_in(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT count(*) FROM aliases").fetchone()[0]


def fill(path: Path, aliases: int, seed: int = 1) -> float:
    """Write aliases // 2 conversations into a migrated, empty store; returns the seconds it took."""
    started = time.monotonic()
    conversations = max(1, aliases // 2)
    buyers = max(1, conversations // 10)
    rng = random.Random(seed)
    connection = sqlite3.connect(path)
    # A bulk load, not the relay's own writes: no journal, no fsync, and a cache that holds the indexes
    # (the aliases' primary key is random by design, so each insert lands on another page).
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-2000000")
    with connection:
        connection.executemany(
            "INSERT INTO parties (id, address, role, locale, opted_out, created_at) VALUES (?, ?, ?, 'en', 0, ?)",
            [(i + 1, buyer_address(i), "buyer", _NOW) for i in range(buyers)]
            + [(buyers + i + 1, seller_address(i), "seller", _NOW) for i in range(SELLERS)])
        step = 200_000
        for first in range(0, conversations, step):
            rows, alias_rows = [], []
            for n in range(first, min(first + step, conversations)):
                cid = uuid.UUID(int=rng.getrandbits(128)).hex
                buyer, seller = n % buyers + 1, buyers + n % SELLERS + 1
                rows.append((cid, buyer, seller, f"ORD-{n}", _NOW))
                alias_rows.append((_local_part(rng), buyer, cid, _NOW))
                alias_rows.append((_local_part(rng), seller, cid, _NOW))
            connection.executemany("INSERT INTO conversations (id, buyer_id, seller_id, order_id, created_at) "
                                   "VALUES (?, ?, ?, ?, ?)", rows)
            connection.executemany("INSERT OR IGNORE INTO aliases (local_part, party_id, conversation_id, created_at) "
                                   "VALUES (?, ?, ?, ?)", alias_rows)
    connection.close()
    with closing(sqlite3.connect(path)) as connection:  # back to the relay's own mode
        connection.execute("PRAGMA journal_mode=WAL")
    return time.monotonic() - started


def _local_part(rng: random.Random) -> str:
    return "".join(rng.choices(_ALPHABET, k=16))


def sample(path: Path, count: int, seed: int = 2) -> list[tuple[str, str]]:
    """(buyer's real address, the seller's alias local part) for count conversations picked at random."""
    with closing(sqlite3.connect(path)) as connection:
        top = connection.execute("SELECT max(rowid) FROM conversations").fetchone()[0]
        rng = random.Random(seed)
        picked = []
        while len(picked) < count:
            row = connection.execute(
                "SELECT p.address, a.local_part FROM conversations c JOIN parties p ON p.id = c.buyer_id "
                "JOIN aliases a ON a.conversation_id = c.id AND a.party_id = c.seller_id WHERE c.rowid = ?",
                (rng.randint(1, top),)).fetchone()
            if row:
                picked.append(row)
        return picked


async def prepared(path: Path, aliases: int) -> None:
    """A store at path with (at least) that many aliases, filled if needed."""
    url = f"sqlite:///{path}"
    await migrate(url)
    held = aliases_in(path)
    if held < aliases * 0.99:
        if held:
            raise SystemExit(f"{path} holds {held} aliases, not {aliases}: give another file")
        print(f"filling {aliases:,} aliases ...", flush=True)
        print(f"filled in {fill(path, aliases):.0f} s", flush=True)


async def time_reads(path: Path, calls: int) -> dict:
    url = f"sqlite:///{path}"
    db = database.Database(url)
    store = Store(db, "relay.test")
    picks = sample(path, calls)
    figures = {}
    try:
        routes = {}

        async def route(pick):
            routes[pick[1]] = await store.route(pick[1], fresh=True)

        async def arrived(pick):
            await store.arrived(routes[pick[1]], [f"<{pick[1]}@example.com>"], uuid.uuid4().hex)

        for name, call in (("route", route), ("arrived", arrived)):
            for pick in picks[:20]:  # the statement cache and the pool
                await call(pick)
            times = []
            for pick in picks:
                start = time.perf_counter()
                await call(pick)
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            figures[f"{name}_ms_p50"] = round(statistics.median(times), 3)
            figures[f"{name}_ms_p99"] = round(times[int(len(times) * 0.99) - 1], 3)
    finally:
        await db.dispose()
    figures["store_mb"] = round(sum(f.stat().st_size for f in path.parent.glob(path.name + "*")) / 2**20)
    return figures


async def main(args) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as folder:
        path = Path(args.keep) if args.keep else Path(folder) / "store.db"
        await prepared(path, args.aliases)
        figures = await time_reads(path, args.calls)
        print(" ".join(f"{k}={v}" for k, v in {"aliases": aliases_in(path), "calls": args.calls, **figures}.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aliases", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--keep", help="the store's file: kept afterwards, and reused if it holds the aliases")
    asyncio.run(main(parser.parse_args()))
