"""Forward-path benchmark: how fast the relay turns a buyer's message into one at the next hop.

Starts the relay as a subprocess (so its memory is its own), an aiosmtpd sink in this
process as the next hop, and C clients on loopback sending N messages between them.
Prints messages per second, p50/p99 latency from the client starting the SMTP
transaction (MAIL FROM, so RCPT's alias lookup is included) to arrival at the sink,
and the relay's peak RSS, with and without its rewrite worker processes.

    .venv/bin/python bench/forward.py --messages 200 --size 2k --concurrency 20
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP

BUYER, SELLER = "ann@example.com", "shop@seller-shop.example"
DEADLINE = 60.0
TICKS = os.sysconf("SC_CLK_TCK")
TOKEN = re.compile(rb"(?m)^Subject: bench (\d+)\r?$")
FILLER = "The parcel arrived today but the box was dented; please check it."


def parse_size(text: str) -> int:
    """2048, 2k or 100K (k = 1024 bytes)."""
    text = text.strip().lower()
    return int(text[:-1]) * 1024 if text.endswith("k") else int(text)


def build_message(token: int, alias: str, size: int, attachment: bool, sender: str = BUYER) -> bytes:
    """About `size` bytes, CRLF line ends, lines under 78 characters, the sender's address once in the body."""
    head = (f"From: Ann <{sender}>\r\nTo: <{alias}>\r\nSubject: bench {token}\r\n"
            f"Date: Mon, 1 Dec 2025 10:00:00 +0000\r\nMessage-ID: <bench-{token}@example.com>\r\nMIME-Version: 1.0\r\n")
    text = f"Hello,\r\n\r\nplease answer me at {sender} about my order.\r\n\r\n"
    if not attachment:
        start = head + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + text
        count = max(0, (size - len(start)) // len(f"00000 {FILLER}\r\n"))
        return (start + "".join(f"{i:05d} {FILLER}\r\n" for i in range(count))).encode("ascii")
    boundary = "bench-boundary-0123456789"
    skeleton = (head + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
                f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n"
                f'--{boundary}\r\nContent-Type: application/pdf; name="invoice.pdf"\r\n'
                f'Content-Disposition: attachment; filename="invoice.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                "{}\r\n--" + boundary + "--\r\n")
    room = max(0, size - len(skeleton) - 10)  # base64 in 76-character lines: 78 bytes carry 57
    encoded = base64.b64encode(b"%PDF-1.4\n" + random.Random(token).randbytes(room * 57 // 78)).decode("ascii")
    return skeleton.replace("{}", "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))).encode("ascii")


class Sink:
    """The next hop: notes when each benchmark message arrives, keyed by the token in its Subject."""

    def __init__(self):
        self.arrivals: dict[int, float] = {}

    async def handle_DATA(self, server, session, envelope):
        now = time.perf_counter()
        content = envelope.original_content
        match = TOKEN.search(content, 0, content.find(b"\r\n\r\n"))
        if match:
            self.arrivals[int(match.group(1))] = now
        return "250 OK"


def read_proc(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # the process ended between listing and reading
        return ""


def descendants(pid: int) -> list[int]:
    """All processes below pid, via /proc/<pid>/task/*/children: the rewrite workers and multiprocessing's tracker."""
    found, todo = [], [pid]
    while todo and len(found) < 1000:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            kids = [int(k) for k in read_proc(task).split()]
            found, todo = found + kids, todo + kids
    return found


def status_kb(pid: int, field: str) -> int:
    for line in read_proc(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Samples VmRSS of the relay and of relay + workers every 50 ms; a thread, so a busy event loop cannot delay it."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop, self.main_peak, self.total_peak = pid, threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            main = status_kb(self.pid, "VmRSS")
            total = main + sum(status_kb(child, "VmRSS") for child in descendants(self.pid))
            self.main_peak, self.total_peak = max(self.main_peak, main), max(self.total_peak, total)
            self.stop.wait(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until_listening(port: int, proc: subprocess.Popen) -> None:
    end = time.monotonic() + DEADLINE
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"relay exited with status {proc.returncode} before listening (its log follows)")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > end:
                raise SystemExit(f"relay not listening on {port} after {DEADLINE}s")
            await asyncio.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """CPU time of pid and every process below it, those already reaped included (cutime, cstime)."""
    total = 0.0
    for process in [pid, *descendants(pid)]:
        fields = read_proc(Path(f"/proc/{process}/stat")).rsplit(")", 1)[-1].split()
        if len(fields) > 14:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS
    return total


async def client(port: int, batch: list[tuple[int, str, str, bytes]], starts: dict[int, float],
                 accepted: dict[int, float]) -> None:
    """One connection, its share of messages one after another; any refusal raises."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=DEADLINE, start_tls=False) as smtp:
        for token, sender, alias, data in batch:
            starts[token] = time.perf_counter()
            await smtp.mail(sender)
            await smtp.rcpt(alias)
            data_sent = time.perf_counter()
            await smtp.data(data)
            accepted[token] = time.perf_counter() - data_sent  # from DATA to the 250: the store's commit included


async def run(args, tmp: Path) -> dict:
    loop, sink = asyncio.get_running_loop(), Sink()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink", enable_SMTPUTF8=True, data_size_limit=None), "127.0.0.1", 0)
    sink_port, ports = server.sockets[0].getsockname()[1], [free_port() for _ in range(args.nodes)]
    config = tmp / "relay.toml"
    database_url = (f"sqlite:///{Path(args.store).resolve()}" if args.store else args.database
                    or f"sqlite:///{tmp / 'relay.db'}")
    dkim = ""
    if args.dkim:
        from relay.signing import new_key
        (tmp / "dkim.key").write_bytes(new_key()[0])
        dkim = f'[dkim]\nkey_file = "{tmp / "dkim.key"}"\n'
    settings = (
        f'[server]\nhost = "127.0.0.1"\nport = {{port}}\nnode = "{{node}}"\nworkers = {args.workers}\nshutdown_grace = 5\n'
        f'[delivery]\nsmarthost = "127.0.0.1:{sink_port}"\n[database]\nurl = "{database_url}"\n'
        f'[aliases]\ndomain = "relay.test"\n[log]\nformat = "json"\nlevel = "WARNING"\n{dkim}'
        # Every benchmark message is unsolicited; the over-messaging rule would bounce all but two,
        # and the hourly limits would defer most: a benchmark is a flood by design.
        '[filters.frequency]\nenabled = false\n'
        '[limits]\nmessages_per_hour_per_party = 10000000\nmessages_per_hour_per_conversation = 10000000\n'
        'max_connections_per_client = 1000\n')
    for node, port in enumerate(ports):  # one config per node: the same store, a port and a name of its own
        (tmp / f"relay-{node}.toml").write_text(settings.replace("{port}", str(port)).replace("{node}", f"bench-{node}"))
    config.write_text(settings.replace("{port}", str(ports[0])).replace("{node}", "bench-0"))
    cli = [sys.executable, "-m", "relay.cli", "--config", str(config)]
    if not database_url.startswith("sqlite"):
        upgraded = subprocess.run([*cli, "db", "upgrade"], capture_output=True, text=True, timeout=DEADLINE, cwd=tmp)
        if upgraded.returncode:
            raise SystemExit(f"db upgrade failed: {upgraded.stderr}")
    if args.store:  # buyers writing in conversations picked at random from a filled store
        import store as filled
        ways = [(buyer, f"{local}@relay.test") for buyer, local in filled.sample(Path(args.store), args.spread)]
    else:
        opened = subprocess.run([*cli, "conversation", "open", "--buyer", BUYER, "--seller", SELLER],
                                capture_output=True, text=True, timeout=DEADLINE, cwd=tmp)
        if opened.returncode:
            raise SystemExit(f"conversation open failed: {opened.stderr}")
        # The seller's direction runs every content rule; the buyer's only the attachment rule.
        ways = [(SELLER if args.sender == "seller" else BUYER,
                 json.loads(opened.stdout)["buyer_alias" if args.sender == "seller" else "seller_alias"])]
    procs, logs = [], [tmp / f"relay-{node}.log" for node in range(args.nodes)]
    for node, log in enumerate(logs):
        with open(log, "wb") as log_file:
            procs.append(subprocess.Popen([sys.executable, "-m", "relay.cli", "--config", str(tmp / f"relay-{node}.toml"),
                                           "serve"], stdout=log_file, stderr=subprocess.STDOUT, cwd=tmp,
                                          start_new_session=True))
    proc = procs[0]
    sampler = RssSampler(proc.pid)
    try:
        for port, each in zip(ports, procs):
            await wait_until_listening(port, each)
        sampler.start()
        messages = [(t, *ways[t % len(ways)], build_message(t, ways[t % len(ways)][1], args.size, args.attachment,
                                                            ways[t % len(ways)][0])) for t in range(args.messages)]
        starts: dict[int, float] = {}
        accepted: dict[int, float] = {}
        cpu_before = sum(cpu_seconds(each.pid) for each in procs)
        begin = time.perf_counter()
        await asyncio.gather(*(client(ports[c % len(ports)], messages[c::args.concurrency], starts, accepted)
                               for c in range(args.concurrency)))
        end = time.monotonic() + DEADLINE
        while len(sink.arrivals) < args.messages and time.monotonic() < end:
            await asyncio.sleep(0.01)
        missing = sorted(set(range(args.messages)) - set(sink.arrivals))
        if missing:
            raise SystemExit(f"{len(missing)} of {args.messages} messages never reached the sink, e.g. {missing[:10]}")
        elapsed = max(sink.arrivals.values()) - begin
        cpu = sum(cpu_seconds(each.pid) for each in procs) - cpu_before
        hwm = status_kb(proc.pid, "VmHWM")
    finally:
        sampler.stop.set()
        for each in procs:
            each.send_signal(signal.SIGTERM)
        for each, log in zip(procs, logs):
            try:
                await asyncio.to_thread(each.wait, 15)
            except subprocess.TimeoutExpired:
                os.killpg(each.pid, signal.SIGKILL)
                each.wait(5)
            if each.returncode != 0 or log.stat().st_size:  # at WARNING level a healthy run logs nothing
                print(f"relay exit status {each.returncode}; its log:\n{log.read_text()[-3000:]}", file=sys.stderr)
        server.close()
        await server.wait_closed()
    latencies = sorted((sink.arrivals[t] - starts[t]) * 1000 for t in range(args.messages))
    accepts = sorted(value * 1000 for value in accepted.values())

    def rank(values, share):  # nearest rank
        return round(values[math.ceil(share * len(values)) - 1], 1)

    return {
        "size": args.size, "concurrency": args.concurrency, "messages": args.messages, "nodes": args.nodes,
        "msgs/s": round(args.messages / elapsed, 1),
        "p50_ms": rank(latencies, 0.50), "p99_ms": rank(latencies, 0.99),
        "data_to_250_p50_ms": rank(accepts, 0.50), "data_to_250_p99_ms": rank(accepts, 0.99),
        "cpu_ms_per_message": round(cpu / args.messages * 1000, 2),
        "database": "postgresql" if args.database else "sqlite", "dkim": args.dkim,
        "relay_peak_rss_mb": round(sampler.main_peak / 1024, 1),
        "relay_plus_workers_peak_rss_mb": round(sampler.total_peak / 1024, 1),
        "relay_vmhwm_mb": round(hwm / 1024, 1),
        "attachment": args.attachment, "bytes": len(messages[0][3]), "workers": args.workers, "from": args.sender,
        "latency": "client_send_start_to_sink_arrival",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size", type=parse_size, default=2048, help="bytes; 2k = 2048")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="relay rewrite processes; 0 = one per core")
    parser.add_argument("--attachment", action="store_true", help="bulk of the size as a base64 PDF attachment")
    parser.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    parser.add_argument("--from", dest="sender", choices=["buyer", "seller"], default="buyer",
                        help="who writes: a seller's messages pass every content rule")
    parser.add_argument("--database", metavar="URL", help="postgresql://... (an empty database); default SQLite")
    parser.add_argument("--dkim", action="store_true", help="sign everything with a fresh 2048-bit key")
    parser.add_argument("--nodes", type=int, default=1, help="relays sharing the store (--database), clients spread")
    parser.add_argument("--store", metavar="FILE", help="a SQLite store filled by bench/store.py --keep FILE")
    parser.add_argument("--spread", type=int, default=1000, help="with --store: how many of its conversations")
    args = parser.parse_args()
    if args.messages < 1 or not 1 <= args.concurrency <= args.messages:
        parser.error("need 1 <= concurrency <= messages")
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print(" ".join(f"{key}={value}" for key, value in result.items()))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
