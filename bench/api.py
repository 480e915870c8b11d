"""The HTTP API and /metrics under load: a relay in this process on loopback, a real HTTP client.

Opens --conversations conversations through POST /conversations, sends one message in each over SMTP
to a local sink, then times --requests calls of each read the marketplace and operators make most
(--concurrency at once): a conversation's thread, a search by order id, /metrics, and the
response-time report over everything. Prints requests per second and p50/p99 latency for each.

    .venv/bin/python bench/api.py --conversations 500 --requests 2000 --concurrency 20
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import Sink, crlf, make_config  # noqa: E402

from relay.server import Relay  # noqa: E402


async def timed(label: str, calls, concurrency: int) -> None:
    latencies: list[float] = []
    queue = list(calls)

    async def one_by_one():
        while queue:
            call = queue.pop()
            started = time.perf_counter()
            reply = await call()
            latencies.append(time.perf_counter() - started)
            if reply.status_code != 200:
                raise SystemExit(f"{label}: HTTP {reply.status_code}: {reply.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(one_by_one() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print(f"{label:<28} {len(latencies) / elapsed:8.1f} req/s   p50 {statistics.median(latencies) * 1000:7.1f} ms"
          f"   p99 {p99 * 1000:7.1f} ms")


async def main(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-api-"))
    sink = await Sink().start()
    relay = Relay(make_config(folder, sink.port, api={"enabled": True, "listen": "127.0.0.1:0"},
                              metrics={"enabled": True, "listen": "127.0.0.1:0"},
                              limits={"messages_per_hour_per_party": 1_000_000, "max_transactions_per_session": 100_000},
                              filters={"frequency": {"enabled": False}},
                              delivery={"poll_seconds": 1.0}))  # as shipped: the tests' config polls every 50 ms
    await relay.start()
    token = await relay.center.create_token("bench")
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.http_port('api')}", headers=headers,
                                 limits=limits, timeout=60) as api, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.http_port('metrics')}", limits=limits) as scrape:
        opened = []
        started = time.perf_counter()
        for n in range(args.conversations):
            reply = await api.post("/conversations", json={"buyer": f"buyer{n}@example.com",
                                                           "seller": f"seller{n % 50}@shop.example",
                                                           "order_id": f"O-{n}"})
            opened.append(reply.json())
        print(f"{'open (sequential)':<28} {args.conversations / (time.perf_counter() - started):8.1f} req/s")
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port) as smtp:
            for n, conversation in enumerate(opened):
                alias = conversation["seller_alias"]
                await smtp.sendmail(f"buyer{n}@example.com", [alias], crlf(
                    f"From: <buyer{n}@example.com>\nTo: {alias}\nSubject: order O-{n}\n"
                    f"Message-ID: <b{n}@example.com>\n\nWhere is it?\n"))
        await sink.wait_for(len(opened), timeout=300)
        ids = [c["conversation_id"] for c in opened]
        await timed("GET /conversations/{id}", [lambda i=random.choice(ids): api.get(f"/conversations/{i}")
                                                for _ in range(args.requests)], args.concurrency)
        await timed("GET /conversations?q=ORDER", [lambda n=random.randrange(len(ids)): api.get(
            "/conversations", params={"q": f"O-{n}"}) for _ in range(args.requests)], args.concurrency)
        await timed("GET /metrics", [lambda: scrape.get("/metrics") for _ in range(args.requests)],
                    args.concurrency)
        await timed("GET /reports/response-times", [lambda: api.get("/reports/response-times")
                                                    for _ in range(max(1, args.requests // 50))], 1)
    await relay.stop()
    await sink.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
