"""The filter pipeline: enabled rules in order, each looking and answering with verdicts.

Strips accumulate, the first bounce decides. Content rules read the message
body (a hit bounces the message), each text attachment, and what images and
documents say (filters/inside.py): a hit strips that attachment, or for an
image under [filters.images] when_found = "bounce" bounces the message. In an
image or a document even the parties' own addresses count as contact: the
rewrite can replace them in text, not in a picture or a PDF. The trail of
every verdict goes to the log and the message log.
"""
from __future__ import annotations

import time
from dataclasses import replace

from . import attachments, contact, frequency, inside, optout
from .content import Readable, readable
from .links import LinkDetector
from .settings import FiltersConfig
from .verdict import BOUNCE, PASS, Judgement, Verdict, bounce, strip
from .view import Facts, MessageView
from .wording import WordingDetector

# Contact before links: a disguised address (name [at] gmail [dot] com) holds a
# domain name too, and the sender should hear it was an address.
CONTENT_RULES = ("contact", "links", "promotion", "review")


class Pipeline:
    def __init__(self, config: FiltersConfig):
        self.config = config
        self.links = LinkDetector(config.links)
        self.wording = {
            "promotion": WordingDetector("promotion", config.promotion.extra_phrases),
            "review": WordingDetector("review", config.review.extra_phrases),
        }

    def _applies(self, rule: str, facts: Facts) -> bool:
        settings = getattr(self.config, rule)
        return settings.enabled and facts.direction in settings.directions

    def _find(self, rule: str, content: Readable, facts: Facts):
        if rule == "links":
            return self.links.check(content, facts.buyer_links)
        if rule == "contact":
            return contact.check(content, facts)
        return self.wording[rule].check(content, quotes=not facts.buyer_thread)

    def links_written(self, view: MessageView) -> frozenset[str]:
        """Fingerprints of the links a message holds in its text (kept for the other party's replies)."""
        return self.links.written(readable([view.subject, *view.texts], view.htmls))

    def _read_inside(self, view: MessageView, stripped: set[str]):
        """(attachment, what it says) for each image and document still in the message."""
        deadline = time.monotonic() + self.config.images.seconds_per_message
        for attachment in view.attachments:
            if attachment.id not in stripped and attachment.text is None:
                said = inside.read(attachment.data, self.config, deadline - time.monotonic())
                if said is not None:
                    yield attachment, said

    def _unreadable_removed(self, kind: str) -> bool:
        settings = self.config.images if kind == inside.IMAGE else self.config.documents
        return settings.when_unreadable == "strip"

    def judge(self, view: MessageView, facts: Facts) -> Judgement:
        trail: list[tuple[str, Verdict]] = []

        def done(rule: str, verdict: Verdict) -> bool:
            if verdict.action != PASS:
                trail.append((rule, verdict))
            return verdict.action == BOUNCE

        if self._applies("attachments", facts):
            for verdict in attachments.check(view.attachments, self.config.attachments, view.wrapped):
                if done("attachments", verdict):
                    return Judgement(tuple(trail))
        reading_rules = [rule for rule in CONTENT_RULES if self._applies(rule, facts)]
        if not reading_rules and not self._applies("optout", facts):
            if self._applies("frequency", facts):
                done("frequency", frequency.check(facts, self.config.frequency))
            return Judgement(tuple(trail))  # nothing reads the text: it is not prepared
        body = readable([view.subject, *view.texts], view.htmls)
        if self._applies("optout", facts):
            marked_wording = [self.wording[k] for k in ("promotion", "review") if self._applies(k, facts)]
            if done("optout", optout.check(view, facts, body, self.config.optout, marked_wording)):
                return Judgement(tuple(trail))
        stripped = {i for _, v in trail for i in v.attachments}
        texts = {a.id: (a, readable([a.text]), None) for a in view.attachments
                 if reading_rules and a.id not in stripped and a.text is not None}
        if reading_rules:
            for attachment, said in self._read_inside(view, stripped):
                if said.readable or said.text:
                    texts[attachment.id] = (attachment, Readable(said.text, links=list(said.links)), said.kind)
                if not said.readable and self._unreadable_removed(said.kind):
                    done("unreadable_attachment", strip("unreadable_attachment",
                                                        f"{attachment.filename} could not be read: {said.why}",
                                                        attachment.id))
                    stripped.add(attachment.id)
        fixed = replace(facts, party_addresses=frozenset())  # nothing in a picture or a PDF is rewritten
        for rule in reading_rules:
            finding = self._find(rule, body, facts)
            if finding and done(rule, bounce(rule, finding.reason, finding.snippet)):
                return Judgement(tuple(trail))
            for attachment, reading, kind in texts.values():
                if attachment.id in stripped:
                    continue
                finding = self._find(rule, reading, fixed if kind else facts)
                if not finding:
                    continue
                why = f"{attachment.filename} contains {finding.reason}"
                if kind == inside.IMAGE and self.config.images.when_found == "bounce":
                    if done(rule, bounce(rule, why, finding.snippet)):
                        return Judgement(tuple(trail))
                done(rule, strip(rule, why, attachment.id, finding.snippet))
                stripped.add(attachment.id)
        if self._applies("frequency", facts):
            done("frequency", frequency.check(facts, self.config.frequency))
        return Judgement(tuple(trail))
