"""What each `relay` command does. relay/cli.py parses the command line and calls `run`."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aliases import database
from aliases.addresses import InvalidAddress
from aliases.store import Store
from aliases.views import StoreError

from . import sink
from .config import Config
from .server import Relay


class Failure(Exception):
    """A request that could not be carried out; its text is the one line the user sees."""


async def _with_store(config: Config, work):
    """Run work(store) on a database brought to head (SQLite) or found at head (others)."""
    url = config.database_url()
    engine = database.create_engine(url)
    try:
        await database.prepare(engine, url)
        return await work(Store(engine, config.aliases.domain))
    except (database.DatabaseError, InvalidAddress, StoreError) as exc:
        raise Failure(str(exc)) from None
    finally:
        await engine.dispose()


async def _upgrade(config: Config) -> None:
    engine = database.create_engine(config.database_url())
    try:
        await database.migrate(engine, config.database_url())
    except database.DatabaseError as exc:
        raise Failure(str(exc)) from None
    finally:
        await engine.dispose()


def _print_json(value, indent: int | None = None) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=indent))


async def _serve(config: Config) -> None:
    relay = Relay(config)
    try:
        await relay.start()
    except database.DatabaseError as exc:
        await relay.engine.dispose()
        raise Failure(str(exc)) from None
    except OSError as exc:
        await relay.engine.dispose()
        raise Failure(f"cannot listen on {config.server.host}:{config.server.port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await relay.stop()


def run(args: argparse.Namespace, config: Config) -> None:
    if args.command == "serve":
        asyncio.run(_serve(config))
    elif args.command == "sink":
        hop = config.delivery
        asyncio.run(sink.run(args.host or hop.host, args.port or hop.port))
    elif args.command == "db":
        asyncio.run(_upgrade(config))
        print(f"database at schema revision {database.head_revision()}")
    elif args.command == "conversation" and args.action == "open":
        async def open_(store: Store):
            opened = await store.open_conversation(
                args.buyer, args.seller, buyer_name=args.buyer_name, seller_name=args.seller_name,
                buyer_locale=args.buyer_locale, seller_locale=args.seller_locale,
                order_id=args.order, category=args.category,
            )
            return opened.__dict__
        _print_json(asyncio.run(_with_store(config, open_)))
    elif args.command == "conversation" and args.action == "show":
        async def show(store: Store):
            return await store.show(args.id)
        shown = asyncio.run(_with_store(config, show))
        if shown is None:
            raise Failure(f"no conversation {args.id}")
        _print_json(shown, indent=2)
    elif args.command == "seller":
        async def add(store: Store):
            await store.add_seller_address(args.seller, args.address)
        asyncio.run(_with_store(config, add))
    elif args.command == "optout":
        async def set_(store: Store):
            await store.set_opt_out(args.email, args.action == "add")
        asyncio.run(_with_store(config, set_))
