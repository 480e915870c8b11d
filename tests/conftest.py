"""Real parts on loopback: the relay in the test's own event loop, an aiosmtpd sink as next hop.

The sink records what arrives and can fail on cue, as aiosmtplib's own test
servers do. Waits poll with a deadline; nothing sleeps to synchronise.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP

from aliases.views import OpenedConversation
from relay.config import Config
from relay.server import Relay

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
BUYER = "ann.buyer@example.com"
SELLER = "orders@seller-shop.example"
SELLER_DOMAIN = "seller-shop.example"
DEADLINE = 10.0


async def eventually(predicate, timeout: float = DEADLINE, what: str = "condition"):
    """Poll until predicate() is truthy, or fail after timeout seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def settled(relay, timeout: float = DEADLINE) -> None:
    """Wait until the relay has nothing queued and nothing on its way: what will arrive has arrived."""
    async def empty() -> bool:
        count, _ = await relay.queue.depth()
        return count == 0 and not relay.delivery.busy and not relay.gatekeeper.deciding

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await empty():
        if loop.time() > end:
            raise AssertionError("timed out waiting for the queue to empty")
        await asyncio.sleep(0.01)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]


@dataclass
class Sink:
    """The next hop: records every message; answers with queued failures first."""

    messages: list[Received] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    hold: asyncio.Event | None = None
    tls_context: object | None = None
    """An ssl.SSLContext: the sink offers STARTTLS with it."""
    ehlos: int = 0
    """Greetings seen: one per connection, so reused connections show as fewer."""
    tls_sessions: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.ehlos += 1
        session.host_name = hostname
        return responses

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    def fail_next(self, count: int, reply: str = "451 4.3.0 Try again later") -> None:
        self.failures.extend([reply] * count)

    async def handle_DATA(self, server, session, envelope):
        if self.hold is not None:
            await self.hold.wait()
        if self.failures:
            return self.failures.pop(0)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                      list(envelope.mail_options)))
        self.tls_sessions += session.ssl is not None
        return "250 2.0.0 Ok: queued"

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> Sink:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.localhost", enable_SMTPUTF8=True, data_size_limit=None,
                         tls_context=self.tls_context),
            host=host, port=port,
        )
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def wait_for(self, count: int, timeout: float = DEADLINE) -> list[Received]:
        await eventually(lambda: len(self.messages) >= count, timeout, f"{count} message(s) at the sink")
        return self.messages


@pytest.fixture
async def sink():
    s = await Sink().start()
    yield s
    await s.stop()


def make_config(tmp_path: Path, sink_port: int, **sections) -> Config:
    base = {
        "server": {"host": "127.0.0.1", "port": 0, "workers": 1, "shutdown_grace": 5},
        "delivery": {"smarthost": f"127.0.0.1:{sink_port}", "timeout": 5, "retry_base": 0.05, "retry_cap": 0.2,
                     "poll_seconds": 0.05},
        "database": {"url": f"sqlite:///{tmp_path / 'relay.db'}"},
        "aliases": {"domain": "relay.test"},
        "log": {"format": "json"},
        # Loopback has no SPF, DKIM or DMARC to ask: tests/security/ sets up a DNS server that has.
        "auth": {"require": "none"},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Config(**base)


NO_POLICY = {rule: {"enabled": False} for rule in
             ("attachments", "optout", "links", "contact", "promotion", "review", "frequency")}


@pytest.fixture
def relay_sections() -> dict:
    """Config sections for the `relay` fixture; a test module overrides this to change them."""
    return {}


# -- the store's backends ---------------------------------------------------------------------
# SQLite always; PostgreSQL from $RELAY_TEST_POSTGRES (a server URL), which .ci/run provides, so
# in CI every test that asks for both runs on both. A module asks with `backend = both_backends`.

POSTGRES = os.environ.get("RELAY_TEST_POSTGRES")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=["sqlite"])
def backend(request) -> str:
    """The store's backend; a module that should run on both sets `backend = both_backends`."""
    return request.param


@pytest.fixture(params=BACKENDS)
def both_backends(request) -> str:
    return request.param


def postgres_or_skip() -> str:
    if not POSTGRES:
        if os.environ.get("CI"):
            pytest.fail("CI must provide PostgreSQL in RELAY_TEST_POSTGRES (see .ci/run)")
        pytest.skip("RELAY_TEST_POSTGRES is not set")
    return POSTGRES


