"""Engines and schema migrations. Alembic owns the schema; nothing calls create_all."""
from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import migrations

MIGRATIONS = Path(migrations.__file__).parent


class DatabaseError(Exception):
    """The store cannot be reached or is not at the schema this code expects."""


def async_url(url: str) -> str:
    """sqlite:/// and postgresql:// as written in relay.toml, with the async driver."""
    for plain, driver in (("sqlite://", "sqlite+aiosqlite://"), ("postgresql://", "postgresql+asyncpg://")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(async_url(url), pool_pre_ping=not is_sqlite(url))
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the CLI write while `relay serve` reads; the busy timeout
    # makes a brief writer collision wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the client hears 250, power loss
    # included. Group commit (aliases/queue.py) shares one fsync among
    # the messages of every session waiting at that moment.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """The store's engine, and a way to run a piece of synchronous SQLAlchemy Core work in one go.

    The per-message path (the route, a message's facts, the queue's group
    commit) is written as plain functions of a connection and run with read()
    or write(). On PostgreSQL they run on the asyncpg connection (run_sync).
    On SQLite they run whole in a thread of a small pool on the stdlib driver:
    aiosqlite hands every cursor call to its thread and back, and a busy event
    loop made each of those hand-offs cost a turn of the loop, so a commit of
    twenty statements waited for eighty turns. The async engine stays for the
    rest (commands, the operator's views, migrations).
    """

    THREADS = 4

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url)
        self._sync: sqlalchemy.Engine | None = None
        self._threads: ThreadPoolExecutor | None = None
        if is_sqlite(url):
            # One connection per thread; a read is one statement or a few, each seeing the latest commit.
            self._sync = sqlalchemy.create_engine(url, pool_size=self.THREADS, max_overflow=0)
            event.listen(self._sync, "connect", _sqlite_pragmas)

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def read(self, work, *args):
        """work(connection, *args), outside a transaction of its own making."""
        if self._sync is None:
            async with self.engine.connect() as connection:
                return await connection.run_sync(work, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self._read, work, args)

    async def write(self, work, *args):
        """work(connection, *args) in one transaction, committed when it returns."""
        if self._sync is None:
            async with self.engine.begin() as connection:
                return await connection.run_sync(work, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self._write, work, args)

    def _pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.THREADS, thread_name_prefix="store")
        return self._threads

    def _read(self, work, args):
        with self._sync.connect() as connection:
            return work(connection, *args)

    def _write(self, work, args):
        with self._sync.begin() as connection:
            return work(connection, *args)

    async def dispose(self) -> None:
        """Close every connection; the next use opens new ones, as AsyncEngine.dispose does."""
        await self.engine.dispose()
        if self._sync is not None:
            self._sync.dispose()  # checked-in connections only: no work is running at a dispose
            if self._threads is not None:
                self._threads.shutdown(wait=False)
                self._threads = None


def alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to head over the engine's own connection."""
    config = alembic_config()

    def run(sync_connection) -> None:
        config.attributes["connection"] = sync_connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(run)


def explained(url: str, exc: Exception) -> DatabaseError:
    # Driver errors differ per backend; name the store and the cause, on one line.
    return DatabaseError(f"database {safe_url(url)}: {type(exc).__name__}: {exc}".splitlines()[0])


async def migrate(engine: AsyncEngine, url: str) -> None:
    """`relay db upgrade`: bring the schema to head, or say in one line why not."""
    try:
        await upgrade(engine)
    except Exception as exc:
        raise explained(url, exc) from exc


async def prepare(engine: AsyncEngine, url: str) -> None:
    """On SQLite, migrate by itself; elsewhere insist the operator ran `relay db upgrade`."""
    if is_sqlite(url):
        _create_private(url)
        await migrate(engine, url)
        return
    try:
        current, head = await current_revision(engine), head_revision()
    except Exception as exc:
        raise explained(url, exc) from exc
    if current != head:
        raise DatabaseError(
            f"database {safe_url(url)} is at schema revision {current or 'none'}, this relay needs {head}: "
            "run `relay db upgrade`"
        )


def _create_private(url: str) -> None:
    """A new SQLite file is readable by its owner only: it holds every real address. SQLite gives
    the -wal and -shm files the database's own mode."""
    path = url.split("///", 1)[1] if "///" in url else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise DatabaseError(f"database {safe_url(url)}: cannot create {path}: {exc.strerror or exc}") from None


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
