"""A filter's answer: pass, strip these attachments, or bounce the message, always with a reason."""
from __future__ import annotations

from dataclasses import dataclass

PASS, STRIP, BOUNCE = "pass", "strip", "bounce"


@dataclass(frozen=True)
class Verdict:
    action: str
    rule: str | None = None
    reason: str | None = None
    snippet: str | None = None
    """The offending text, short, as the sender wrote it, for the notice."""
    attachments: tuple[str, ...] = ()
    """For STRIP: the ids of the attachments to remove."""


PASSED = Verdict(PASS)


def bounce(rule: str, reason: str, snippet: str | None = None) -> Verdict:
    return Verdict(BOUNCE, rule, reason, (snippet or "")[:200] or None)


def strip(rule: str, reason: str, attachment_id: str, snippet: str | None = None) -> Verdict:
    return Verdict(STRIP, rule, reason, (snippet or "")[:200] or None, (attachment_id,))


@dataclass(frozen=True)
class Judgement:
    """Every verdict the pipeline reached, in order: the trail an operator reads."""

    trail: tuple[tuple[str, Verdict], ...]

    @property
    def bounce(self) -> Verdict | None:
        return next((v for _, v in self.trail if v.action == BOUNCE), None)

    @property
    def strips(self) -> list[Verdict]:
        return [v for _, v in self.trail if v.action == STRIP]

    @property
    def stripped_ids(self) -> frozenset[str]:
        return frozenset(i for v in self.strips for i in v.attachments)
