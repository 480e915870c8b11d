"""Phone numbers: a way off the marketplace, in any format a person writes one.

libphonenumber (the `phonenumbers` port) knows which digit strings are real
numbers, international or national, in the regions of the relay's languages;
it already leaves alone digits glued to letters (tracking numbers such as
1Z999AA10123456784, JNE receipts), dates, times and prices. Two more things
are decided here: digits written as words ("tre quattro sette ...") are read
as digits first, and a number right after an order, invoice or tracking word
is that document's number, not a phone.
"""
from __future__ import annotations

import re
from typing import Iterator

from phonenumbers import Leniency, PhoneNumberMatcher

# The regions whose national formats a seller writing in en/es/it/id would use.
REGIONS = ("IT", "ES", "ID", "GB", "US")
MIN_DIGITS = 9  # shorter runs are order lines, postal codes, model numbers

_DIGIT_WORDS = {
    # en
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9,
    # es
    "cero": 0, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8,
    "nueve": 9,
    # it
    "due": 2, "tre": 3, "quattro": 4, "cinque": 5, "sei": 6, "sette": 7, "otto": 8, "nove": 9,
    # id
    "nol": 0, "kosong": 0, "satu": 1, "dua": 2, "tiga": 3, "empat": 4, "lima": 5, "enam": 6, "tujuh": 7,
    "delapan": 8, "sembilan": 9,
}
# Seven or more digit words (or digits) in a row: no sentence counts like that.
_WORD = "(?:" + "|".join(sorted(_DIGIT_WORDS, key=len, reverse=True)) + r"|\d)"
_WORD_RUN = re.compile(rf"(?i)(?<!\w)(?:plus\s+|\+\s*)?{_WORD}(?:[\s,.\-/]+{_WORD}){{6,}}(?!\w)")

# "Order 2026-000123", "fattura n. 0245 123 456": a document's number, in the four languages.
_DOCUMENT_WORDS = re.compile(
    r"(?i)(?:order|invoice|tracking|ref(?:erence)?|receipt|awb|parcel|shipment|pedido|factura|albar[aá]n|"
    r"seguimiento|env[ií]o|ordine|fattura|spedizione|tracciamento|pacco|riferimento|pesanan|faktur|resi|"
    r"kode|sku|iban|cod(?:ice)?|n[º°o]\.?|#)[ \t:.#nº°o]*$"
)


def _as_digits(match: re.Match) -> str:
    words = re.findall(_WORD, match.group(0), re.IGNORECASE)
    prefix = "+" if match.group(0).lstrip().lower().startswith(("plus", "+")) else ""
    return prefix + "".join(str(_DIGIT_WORDS.get(w.lower(), w)) for w in words)


def spelled_out(text: str) -> str:
    """The text with runs of digit words written as digits."""
    return _WORD_RUN.sub(_as_digits, text)


# Where a number could be: a run of digits and separators holding MIN_DIGITS digits or more. Only these
# stretches go to libphonenumber, which is slow on long texts (seconds per megabyte).
_CANDIDATE = re.compile(r"[+(]?\d[\d \t().\-/]{6,40}\d")


def numbers_in(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each phone number in text (digit words already read as digits), in order."""
    for candidate in _CANDIDATE.finditer(text):
        start = candidate.start()
        if sum(c.isdigit() for c in candidate.group(0)) < MIN_DIGITS or (start and text[start - 1].isalpha()):
            continue  # too short, or glued to letters (1Z999AA10123456784, JNE1234567890123)
        offset = max(0, start - 30)
        for begin, end in sorted(set(_matched(text[offset:candidate.end() + 1]))):
            yield offset + begin, offset + end


def _matched(text: str):
    for region, leniency in ((None, Leniency.POSSIBLE), *((r, Leniency.VALID) for r in REGIONS)):
        # Written with its country code, a number of a possible length is one, whether or not
        # its range is in use yet; in a national format it must be a valid number of the region.
        for match in PhoneNumberMatcher(text, region, leniency=leniency):
            if region is None and not match.raw_string.lstrip("( ").startswith(("+", "00")):
                continue
            digits = sum(c.isdigit() for c in match.raw_string)
            if digits < MIN_DIGITS or _DOCUMENT_WORDS.search(text[max(0, match.start - 30):match.start]):
                continue
            yield match.start, match.end
