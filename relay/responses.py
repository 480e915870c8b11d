"""How fast each seller answers buyers: the figures a marketplace holds sellers to.

The clock, per conversation, in the order messages arrived:
- a buyer's forwarded message starts a wait, unless one is running already
  (three messages in a row are one contact, answered by one reply);
- the seller's next forwarded message (their own or a standard message) ends
  it; the time between is the response time. Weekends count: it is wall time;
- a message the seller marked "no response needed", or one that came while
  the seller was on vacation (it got the automatic reply), starts no wait. A
  wait already running when the vacation began goes on: the seller should
  have answered before leaving.
A contact counts in the window by when it started. Its share "within 24
hours" is of the contacts that are answered or have waited 24 hours already:
one that came an hour ago and is still open is neither on time nor late yet.
A seller's reply counts when they wrote it, even if a hold keeps it back (the
hold is the marketplace's doing, not a slow answer).
The 90th percentile is the nearest rank: the smallest time that at least 90 %
of the answered contacts took no longer than.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from aliases.views import BUYER_TO_SELLER, SELLER_TO_BUYER, STANDARD, WRITTEN

DAY = timedelta(hours=24)
ANSWERS = (WRITTEN, STANDARD)


@dataclass
class SellerFigures:
    seller: str
    display_name: str | None
    contacts: int = 0
    answered: int = 0
    open: int = 0
    within_24h: int = 0
    late: int = 0
    median_hours: float | None = None
    p90_hours: float | None = None
    share_within_24h: float | None = None
    no_response_needed: int = 0
    during_vacation: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def report(rows, since: datetime, now: datetime) -> list[SellerFigures]:
    """rows: (seller_id, seller address, name, conversation, id, direction, kind, verdict, received_at,
    no_response_needed, during_vacation), ordered by conversation and arrival (MessageCenter.response_rows)."""
    figures: dict[int, SellerFigures] = {}
    times: dict[int, list[float]] = {}
    waiting: dict[str, datetime | None] = {}
    owner: dict[str, int] = {}
    for (seller_id, address, name, conversation, _id, direction, kind, verdict, at, no_response,
         vacation) in rows:
        at = at if at.tzinfo else at.replace(tzinfo=since.tzinfo)
        seller = figures.setdefault(seller_id, SellerFigures(address, name))
        owner[conversation] = seller_id
        if verdict != "forwarded":
            continue
        started = waiting.get(conversation)
        if direction == BUYER_TO_SELLER and kind == WRITTEN:
            if no_response:
                seller.no_response_needed += at >= since
            elif vacation:
                seller.during_vacation += at >= since
            elif started is None:
                waiting[conversation] = at
                if at >= since:
                    seller.contacts += 1
        elif direction == SELLER_TO_BUYER and kind in ANSWERS and started is not None:
            waiting[conversation] = None
            if started >= since:
                elapsed = at - started
                seller.answered += 1
                times.setdefault(seller_id, []).append(elapsed.total_seconds() / 3600)
                if elapsed <= DAY:
                    seller.within_24h += 1
                else:
                    seller.late += 1
    for conversation, started in waiting.items():
        if started is not None and started >= since:
            seller = figures[owner[conversation]]
            seller.open += 1
            if now - started > DAY:
                seller.late += 1
    for seller_id, seller in figures.items():
        answered = times.get(seller_id, [])
        if answered:
            seller.median_hours = round(statistics.median(answered), 2)
            seller.p90_hours = round(_nearest_rank(answered, 0.9), 2)
        judged = seller.within_24h + seller.late
        if judged:
            seller.share_within_24h = round(seller.within_24h / judged, 4)
    return sorted((f for f in figures.values() if f.contacts or f.no_response_needed or f.during_vacation),
                  key=lambda f: f.seller)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """30s, 15m, 12h, 7d, 2w: what --since and ?since= take (99999 units at most: now minus it is a date)."""
    match = re.fullmatch(r"(\d{1,5})([smhdw])", text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not an age: want a number and s, m, h, d or w, like 30s, 15m, 1h, 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
