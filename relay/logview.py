"""`relay logs`: the relay's JSON log as readable lines, filtered, and followed as it grows.

It reads `[log] file` (or --file, or standard input: `journalctl -o cat -u relay | relay logs`).
A line that is not a JSON object (a text-format log, a torn line) is shown as it is when
nothing is filtered and skipped when something is: a filter can only judge fields.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

POLL_SECONDS = 0.2
"""How often --follow looks for appended lines, as `tail -F` does, with no inotify to depend on."""

# After the conversation and direction, these come first, in this order; every other field follows.
_LEADING = ("stage", "rule", "reason", "reply", "answer")
_HIDDEN = {"time", "level", "logger", "event", "exc_info", "stack_info"}
_OWN_LOGGERS = {"relay.decision", "relay.delivery"}  # the event says which; another logger is named


def age(text: str) -> timedelta:
    from .responses import parse_age

    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(commands, common) -> None:
    logs = commands.add_parser("logs", parents=[common], help="the relay's log as readable lines")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing lines as they are appended")
    logs.add_argument("--conversation", metavar="ID", help="only this conversation's lines")
    logs.add_argument("--verdict", metavar="V", help="only decisions with this verdict: forwarded, bounced, refused, ...")
    logs.add_argument("--since", metavar="AGE", type=age, help="only lines newer than this: 30s, 15m, 1h, 7d")
    logs.add_argument("--file", metavar="PATH", help="default: [log] file, else standard input")


def run(args, config) -> None:
    from .failures import Failure

    path = Path(args.file) if args.file else config.relative(config.log.file) if config.log.file else None
    if path is None and sys.stdin.isatty():
        raise Failure("no log to read: give --file PATH, set [log] file, or pipe it in "
                      "(journalctl -o cat -u relay | relay logs)")
    cutoff = datetime.now(timezone.utc) - args.since if args.since else None
    wanted = Filter(args.conversation, args.verdict, cutoff)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    try:
        source = open(path, "rb") if path is not None else sys.stdin.buffer
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        for raw in _lines(source, path, args.follow):
            shown = wanted.shown(raw.decode("utf-8", "replace").rstrip("\r\n"), colour)
            if shown is not None:
                sys.stdout.write(shown + "\n")
                if args.follow:  # each line as it comes, through a pipe too (| grep)
                    sys.stdout.flush()
    except BrokenPipeError:  # `relay logs | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class Filter:
    """Which entries are shown, and how each one reads."""

    def __init__(self, conversation: str | None, verdict: str | None, cutoff: datetime | None):
        self.conversation, self.verdict, self.cutoff = conversation, verdict, cutoff
        self.active = conversation is not None or verdict is not None or cutoff is not None

    def shown(self, line: str, colour: bool) -> str | None:
        if not line.strip():
            return None
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            return None if self.active else _printable(line, keep="\t")
        if self.conversation is not None and entry.get("conversation") != self.conversation:
            return None
        if self.verdict is not None and verdict(entry) != self.verdict:
            return None
        if self.cutoff is not None:
            stamp = _time(entry.get("time"))
            if stamp is None or stamp < self.cutoff:
                return None
        return readable(entry, colour)


def verdict(entry: dict) -> str | None:
    """A decision's verdict; a refusal at RCPT, before there is a message, says it only as its event."""
    if entry.get("verdict") is not None:
        return entry["verdict"]
    return entry.get("event") if entry.get("logger") == "relay.decision" else None


def _time(value) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.astimezone()  # no offset written: the reader's local time


# -- one entry as a line ------------------------------------------------------------------------

_RESET = "\x1b[0m"
_DIM, _BOLD, _RED, _GREEN, _YELLOW, _MAGENTA, _CYAN = "2", "1", "31", "32", "33", "35", "36"
_LEVEL_COLOURS = {"DEBUG": _DIM, "WARNING": _YELLOW, "ERROR": f"{_BOLD};{_RED}", "CRITICAL": f"{_BOLD};{_RED}"}
_EVENT_COLOURS = {"forwarded": _GREEN, "delivered": _GREEN, "deferred": _YELLOW, "duplicate": _YELLOW,
                  "bounced": _MAGENTA, "refused": _MAGENTA, "failed": _RED}


