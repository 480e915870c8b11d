"""Promotion and review manipulation: phrase lists per language (filters/phrases/*.toml), and the class
behind them.

Phrases catch the usual wordings. The class is caught by what a sentence holds,
however it is phrased: a rating or review and something of value together is a
rating bought ("if you leave us five stars we'll send a gift", "per una
recensione positiva uno sconto"); an amount off and a discount word together,
with no refund in sight, is promotion ("20% off everything this week"), while a
partial refund for this order is not.
"""
from __future__ import annotations

import re
from bisect import bisect_right

from .content import Finding, Readable
from .phrases import PhraseBook, book, fold

REASONS = {
    "promotion": "promotional content (coupons, other products, invitations to a shop or social media)",
    "review": "a request for a positive review or rating, or something offered in exchange for one",
}
_SENTENCE = re.compile(r"[^.!?;\n]+")
_AMOUNT = re.compile(r"\d+ ?(?:%|percent|por ?ciento|per ?cento|persen)|(?:[$£€]|rp|usd|eur) ?\d|\d ?(?:[$£€]|eur|euro)")


def _tied(text: str, kind: str) -> str | None:
    """The first passage that ties a rating to something of value (review), or an amount to a
    discount (promotion). A passage is a sentence and the one before it: "We saw your one-star
    review. If you change it, we refund 10 €." is one offer. Only the sentences around a rating
    word (or an amount) are looked at: one pass over a long text finds them."""
    has = {name: book(name).pattern.search for name in
           ("rating_words", "value_words", "discount_words", "refund_words", "condition_words")}
    folded = fold(text)
    anchors = book("rating_words").pattern if kind == "review" else _AMOUNT
    sentences = None
    for hit in anchors.finditer(folded):
        if sentences is None:
            sentences = [(m.start(), m.end()) for m in _SENTENCE.finditer(folded)]
            starts = [begin for begin, _ in sentences]
        index = max(0, bisect_right(starts, hit.start()) - 1)
        for at in (index, index + 1):  # the rating's sentence, and the next one (its condition may follow)
            if at >= len(sentences):
                break
            sentence = folded[sentences[at][0]:sentences[at][1]]
            previous = folded[sentences[at - 1][0]:sentences[at - 1][1]] if at else ""
            passage = f"{previous} {sentence}"
            if kind == "review":
                if not (has["rating_words"](passage) and (has["value_words"](passage) or has["refund_words"](passage))):
                    continue
                # A refund for this order, explained, is no offer; a refund on a condition is.
                if has["condition_words"](sentence) or not has["refund_words"](passage):
                    return sentence.strip()
            elif (at == index and has["discount_words"](sentence) and not has["refund_words"](sentence)
                  and not has["rating_words"](sentence)):
                return sentence.strip()  # a discount for a rating is the review rule's
    return None


class WordingDetector:
    def __init__(self, kind: str, extra_phrases: list[str]):
        self.kind = kind
        self.book = PhraseBook(kind, extra_phrases)

    def check(self, content: Readable, quotes: bool = True) -> Finding | None:
        """quotes=False reads only what the sender wrote now: in a reply to the buyer,
        the buyer's own quoted "I'll leave a 5-star review" is not the seller asking."""
        text = content.text if quotes else content.own_text
        if self.kind == "promotion" and _tied(text, "review"):
            return None  # "a review and 10% off": a rating bought, which the review rule names
        found = self.book.find(text) or _tied(text, self.kind)
        return Finding(found[:200], REASONS[self.kind]) if found else None
