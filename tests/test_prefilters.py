"""Literal checks that let a long text skip a pattern must never change what the pattern finds."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from filters import domains
from relay.scrub import AddressScrubber

PIECES = ["shop", " dot ", " . ", ".", "com", "[.]", "(dot)", "{ . }", "www", " punto ", "titik", "TİTİK", "tıtık",
          "WWW", "DoT", "-dot-", "net", " ", "\n", "\t", "ſ", "K", "é", "es", "it", "ann", "@", "[at]", "ANN",
          "example", "ex\u00e1mple", "&#64;", "%40", "\u00a0",
          # whole findings, so that a literal check that wrongly skips a pattern is caught at once
          "myshop tıtık com", "myshop TİTİK com", "www punto myshop", "myshop [.] com", "myshop dot com",
          "myshop . com", "Ann@Example.com", "ann&#64;example.com", "\uff41nn@example.com", "ANN%40EXAMPLE.COM"]
texts = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)


def every_pattern(text: str) -> str:
    """reveal() as it was before its literal checks: all three patterns, always."""
    text = domains._BRACKET_DOT.sub(".", text)
    text = domains._WWW_WORD_DOT.sub(r"\1.", text)
    return domains._WORD_DOT.sub(domains._dot_after_a_word, text)


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_revealing_dots_finds_what_every_pattern_finds(text):
    assert domains.reveal(text) == every_pattern(text)


SCRUBBER = AddressScrubber({"ann@example.com": "k3v9q2x7mzp4t8wd@relay.test"})


@settings(max_examples=3000, deadline=None)
@given(texts, st.booleans())
def test_reading_addresses_finds_what_the_reading_pattern_finds(text, html):
    from filters.reading import comparable
    from relay.scrub import _READ_AT_FORMS, rendered

    folded = comparable(rendered(text) if html else text)
    expected = sorted({_READ_AT_FORMS.sub("@", m.group(0)) for m in SCRUBBER._reading.finditer(folded)})
    assert SCRUBBER.readable(text, html) == expected
