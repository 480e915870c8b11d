"""The CPU-bound part of handling a message, run in a worker process off the SMTP event loop:
read it (view), judge it (filters), rewrite it, and look for leaks."""
from __future__ import annotations

from dataclasses import dataclass, replace

from bounces.texts import removal_note
from filters.pipeline import Pipeline
from filters.settings import FiltersConfig
from filters.verdict import Judgement
from filters.view import Facts

from . import mime, view
from .leaks import leaked_addresses
from .rewrite import Plan, rewrite
from .signing import Signer

_pipelines: dict[str, Pipeline] = {}
_signer: Signer | None = None


def _pipeline(config: FiltersConfig) -> Pipeline:
    """One pipeline per configuration and process: phrase lists and the suffix list load once."""
    key = config.model_dump_json()
    if key not in _pipelines:
        _pipelines[key] = Pipeline(config)
    return _pipelines[key]


@dataclass(frozen=True)
class Outgoing:
    judgement: Judgement
    subject: str
    auto_submitted: bool
    message: bytes | None = None
    """The rewritten message; None when the judgement is a bounce."""
    leaks: tuple[str, ...] = ()
    """Real addresses still readable in `message`; the message must not leave if any."""
    removed: tuple[tuple[str, str], ...] = ()
    """(filename, rule) of the attachments the filters stripped."""
    links_written: frozenset[str] = frozenset()
    """Fingerprints of the links in a buyer's message: the seller may quote them back."""
    first_line: str = ""
    """The first line of text, where a buyer writes FLAG ([filters.sanctions] flag_word)."""


def prepare(raw: bytes, plan: Plan, filters: FiltersConfig, facts: Facts, recipient_locale: str) -> Outgoing:
    root = mime.tree(mime.parse_entity(raw))  # split once: the view and the rewrite share it
    seen = view.build(root)
    pipeline = _pipeline(filters)
    judgement = pipeline.judge(seen, facts)
    written = pipeline.links_written(seen) if facts.direction == "buyer_to_seller" else frozenset()
    first = next((line.strip() for text in seen.texts[:1] for line in text.splitlines() if line.strip()), "")
    outcome = Outgoing(judgement, seen.subject, seen.auto_submitted, links_written=written, first_line=first[:200])
    if judgement.bounce:
        return outcome
    names = {a.id: a.filename for a in seen.attachments}
    removed = tuple((names[i], v.rule) for v in judgement.strips for i in v.attachments)
    if removed:
        plan = replace(plan, stripped=judgement.stripped_ids, note=removal_note(recipient_locale, list(removed)))
    message = rewrite(root, plan)
    leaks = tuple(leaked_addresses(message, plan.scrubber))
    if not leaks and _signer is not None:
        message = _signer.sign(message)  # signing is CPU work too: here, off the event loop
    return replace(outcome, message=message, leaks=leaks, removed=removed)


def warm_up(filters: FiltersConfig, dkim: tuple[str, str, bytes] | None = None) -> None:
    """Load phrase lists, the suffix list and the signing key before the first message needs them."""
    global _signer
    _pipeline(filters)
    _signer = Signer(*dkim) if dkim else None
