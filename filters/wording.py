"""Promotion and review manipulation: phrase lists per language (filters/phrases/*.toml)."""
from __future__ import annotations

from .content import Finding, Readable
from .phrases import PhraseBook

REASONS = {
    "promotion": "promotional content (coupons, other products, invitations to a shop or social media)",
    "review": "a request for a positive review or rating, or something offered in exchange for one",
}


class WordingDetector:
    def __init__(self, kind: str, extra_phrases: list[str]):
        self.kind = kind
        self.book = PhraseBook(kind, extra_phrases)

    def check(self, content: Readable, quotes: bool = True) -> Finding | None:
        """quotes=False reads only what the sender wrote now: in a reply to the buyer,
        the buyer's own quoted "I'll leave a 5-star review" is not the seller asking."""
        found = self.book.find(content.text if quotes else content.own_text)
        return Finding(found, REASONS[self.kind]) if found else None
