"""Store lookups on the per-message path, timed alone: the RCPT route, conversation activity, thread links.

    .venv/bin/python bench/store.py [--calls 200]

Runs on a temporary SQLite file; prints milliseconds per call.
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from aliases import database
from aliases.store import Store


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        engine = database.create_engine(url)
        await database.prepare(engine, url)
        store = Store(engine, "relay.test")
        opened = await store.open_conversation("ann@example.com", "shop@seller-shop.example")
        local = opened.seller_alias.split("@")[0]
        timed = {
            "route": lambda: store.route(local),
            "activity": lambda: store.activity(opened.conversation_id),
            "thread_links": lambda: store.thread_links(opened.conversation_id, "buyer_to_seller", ["<x@example.com>"]),
        }
        for name, call in timed.items():
            for _ in range(20):  # warm the statement cache and the connection pool
                await call()
            start = time.perf_counter()
            for _ in range(calls):
                await call()
            print(f"{name}_ms={(time.perf_counter() - start) / calls * 1000:.2f}")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    asyncio.run(main(parser.parse_args().calls))