def readable(entry: dict, colour: bool = False) -> str:
    """`2026-12-04 17:52:21 INFO    forwarded  conv=ID buyer_to_seller rule=- reply="250 ..." size=512 ...`"""
    def paint(text: str, style: str | None) -> str:
        return f"\x1b[{style}m{text}{_RESET}" if colour and style else text

    def field(key: str, value) -> str:
        return paint(f"{key}=", _DIM) + _value(value)

    when = str(entry.get("time", "-"))
    stamp = _time(when)
    level = str(entry.get("level", "-"))
    event = str(entry.get("event", ""))
    parts = [paint(stamp.strftime("%Y-%m-%d %H:%M:%S") if stamp else _printable(when), _DIM),
             paint(f"{_printable(level):<7}", _LEVEL_COLOURS.get(level)),
             paint(f"{_printable(event):<10}", _EVENT_COLOURS.get(event, _BOLD))]
    extras = {key: value for key, value in entry.items() if key not in _HIDDEN and value is not None}
    if extras.get("verdict") == event:
        del extras["verdict"]  # a decision's event is its verdict
    if "conversation" in extras:
        parts.append(paint("conv=", _DIM) + paint(_value(extras.pop("conversation")), _CYAN))
    if "direction" in extras:
        parts.append(_value(extras.pop("direction")))
    if entry.get("logger") == "relay.decision" and "stage" not in extras:
        extras.setdefault("rule", "-")  # a decision about a message always says which rule, if any
    for key in _LEADING:
        if key in extras:
            parts.append(field(key, extras.pop(key)))
    parts.extend(field(key, value) for key, value in extras.items())
    logger = entry.get("logger")
    if logger and logger not in _OWN_LOGGERS:
        parts.append(field("logger", logger))
    line = " ".join(parts)
    for key in ("exc_info", "stack_info"):  # a traceback reads as one, indented under its entry
        if entry.get(key):
            line += "".join("\n    " + paint(_printable(text), _RED) for text in str(entry[key]).splitlines())
    return line


def _value(value) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        text = ",".join(value)  # a verdict trail: attachments:pass,links:bounce
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    if text and not text.startswith('"') and all(c.isprintable() and not c.isspace() for c in text):
        return text
    return '"' + _printable(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _printable(text: str, keep: str = "") -> str:
    """Control characters written as escapes: a log line must not be able to drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _escape(c) for c in text)


def _escape(c: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c)
    return named or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


# -- reading, and following -------------------------------------------------------------------------

def _lines(source, path: Path | None, follow: bool):
    """Whole lines from source; with follow, new ones as they are appended, across rotation and truncation."""
    pending = b""
    try:
        while True:
            chunk = source.readline()
            if chunk:
                pending += chunk
                if pending.endswith(b"\n"):
                    yield pending
                    pending = b""
                continue
            if not follow or path is None:  # standard input follows by itself: it ends when its writer does
                if pending:
                    yield pending
                return
            sys.stdout.flush()
            time.sleep(POLL_SECONDS)
            source, restarted = _reopened(source, path)
            if restarted:
                pending = b""
    finally:
        if path is not None:
            source.close()


def _reopened(source, path: Path):
    """The handle to read on: the same one, rewound if the file was truncated, or the file now at path."""
    try:
        now = os.stat(path)
    except OSError:  # moved away, not yet replaced: keep reading the old one
        return source, False
    current = os.fstat(source.fileno())
    if (now.st_ino, now.st_dev) != (current.st_ino, current.st_dev):
        if source.tell() < current.st_size:
            return source, False  # lines written before the rotation come first
        try:
            fresh = open(path, "rb")
        except OSError:
            return source, False
        source.close()
        return fresh, True
    if now.st_size < source.tell():  # truncated (copytruncate): start again from its beginning
        source.seek(0)
        return source, True
    return source, False
