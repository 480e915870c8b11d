"""Log lines for operators: one JSON object per line, or a readable line with --log-format text.

Each message decision is one line on the `relay.decision` logger carrying its
fields as structured extras. Real addresses appear only when the operator set
`log.real_addresses`; otherwise an address is shown as a short keyed hash, so
lines about the same sender can still be matched up.
"""
from __future__ import annotations

import hashlib
import logging
import sys

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


def configure(format: str, level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosmtpd logs every command at INFO, addresses included; the relay's own lines say what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class AddressLabels:
    """How an address is written in the log: as is, or as a stable pseudonym."""

    def __init__(self, real_addresses: bool):
        self.real = real_addresses

    def __call__(self, address: str | None) -> str | None:
        if address is None or self.real:
            return address
        return "addr-" + hashlib.sha256(address.lower().encode("utf-8", "surrogatepass")).hexdigest()[:12]
