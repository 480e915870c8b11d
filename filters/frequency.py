"""Over-messaging: a seller may start only so many new messages a day in one conversation."""
from __future__ import annotations

from .settings import FrequencyRule
from .verdict import PASSED, Verdict, bounce
from .view import Facts


def check(facts: Facts, settings: FrequencyRule) -> Verdict:
    if facts.replies_to_buyer or facts.unsolicited_last_day < settings.max_unsolicited_per_day:
        return PASSED
    return bounce("too_many_messages",
                  f"at most {settings.max_unsolicited_per_day} unsolicited messages per conversation per 24 hours",
                  f"{facts.unsolicited_last_day} already sent")
