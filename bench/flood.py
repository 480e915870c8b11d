"""A flood of connections from one address: what the relay does, how much memory it holds, who is still served.

Starts `relay serve` (shipped limits: 20 connections per client, 1000 in all),
opens N connections from 127.0.0.2 and keeps them, then sends one message from
127.0.0.1. Prints how many flood connections were greeted and how many refused,
the relay's resident memory before and at the peak, its log's size, and
whether the other address was served.

    .venv/bin/python bench/flood.py --connections 20000
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import free_port, listening

BUYER, SELLER = "ann@example.com", "shop@seller-shop.example"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20



async def flood(port: int, count: int) -> tuple[int, int, list]:
    greeted = refused = 0
    held = []

    async def one() -> None:
        nonlocal greeted, refused
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            line = await asyncio.wait_for(reader.readline(), 30)
        except (OSError, asyncio.TimeoutError):
            refused += 1
            return
        if line.startswith(b"220"):
            greeted += 1
            held.append(writer)
        else:
            refused += 1
            writer.close()

    for start in range(0, count, 200):
        await asyncio.gather(*(one() for _ in range(min(200, count - start))))
        if start % 2000 == 0:
            print(f"  {start + 200} opened: {greeted} greeted, {refused} refused", file=sys.stderr, flush=True)
    return greeted, refused, held


def send_one(port: int, alias: str) -> bool:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(BUYER, [alias], f"From: {BUYER}\r\nSubject: still served\r\n\r\nHello\r\n".encode())
    return True


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=20000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    folder = Path(tempfile.mkdtemp(prefix="relay-flood-"))
    port, hop = free_port(), free_port()
    (folder / "relay.toml").write_text(f'[server]\nport = {port}\n[delivery]\nsmarthost = "127.0.0.1:{hop}"\n'
                                       f'[database]\nurl = "sqlite:///relay.db"\n')
    cli = [sys.executable, "-m", "relay.cli", "--config", str(folder / "relay.toml")]
    opened = json.loads(subprocess.run(cli + ["conversation", "open", "--buyer", BUYER, "--seller", SELLER],
                                       capture_output=True, text=True, check=True).stdout)
    log = open(folder / "relay.log", "wb")
    relay = subprocess.Popen(cli + ["serve"], stderr=log)
    try:
        await listening(port)
        await asyncio.sleep(1)
        before = rss_mib(relay.pid)
        started = time.monotonic()
        flooding = asyncio.create_task(flood(port, args.connections))
        await asyncio.sleep(0.5)  # the flood is under way when the other address writes
        served = await asyncio.to_thread(send_one, port, opened["seller_alias"])
        greeted, refused, held = await flooding
        peak = rss_mib(relay.pid)
        for writer in held:
            writer.close()
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(60)
        log.close()
    size = (folder / "relay.log").stat().st_size
    print(f"{args.connections} connections from 127.0.0.2 in {time.monotonic() - started:.1f} s: {greeted} greeted, "
          f"{refused} refused; relay RSS {before:.0f} MiB before, {peak:.0f} MiB at the peak; "
          f"127.0.0.1 served: {served}; relay log {size / 1024:.1f} KiB")


if __name__ == "__main__":
    asyncio.run(main())
