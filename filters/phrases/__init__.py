"""Phrase lists for the promotion and review rules, one TOML file per language.

A translator adds a language by adding a file; operators extend the lists in
relay.toml. Text is matched with case and accents folded, so "Reseña" and
"resena" are the same.
"""
from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path

from ..reading import unaccented

HERE = Path(__file__).parent
KINDS = ("promotion", "review", "offplatform", "rating_words", "value_words", "discount_words", "refund_words",
         "condition_words")


def fold(text: str) -> str:
    """Lower case, accents removed, whitespace collapsed: the form phrases are matched in."""
    return " ".join(unaccented(text).split())


@lru_cache(maxsize=None)
def shipped() -> dict[str, dict[str, tuple[str, ...]]]:
    """{language: {kind: patterns}} from the files beside this module."""
    books = {}
    for path in sorted(HERE.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        books[path.stem] = {kind: tuple(data.get(kind, ())) for kind in KINDS}
    return books


@lru_cache(maxsize=None)
def book(kind: str) -> PhraseBook:
    """The shipped phrases of one kind, compiled once per process."""
    return PhraseBook(kind)


class PhraseBook:
    def __init__(self, kind: str, extra: list[str] = ()):
        patterns = [p for book in shipped().values() for p in book[kind]] + list(extra)
        self.kind = kind
        # Patterns are written in folded form (lower case, no accents), as the files say.
        # The word-edge checks stand once around the alternation: around each
        # branch they make the search about fifteen times slower.
        self.pattern = re.compile("(?<!\\w)(?:" + "|".join(f"(?:{p})" for p in patterns) + ")(?!\\w)")

    def find(self, text: str) -> str | None:
        """The first matching phrase as it appears in the folded text, or None."""
        match = self.pattern.search(fold(text))
        return match.group(0) if match else None
