"""Memory under hostile load: twenty concurrent 10 MB messages built to blow up a reader.

Starts `relay serve` (its own temporary config and database, the shipped
limits) and a next hop, opens one conversation, and sends C messages at once
from the seller to the buyer, so every content rule reads them. The messages
cycle through the kinds that once cost gigabytes: text of a character NFKC
writes with eighteen letters (U+FDFA), HTML of tags, a thousand-part MIME
tree, dense accented text, and a base64 attachment. Samples the resident
memory of the relay's whole process tree (the relay and its workers) every
20 ms and prints the peak, with each message's answer. `--kinds plain` sends
ordinary mail instead (short ASCII lines of prose), `--kinds plain,attachment`
that and a PDF, for the memory goal of the performance issue.

    .venv/bin/python bench/hostile_memory.py --concurrency 20 --size 10m
    .venv/bin/python bench/hostile_memory.py --concurrency 20 --size 10m --kinds plain,attachment
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
from common import free_port, listening

BUYER, SELLER = "ann@example.com", "shop@seller-shop.example"
PAGE = os.sysconf("SC_PAGE_SIZE")



def lines(text: str, width: int = 300) -> str:
    return "\r\n".join(text[i:i + width] for i in range(0, len(text), width))


def hostile(kind: str, size: int, alias: str) -> bytes:
    head = (f"From: <{SELLER}>\r\nTo: <{alias}>\r\nSubject: {kind}\r\nMIME-Version: 1.0\r\n"
            f"Message-ID: <{kind}-{os.urandom(8).hex()}@seller-shop.example>\r\n")
    if kind == "nfkc":
        body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + lines("\ufdfa" * (size // 3), 330)
    elif kind == "tags":
        body = "Content-Type: text/html; charset=utf-8\r\n\r\n" + lines("<p><b>x</b></p>" * 90_000 + "y" * (size - 1_350_000))
    elif kind == "tree":
        part = "--b\r\nContent-Type: text/plain\r\n\r\n" + "z" * (size // 1000 - 40) + "\r\n"
        body = "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * 990 + "--b--\r\n"
    elif kind == "plain":  # an ordinary long letter: short ASCII lines, the way bench/forward.py writes them
        body = "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + "".join(
            f"{i:07d} The parcel arrived today but the box was dented; please check it.\r\n" for i in range(size // 75))
    elif kind == "text":
        body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "\r\n".join(
            f"Línea {i}: el envío número {i} llegó dañado, según el señor Muñoz." for i in range(size // 66))
    else:
        data = base64.encodebytes(os.urandom(size * 3 // 4)).decode().replace("\n", "\r\n")
        body = ("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n"
                "--b\r\nContent-Type: application/pdf; name=scan.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                f"{data}--b--\r\n")
    return (head + body + "\r\n").encode("utf-8")


def tree_rss(root: int) -> tuple[int, list[int]]:
    """(bytes resident in root and all its descendants, each process's share, root first)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    shares, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                shares.append(int(statm.read().split()[1]) * PAGE)
        except OSError:
            continue
        todo += children.get(pid, [])
    return sum(shares), shares


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--size", default="10m", help="bytes per message; k and m suffixes (1000s)")
    parser.add_argument("--kinds", default="nfkc,tags,tree,text,attachment",
                        help="comma-separated, cycled through: nfkc, tags, tree, text, attachment, plain")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = int(float(args.size[:-1]) * (1000 if args.size[-1] in "kK" else 1_000_000)) if args.size[-1] in "kKmM" else int(args.size)

    folder = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    port, hop = free_port(), free_port()
    (folder / "relay.toml").write_text(
        f'[server]\nport = {port}\n[delivery]\nsmarthost = "127.0.0.1:{hop}"\ntimeout = 300\n'
        f'[database]\nurl = "sqlite:///relay.db"\n[log]\nlevel = "WARNING"\n'
        f'[limits]\nmax_connections_per_client = 1000\n'
        # No DNS here, so no seller could pass SPF or DKIM: without this every message would be
        # refused at the authentication check, before the stages whose memory this measures.
        f'[auth]\nrequire = "none"\n'
        # All from one seller in one conversation: past two a day the over-messaging rule would bounce them.
        f'[filters.frequency]\nenabled = false\n')
    relay_cmd = [sys.executable, "-m", "relay.cli", "--config", str(folder / "relay.toml")]
    if shutil.which("smtp-sink"):
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{hop}", "100"], stdout=subprocess.DEVNULL)
    else:
        sink = subprocess.Popen(relay_cmd + ["sink", "--port", str(hop)], stdout=subprocess.DEVNULL)
    opened = json.loads(subprocess.run(relay_cmd + ["conversation", "open", "--buyer", BUYER, "--seller", SELLER],
                                       capture_output=True, text=True, check=True).stdout)
    relay = subprocess.Popen(relay_cmd + ["serve"], stderr=subprocess.DEVNULL)
    try:
        await listening(port)
        await asyncio.sleep(1.0)  # the workers warm up
        idle, processes = tree_rss(relay.pid)
        kinds = args.kinds.split(",")
        messages = [hostile(kinds[i % len(kinds)], size, opened["buyer_alias"]) for i in range(args.concurrency)]
        peak, stop = [idle, processes], asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                rss, count = tree_rss(relay.pid)
                if rss > peak[0]:
                    peak[:] = [rss, count]
                await asyncio.sleep(0.02)

        async def send(message: bytes) -> str:
            started = time.monotonic()
            try:
                async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=600, start_tls=False) as client:
                    _, text = await client.sendmail(SELLER, [opened["buyer_alias"]], message)
                answer = f"250 {text}"
            except aiosmtplib.SMTPResponseException as exc:
                answer = f"{exc.code} {exc.message}"
            return f"{time.monotonic() - started:6.1f} s  {answer[:90]}"

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        answers = await asyncio.gather(*(send(m) for m in messages))
        elapsed = time.monotonic() - started
        stop.set()
        await sampler
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(60)
        sink.kill()
        shutil.rmtree(folder, ignore_errors=True)
    result = {"messages": args.concurrency, "size_bytes": size, "seconds": round(elapsed, 1),
              "idle_rss_mib": round(idle / 2**20, 1), "peak_rss_mib": round(peak[0] / 2**20, 1),
              "processes_at_peak": [round(share / 2**20) for share in peak[1]]}
    if args.json:
        print(json.dumps({**result, "answers": answers}))
        return
    kinds = args.kinds.split(",")
    for index, answer in enumerate(answers):
        print(f"{kinds[index % len(kinds)]:>10}  {answer}")
    print(f"{args.concurrency} messages of {size / 1e6:.1f} MB at once, answered in {elapsed:.1f} s; relay process tree: "
          f"idle {result['idle_rss_mib']} MiB, peak {result['peak_rss_mib']} MiB "
          f"(relay {result['processes_at_peak'][0]} MiB, others {result['processes_at_peak'][1:]} MiB)")


if __name__ == "__main__":
    asyncio.run(main())
