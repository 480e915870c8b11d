"""Opt-out: a buyer who wants no unsolicited messages gets only what is critical to an order.

A seller's message still reaches them when it answers the buyer (a thread the
buyer is part of), when its subject carries a critical marker such as
[Important], or when the order's category is exempt. The marker is for
delivery scheduling, customisation and shipping-address problems: a marked
message that promotes or asks for a review is not critical.
"""
from __future__ import annotations

from .content import Readable
from .settings import OptOutRule
from .verdict import PASSED, Verdict, bounce
from .view import Facts, MessageView
from .wording import WordingDetector


def _marked(subject: str, markers: list[str]) -> str | None:
    folded = subject.casefold()
    return next((m for m in markers if m.casefold() in folded), None)


def check(view: MessageView, facts: Facts, content: Readable, settings: OptOutRule,
          wording: list[WordingDetector]) -> Verdict:
    if not facts.buyer_opted_out or facts.buyer_thread:
        return PASSED
    if facts.category and facts.category.lower() in {c.lower() for c in settings.exempt_categories}:
        return PASSED
    marker = _marked(view.subject, settings.critical_markers)
    if marker is None:
        return bounce("opt_out", "the buyer has opted out of unsolicited messages", view.subject)
    for detector in wording:
        finding = detector.check(content)
        if finding:
            return bounce("not_critical", f"{marker} is for critical order matters only; the message contains "
                          f"{finding.reason}", finding.snippet)
    return PASSED
