"""The CPU-bound part of handling a message, run in a worker process off the SMTP event loop."""
from __future__ import annotations

from dataclasses import dataclass

from .leaks import leaked_addresses
from .rewrite import Plan, rewrite


@dataclass(frozen=True)
class Outgoing:
    message: bytes
    leaks: list[str]
    """Real addresses still readable in `message`; the message must not leave if any."""


def prepare(raw: bytes, plan: Plan) -> Outgoing:
    message = rewrite(raw, plan)
    return Outgoing(message, leaked_addresses(message, plan.scrubber))


def warm_up() -> bool:
    return True
