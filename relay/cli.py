"""The `relay` command: what the marketplace backend, operators and tests drive the relay with.

Exit status: 0 done, 1 the request could not be carried out (named on stderr),
2 bad configuration or usage.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from aliases import database
from aliases.addresses import InvalidAddress
from aliases.store import Store, StoreError

from . import config as config_module
from . import logs, sink
from .config import Config, ConfigError

log = logging.getLogger("relay")


class Failure(Exception):
    """A request that could not be carried out; its text is the one line the user sees."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the command must survive the sub-parser's defaults.
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="relay.toml to use (default: $RELAY_CONFIG, then ./relay.toml)")
    common.add_argument("--log-format", choices=["json", "text"], default=argparse.SUPPRESS,
                        help="overrides [log] format")

    parser = argparse.ArgumentParser(prog="relay", description="marketplace-relay: an anonymizing SMTP gateway",
                                     parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("serve", parents=[common], help="run the relay until SIGTERM or SIGINT")
    sink_cmd = commands.add_parser("sink", parents=[common], help="a debugging next hop that prints what it receives")
    sink_cmd.add_argument("--host", help="default: the host of [delivery] smarthost")
    sink_cmd.add_argument("--port", type=int, help="default: the port of [delivery] smarthost")

    db = commands.add_parser("db", parents=[common], help="database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", parents=[common], help="bring the database schema to the newest revision")

    conversation = commands.add_parser("conversation", parents=[common], help="open or show a conversation")
    conversation_actions = conversation.add_subparsers(dest="action", required=True)
    opening = conversation_actions.add_parser("open", parents=[common], help="open a conversation (idempotent)")
    opening.add_argument("--buyer", required=True, metavar="EMAIL")
    opening.add_argument("--buyer-name", metavar="NAME")
    opening.add_argument("--buyer-locale", metavar="LANG", help="en, es, it or id (default en)")
    opening.add_argument("--seller", required=True, metavar="EMAIL")
    opening.add_argument("--seller-name", metavar="NAME")
    opening.add_argument("--seller-locale", metavar="LANG")
    opening.add_argument("--order", metavar="ID")
    opening.add_argument("--category", metavar="NAME")
    showing = conversation_actions.add_parser("show", parents=[common], help="a conversation and its message log, as JSON")
    showing.add_argument("id")

    seller = commands.add_parser("seller", parents=[common], help="seller settings").add_subparsers(dest="action", required=True)
    adding = seller.add_parser("add-address", parents=[common], help="let a seller send from one more address")
    adding.add_argument("--seller", required=True, metavar="EMAIL")
    adding.add_argument("--address", required=True, metavar="EMAIL")

    optout = commands.add_parser("optout", parents=[common], help="a buyer's opt-out from unsolicited messages")
    optout_actions = optout.add_subparsers(dest="action", required=True)
    for action in ("add", "remove"):
        optout_actions.add_parser(action, parents=[common]).add_argument("email")
    return parser


async def _with_store(config: Config, work):
    url = config.database_url()
    engine = database.create_engine(url)
    try:
        if work is None:
            await database.upgrade(engine)
            return None
        await database.prepare(engine, url)
        return await work(Store(engine, config.aliases.domain))
    except database.DatabaseError as exc:
        raise Failure(str(exc)) from None
    except (InvalidAddress, StoreError) as exc:
        raise Failure(str(exc)) from None
    finally:
        await engine.dispose()


def _print_json(value, indent: int | None = None) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=indent))


async def _serve(config: Config) -> None:
    from .server import Relay

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


def _run(args: argparse.Namespace, config: Config) -> None:
    if args.command == "serve":
        asyncio.run(_serve(config))
    elif args.command == "sink":
        hop = config.delivery
        asyncio.run(sink.run(args.host or hop.host, args.port or hop.port))
    elif args.command == "db":
        asyncio.run(_with_store(config, None))
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = config_module.load(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    logs.configure(getattr(args, "log_format", None) or config.log.format, config.log.level)
    try:
        _run(args, config)
    except Failure as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
