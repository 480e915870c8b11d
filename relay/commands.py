"""What each `relay` command does. relay/cli.py parses the command line and calls `run`."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from aliases import database
from aliases.addresses import InvalidAddress
from aliases.queue import FORWARD, Queue
from aliases.store import Store
from aliases.views import StoreError

from . import sink
from .config import Config
from .failures import BadSetup, Failure

# The relay's message path (workers, delivery, DKIM) is imported by the commands that run it:
# `relay conversation open`, which the marketplace backend calls per order, starts without it.


async def _with_store(config: Config, work):
    """Run work(store) on a database brought to head (SQLite) or found at head (others)."""
    return await _with_database(config, lambda db: Store(db, config.aliases.domain), work)


async def _with_database(config: Config, make, work):
    """Run work(make(database)) on a database brought to head (SQLite) or found at head (others)."""
    url = config.database_url()
    db = database.Database(url)
    try:
        await database.prepare(db.engine, url)
        return await work(make(db))
    except (database.DatabaseError, InvalidAddress, StoreError) as exc:
        raise Failure(str(exc)) from None
    except SQLAlchemyError as exc:  # locked past the busy timeout, connection lost mid-command
        raise Failure(str(database.explained(url, exc))) from None
    finally:
        await db.dispose()


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
    from .logs import PseudonymKeyError
    from .processes import ProcessFailure, supervise, this_process
    from .server import Relay
    from .signing import SigningKeyError
    from .tls import TlsError

    process = this_process()
    if process is None and config.server.processes > 1:
        try:
            return await supervise(config)
        except database.DatabaseError as exc:
            raise Failure(str(exc)) from None
        except ProcessFailure as exc:
            raise Failure(str(exc)) from None
    from .standard import TemplateError

    try:
        relay = Relay(config, process)
    except (SigningKeyError, TlsError, PseudonymKeyError, TemplateError) as exc:
        raise BadSetup(str(exc)) from None
    from .api.serving import ListenFailure

    try:
        await relay.start()
    except database.DatabaseError as exc:
        await relay.database.dispose()
        raise Failure(str(exc)) from None
    except ListenFailure as exc:  # SMTP, the workers and delivery started already
        await relay.stop()
        raise Failure(str(exc)) from None
    except OSError as exc:
        await relay.database.dispose()
        raise Failure(f"cannot listen on {config.server.host}:{config.server.port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, relay.reload)
    await stop.wait()
    await relay.stop()


async def _with_queue(config: Config, work):
    url = config.database_url()
    db = database.Database(url)
    try:
        await database.prepare(db.engine, url)
        return await work(Queue(db, "operator", config.delivery.lease_seconds))
    except database.DatabaseError as exc:
        raise Failure(str(exc)) from None
    except SQLAlchemyError as exc:
        raise Failure(str(database.explained(url, exc))) from None
    finally:
        await db.dispose()


def _waiting_as_dict(item) -> dict:
    from .api.app import waiting_as_dict

    return waiting_as_dict(item)


def _queue(args: argparse.Namespace, config: Config) -> None:
    async def listing(queue: Queue):
        return await queue.waiting(None if args.action == "list" else args.id)

    async def retry(queue: Queue):
        return await queue.retry(None if args.all else args.id)

    async def drop(queue: Queue):
        from .delivery import Delivery
        from .nexthop import NextHops
        from .notices import NoticeContext, Notifier
        from .resolver import Resolver
        from .server import load_signer

        item = await queue.drop(args.id)
        if item is None:
            raise Failure(f"no queued message {args.id}")
        notice = None
        context = await queue.notice_context(item.message_id)
        if item.kind == FORWARD and context:
            delivery = Delivery(config, queue, NextHops(config.delivery, config.server.hostname, Resolver(config.dns)),
                                Notifier(config), load_signer(config))
            about = NoticeContext.from_json(context)
            message = delivery.notifier.compose(about, "delivery_failed", "given up by the relay's operator", None)
            notice = message and delivery.notice_copy(about.sender_address, message)
        await queue.failed(item, "dropped by an operator", notice)
        return notice is not None

    if args.action in ("list", "show"):
        found = [_waiting_as_dict(item) for item in asyncio.run(_with_queue(config, listing))]
        if args.action == "show":
            if not found:
                raise Failure(f"no queued message {args.id}")
            _print_json(found[0], indent=2)
        elif getattr(args, "json", False):
            for item in found:
                _print_json(item)
        else:
            print(f"{'id':>6}  {'kind':<8} {'since':<20} {'attempts':>8}  {'recipient':<32} last answer")
            for item in found:
                print(f"{item['id']:>6}  {item['kind']:<8} {item['since'][:19]:<20} {item['attempts']:>8}  "
                      f"{item['recipient'][:32]:<32} {(item['last_answer'] or '-')[:60]}")
    elif args.action == "retry":
        count = asyncio.run(_with_queue(config, retry))
        if not count and not args.all:
            raise Failure(f"no queued message {args.id}")
        print(f"{count} message(s) due now")
    elif args.action == "drop":
        told = asyncio.run(_with_queue(config, drop))
        print(f"dropped {args.id}" + ("; its sender gets a notice" if told else ""))


def _keygen(args: argparse.Namespace, config: Config) -> None:
    from .signing import new_key, txt_record

    selector = args.selector or config.dkim.selector
    path = Path(args.out) if args.out else config.relative(config.dkim.key_file or f"dkim-{selector}.key")
    if path.exists():
        raise Failure(f"{path} exists; remove it or name another with --out")
    pem, public = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as key:
        key.write(pem)
    print(f"# wrote {path} (mode 0600); in relay.toml: [dkim] key_file = \"{path}\", selector = \"{selector}\"")
    print(txt_record(config.aliases.domain, selector, public))


def _selfsigned(args: argparse.Namespace, config: Config) -> None:
    from .tls import write_pair

    cert = Path(args.cert) if args.cert else config.relative(config.server.tls_cert or "tls-cert.pem")
    key = Path(args.key) if args.key else config.relative(config.server.tls_key or "tls-key.pem")
    hostname = args.hostname or config.server.hostname
    try:
        write_pair(cert, key, hostname)
    except FileExistsError as exc:
        raise Failure(f"{exc} exists; remove it or name another with --cert/--key") from None
    print(f"# wrote {cert} and {key} (the key mode 0600), self-signed for {hostname}, for development only;")
    print(f"# in relay.toml: [server] tls_cert = \"{cert}\", tls_key = \"{key}\"")


async def _with_center(config: Config, work):
    from aliases.center import MessageCenter

    return await _with_database(config, lambda db: MessageCenter(db, config.aliases.domain), work)


def _message_center(args: argparse.Namespace, config: Config) -> None:
    """Commands on the message center: tokens, export, the purge, reinstatement, the report."""
    import sys
    from datetime import datetime, timedelta, timezone

    from .progress import bar, progress

    if args.command == "api":
        async def token(center):
            if args.token_action == "create":
                return await center.create_token(args.name)
            if not await center.revoke_token(args.name):
                raise Failure(f"no token named {args.name}")
        made = asyncio.run(_with_center(config, token))
        if made:
            print(made)
            print(f"# the API token {args.name!r}; it is shown only now, and the relay keeps only its hash",
                  file=sys.stderr)
        else:
            print(f"revoked {args.name}")
    elif args.command == "conversation":  # export
        from .export import write_mbox

        async def bodies(center):
            return await center.bodies(args.id)
        thread = asyncio.run(_with_center(config, bodies))
        count = write_mbox(thread, sys.stdout.buffer, config.retention.days, progress)
        sys.stdout.buffer.flush()
        print(f"# {count} messages of conversation {args.id}", file=sys.stderr)
    elif args.command == "purge":
        before = datetime.now(timezone.utc) - timedelta(days=config.retention.days)

        async def purge(center):
            total, done = await center.old_bodies(before), 0
            with bar(total, "purging") as advance:
                async for count in center.purge(before):
                    done += count
                    advance(count)
            return done
        print(f"purged {asyncio.run(_with_center(config, purge))} bodies older than {config.retention.days:g} days; "
              f"the message log keeps their rows")
    elif args.command == "seller":  # reinstate
        async def reinstate(center):
            return await center.reinstate(args.seller)
        print(f"reinstated {args.seller}: {asyncio.run(_with_center(config, reinstate))} held message(s) released")
    elif args.command == "report":
        from .api.app import response_report
        from .reports_view import show_response_times
        from .responses import parse_age

        try:
            age = parse_age(args.since)
        except ValueError as exc:
            raise Failure(f"--since: {exc}") from None

        async def figures(center):
            return await response_report(center, age)
        show_response_times(asyncio.run(_with_center(config, figures)), args.format)


def run(args: argparse.Namespace, config: Config) -> None:
    if args.command in ("api", "purge", "report") or (args.command == "seller" and args.action == "reinstate") \
            or (args.command == "conversation" and args.action == "export"):
        return _message_center(args, config)
    if args.command == "tls":
        _selfsigned(args, config)
    elif args.command == "queue":
        _queue(args, config)
    elif args.command == "dkim":
        _keygen(args, config)
    elif args.command == "serve":
        asyncio.run(_serve(config))
    elif args.command == "logs":
        from .logview import run as show_logs
        show_logs(args, config)
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
    elif args.command == "parties":
        from aliases import importing

        from .progress import progress
        try:  # the whole file is checked before the database is opened: a bad row imports nothing
            rows = importing.check(args.file, progress)
        except importing.BadFile as exc:
            raise Failure(str(exc)) from None

        async def import_(store: Store):
            return await importing.upsert(store, rows, progress)
        print(asyncio.run(_with_store(config, import_)))