@pytest.fixture(scope="session")
def postgres_database():
    """One database at the schema's head for the whole run; each test leaves it empty (see database_url)."""
    import asyncpg

    from aliases import database

    name = f"relay_tests_{uuid.uuid4().hex[:8]}"
    url = postgres_or_skip().rsplit("/", 1)[0] + "/" + name

    async def create():
        server = await asyncpg.connect(POSTGRES)
        await server.execute(f'CREATE DATABASE "{name}"')
        await server.close()
        engine = database.create_engine(url)
        await database.upgrade(engine)
        await engine.dispose()

    async def drop():
        server = await asyncpg.connect(POSTGRES)
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()

    def run(work) -> None:  # its own loop in its own thread: the tests' loop may be running already
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, work()).result()

    run(create)
    yield url
    run(drop)


_TABLES = ("bounce_tokens, outgoing, handed_on, message_bodies, flags, api_tokens, messages, aliases, conversations, "
           "sender_addresses, parties")


@pytest.fixture
async def database_url(backend, tmp_path, request):
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'relay.db'}"
        return
    import asyncpg

    url = request.getfixturevalue("postgres_database")
    yield url
    # Emptied, not dropped: creating a database costs half a second of fsyncs.
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture
async def relay(tmp_path, sink, relay_sections, database_url):
    sections = {**relay_sections, "database": {"url": database_url, **relay_sections.get("database", {})}}
    r = Relay(make_config(tmp_path, sink.port, **sections))
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def limited(tmp_path, sink, request):
    """A relay with the limits the test asks for (indirect parametrisation)."""
    relay = Relay(make_config(tmp_path, sink.port, limits=request.param))
    await relay.start()
    yield relay
    await relay.stop()


async def open_conversation(relay: Relay, **kwargs) -> OpenedConversation:
    args = {"buyer": BUYER, "seller": SELLER, "order_id": "A-1001", **kwargs}
    return await relay.store.open_conversation(args.pop("buyer"), args.pop("seller"), **args)


@pytest.fixture
async def conversation(relay):
    return await open_conversation(relay, buyer_name="Ann Buyer", seller_name="Seller Shop")


async def send(relay: Relay, sender: str, recipient: str, message: bytes | str, **options) -> aiosmtplib.SMTPResponse:
    """One SMTP transaction to the relay; returns the DATA reply, raises on refusal."""
    if isinstance(message, str):
        message = message.encode("utf-8")
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, timeout=30, start_tls=False) as client:
        errors, text = await client.sendmail(sender, [recipient], message, **options)
        return text


@contextlib.asynccontextmanager
async def api_client(relay: Relay, name: str = "test"):
    """An HTTP client for the relay's API, with a fresh bearer token."""
    import httpx

    token = await relay.center.create_token(name)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.http_port('api')}", timeout=10,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def bounce_address(address: str, domain: str = "relay.test") -> bool:
    """The envelope sender of everything the relay sends: a bounce address bound to that one message."""
    return bool(re.fullmatch(r"bounce\+[0-9a-f]{24}@" + re.escape(domain), address))


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})}, cwd=cwd or ROOT,
    )


def run_cli_here(*args: str) -> subprocess.CompletedProcess:
    """`relay ARGS` in this process (the same main() as the command), without a second Python's start-up:
    for tests of a command's own behaviour. Standard streams and logging are restored afterwards."""
    import io
    import logging

    from relay import cli

    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main(list(args))
    except SystemExit as exc:  # argparse
        code = exc.code
    finally:
        sys.stdout, sys.stderr = streams
        root.handlers[:], root.level = handlers, level
    out.flush()
    return subprocess.CompletedProcess(list(args), code, out.buffer.getvalue().decode(), err.getvalue())


def on_a_terminal(*argv: str, stream: str = "stdout", **env: str) -> tuple[str, bytes]:
    """`relay ARGV` with one standard stream (stdout or stderr) a terminal and the other a pipe:
    (what reached the pipe, what reached the terminal). Exits 0, or the test fails."""
    import pty
    import threading

    controller, terminal = pty.openpty()
    streams = {"stdout": terminal, "stderr": subprocess.PIPE} if stream == "stdout" else \
        {"stdout": subprocess.PIPE, "stderr": terminal}
    process = subprocess.Popen([sys.executable, "-m", "relay.cli", *argv], cwd=ROOT,
                               env={**os.environ, "NO_COLOR": "", **env}, **streams)
    os.close(terminal)
    drawn: list[bytes] = []

    def read() -> None:  # drained as it is written: a full terminal would stop the program
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the program has exited and closed its end
                return
            if not chunk:
                return
            drawn.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    out, err = process.communicate(timeout=60)
    piped = err if stream == "stdout" else out
    reader.join(timeout=10)
    os.close(controller)
    assert process.returncode == 0
    return piped.decode(), b"".join(drawn)


def fixture_text(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8", "surrogateescape")


def crlf(text: str) -> bytes:
    """A message as it travels over SMTP: CRLF line ends."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape")
