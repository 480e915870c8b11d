"""The filter pipeline: enabled rules in order, each looking and answering with verdicts.

Strips accumulate, the first bounce decides. Content rules read the message
body (a hit bounces the message) and each text attachment (a hit strips that
attachment). The trail of every verdict goes to the log and the message log.
"""
from __future__ import annotations

from . import attachments, contact, frequency, optout
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
            return self.links.check(content)
        if rule == "contact":
            return contact.check(content, facts)
        return self.wording[rule].check(content, quotes=not facts.buyer_thread)

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
        texts = {a.id: (a, readable([a.text])) for a in view.attachments
                 if reading_rules and a.id not in stripped and a.text is not None}
        for rule in reading_rules:
            finding = self._find(rule, body, facts)
            if finding and done(rule, bounce(rule, finding.reason, finding.snippet)):
                return Judgement(tuple(trail))
            for attachment, reading in texts.values():
                if attachment.id in stripped:
                    continue
                finding = self._find(rule, reading, facts)
                if finding:
                    done(rule, strip(rule, f"{attachment.filename} contains {finding.reason}", attachment.id, finding.snippet))
                    stripped.add(attachment.id)
        if self._applies("frequency", facts):
            done("frequency", frequency.check(facts, self.config.frequency))
        return Judgement(tuple(trail))
