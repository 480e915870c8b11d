"""Engines and schema migrations. Alembic owns the schema; nothing calls create_all."""
from __future__ import annotations

import os
from pathlib import Path

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
        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
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
    return engine


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
