"""The `relay` command: what the marketplace backend, operators and tests drive the relay with.

Exit status: 0 done, 1 the request could not be carried out (named on stderr),
2 bad configuration or usage.
"""
from __future__ import annotations

import argparse
import sys

from . import config as config_module
from . import logs
from .config import ConfigError


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
    exporting = conversation_actions.add_parser("export", parents=[common],
                                                help="the thread as an mbox file, on standard output")
    exporting.add_argument("id")

    seller = commands.add_parser("seller", parents=[common], help="seller settings").add_subparsers(dest="action", required=True)
    adding = seller.add_parser("add-address", parents=[common], help="let a seller send from one more address")
    adding.add_argument("--seller", required=True, metavar="EMAIL")
    adding.add_argument("--address", required=True, metavar="EMAIL")
    reinstating = seller.add_parser("reinstate", parents=[common],
                                    help="lift a hold: the seller's held messages are delivered")
    reinstating.add_argument("seller", metavar="EMAIL")

    api = commands.add_parser("api", parents=[common], help="the HTTP API").add_subparsers(dest="action", required=True)
    token = api.add_parser("token", parents=[common], help="bearer tokens").add_subparsers(dest="token_action",
                                                                                           required=True)
    token.add_parser("create", parents=[common], help="make a token and print it, once").add_argument("name")
    token.add_parser("revoke", parents=[common], help="the token stops working at once").add_argument("name")

    report = commands.add_parser("report", parents=[common], help="reports").add_subparsers(dest="action",
                                                                                           required=True)
    times = report.add_parser("response-times", parents=[common], help="how fast each seller answers buyers")
    times.add_argument("--since", default="30d", metavar="AGE", help="e.g. 7d, 12h (default 30d)")
    times.add_argument("--format", choices=["table", "json"], default=None,
                       help="default: a table on a terminal, else JSON")

    commands.add_parser("purge", parents=[common], help="remove bodies older than [retention] days now")

    from .logview import add_parser as add_logs_parser
    add_logs_parser(commands, common)

    parties = commands.add_parser("parties", parents=[common], help="buyers and sellers in bulk").add_subparsers(
        dest="action", required=True)
    importing = parties.add_parser("import", parents=[common], help="add or update parties from a CSV file")
    importing.add_argument("file", metavar="FILE.csv")

    queue = commands.add_parser("queue", parents=[common], help="what waits to be delivered")
    queue_actions = queue.add_subparsers(dest="action", required=True)
    listing = queue_actions.add_parser("list", parents=[common], help="what waits, for whom, since when, why")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    queue_actions.add_parser("show", parents=[common], help="one queued message").add_argument("id", type=int)
    retrying = queue_actions.add_parser("retry", parents=[common], help="deliver now, not at the next retry")
    which = retrying.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?")
    which.add_argument("--all", action="store_true")
    queue_actions.add_parser("drop", parents=[common],
                             help="give up on a message; its sender gets a notice").add_argument("id", type=int)

    dkim = commands.add_parser("dkim", parents=[common], help="DKIM keys").add_subparsers(dest="action", required=True)
    keygen = dkim.add_parser("keygen", parents=[common], help="write a 2048-bit key and print its DNS record")
    keygen.add_argument("--selector", default=None, help="default: [dkim] selector")
    keygen.add_argument("--out", metavar="PATH", help="default: [dkim] key_file, else dkim-SELECTOR.key")

    tls = commands.add_parser("tls", parents=[common], help="STARTTLS certificates").add_subparsers(
        dest="action", required=True)
    selfsigned = tls.add_parser("selfsigned", parents=[common], help="write a self-signed pair for development")
    selfsigned.add_argument("--cert", metavar="PATH", help="default: [server] tls_cert, else tls-cert.pem")
    selfsigned.add_argument("--key", metavar="PATH", help="default: [server] tls_key, else tls-key.pem")
    selfsigned.add_argument("--hostname", help="default: [server] hostname")

    optout = commands.add_parser("optout", parents=[common], help="a buyer's opt-out from unsolicited messages")
    optout_actions = optout.add_subparsers(dest="action", required=True)
    for action in ("add", "remove"):
        optout_actions.add_parser(action, parents=[common]).add_argument("email")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = config_module.load(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    # Only the relay itself appends to [log] file: `relay logs` reading it must not write to it.
    log_file = config.relative(config.log.file) if config.log.file and args.command == "serve" else None
    try:
        logs.configure(getattr(args, "log_format", None) or config.log.format, config.log.level, file=log_file)
    except logs.LogFileError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    from .failures import BadSetup, Failure

    try:
        if args.command == "logs":  # reading a log needs none of the store: start at once
            from .logview import run as show_logs
            show_logs(args, config)
        else:
            # Imported here, not at the top: rewrite workers are spawned processes that
            # re-import this module, and need none of the database or SMTP stack.
            from . import commands
            commands.run(args, config)
    except Failure as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    except (BadSetup, logs.PseudonymKeyError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
