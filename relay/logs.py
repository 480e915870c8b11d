"""Log lines for operators: one JSON object per line, or a readable line with --log-format text.

Each message decision is one line on the `relay.decision` logger carrying its
fields as structured extras. Real addresses appear only when the operator set
`log.real_addresses`; otherwise an address is shown as a short keyed hash (HMAC),
so lines about the same sender can still be matched up while someone who knows an
address cannot find it in the log without the key.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import logging.handlers
import os
import re
import secrets
import sys
from functools import lru_cache
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

DECISIONS = logging.getLogger("relay.decision")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class TextFormatter(logging.Formatter):
    """`time level event key=value ...`, for a person tailing the log."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and v is not None}
        return line + "".join(f" {key}={_quoted(value)}" for key, value in extras.items())


def _quoted(value) -> str:
    text = str(value)
    return repr(text) if (not text or any(c.isspace() for c in text)) else text


def formatter(format: str) -> logging.Formatter:
    if format == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "message": "event"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    return TextFormatter()


class LogFileError(Exception):
    """[log] file cannot be opened for appending."""


class _LogFile(logging.handlers.WatchedFileHandler):
    """JSON lines appended to [log] file; reopened when logrotate moves it away.

    Created 0600, as the database and the pseudonym key are: its lines name aliases and pseudonyms.
    """

    def _open(self):
        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors,
                    opener=lambda path, flags: os.open(path, flags, 0o600))


def configure(format: str, level: str = "INFO", stream=None, file: str | Path | None = None) -> None:
    """Log to stream (stderr) in format; with file, also append JSON lines there, for `relay logs`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(format))
    handlers: list[logging.Handler] = [handler]
    if file:
        try:
            written = _LogFile(file, encoding="utf-8")
        except OSError as exc:
            raise LogFileError(f"[log] file {file}: {exc.strerror or exc}") from None
        written.setFormatter(formatter("json"))
        handlers.append(written)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, _LogFile):  # configured again (tests do): the file it had stays open no longer
            old.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    # aiosmtpd logs every command at INFO, addresses included; the relay's own lines say what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start and stop say nothing the relay's don't


class AddressLabels:
    """How an address is written in the log: as is, or as a stable keyed pseudonym."""

    def __init__(self, real_addresses: bool, key: bytes):
        self.real = real_addresses
        self.key = key

    @classmethod
    def of(cls, config) -> AddressLabels:
        return cls(config.log.real_addresses, b"" if config.log.real_addresses else pseudonym_key(config))

    def __call__(self, address: str | None) -> str | None:
        if address is None or self.real:
            return address
        digest = hmac.new(self.key, address.lower().encode("utf-8", "surrogatepass"), hashlib.sha256)
        return "addr-" + digest.hexdigest()[:12]

    def within(self, text: str | None) -> str | None:
        """Free text for a log line (a rule's reason naming a file) with each address in it pseudonymised."""
        if text is None or self.real:
            return text
        return _ADDRESS.sub(lambda match: self(match.group(0)), text)


_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"'@]+@[^\s<>()\[\],;:\"'@]+\.[^\s<>()\[\],;:\"'@]+")


class PseudonymKeyError(Exception):
    """The key file for log pseudonyms cannot be read or written."""


def pseudonym_key(config) -> bytes:
    """[log] pseudonym_key, else the key file, generated (mode 0600) on first start."""
    if config.log.pseudonym_key:
        return config.log.pseudonym_key.encode()
    path = key_file(config)
    return _key_in(str(path)) if path is not None else _PROCESS_KEY


_PROCESS_KEY = secrets.token_bytes(32)  # a configuration built in code, with no folder to keep a key in


def key_file(config) -> Path | None:
    """Relative to the config file's folder; without a config file, next to the SQLite database."""
    name = Path(config.log.pseudonym_key_file)
    if name.is_absolute() or config.source is not None:
        return config.relative(str(name))
    url = config.database_url()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).parent / name
    return None


@lru_cache(maxsize=8)
def _key_in(path: str) -> bytes:
    target = Path(path)
    try:
        if not target.exists():
            # Written whole under another name and linked into place: two processes
            # starting at once both end up reading the one key that won.
            staging = target.with_name(f".{target.name}.{os.getpid()}")
            descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            try:
                os.link(staging, target)
            except FileExistsError:
                pass
            finally:
                staging.unlink()
        key = target.read_text().strip()
    except OSError as exc:
        raise PseudonymKeyError(f"log pseudonym key {target}: {exc.strerror or exc}") from None
    if len(key) < 32:
        raise PseudonymKeyError(f"log pseudonym key {target}: too short, want at least 32 characters")
    return key.encode()
