"""How much one client may ask of the relay: connections, guesses at RCPT, messages an hour.

Everything here is counted in this node's memory, in windows that forget:
a flood is met where it arrives. Refusals past a limit are logged in summary
(one line a minute per kind of refusal), never one line each: 20,000 refused
connections once wrote 48.8 MB of log in two minutes.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict, deque

from .config import LimitsConfig
from .logs import AddressLabels

log = logging.getLogger(__name__)
LIMITS = logging.getLogger("relay.limits")
_SUMMARY_EVERY = 60.0


class Summary:
    """Counts refusals and says how many, per kind and client, at most once a minute."""

    def __init__(self, labels: AddressLabels):
        self.labels = labels
        self.counts: Counter[tuple[str, str]] = Counter()
        self.since = time.monotonic()

    def count(self, kind: str, client: str) -> None:
        self.counts[(kind, client)] += 1
        if time.monotonic() - self.since >= _SUMMARY_EVERY:
            self.flush()

    def flush(self) -> None:
        for (kind, client), count in self.counts.most_common(20):
            LIMITS.warning("refused", extra={"limit": kind, "client": self.labels(client), "count": count,
                                             "seconds": round(time.monotonic() - self.since)})
        self.counts.clear()
        self.since = time.monotonic()


class Connections:
    """Concurrent connections, overall and per client address."""

    def __init__(self, config: LimitsConfig, summary: Summary):
        self.config = config
        self.summary = summary
        self.open: Counter[str] = Counter()
        self.total = 0

    def admit(self, client: str) -> str | None:
        """None if the client may connect, else the kind of limit it is over."""
        if self.total >= self.config.max_connections:
            kind = "connections"
        elif self.open[client] >= self.config.max_connections_per_client:
            kind = "connections_per_client"
        else:
            self.open[client] += 1
            self.total += 1
            return None
        self.summary.count(kind, client)
        return kind

    def release(self, client: str) -> None:
        self.open[client] -= 1
        self.total -= 1
        if self.open[client] <= 0:
            del self.open[client]


class Strikes:
    """Refused recipients per client address and per alias: past a few in a window, every answer there
    is the same for a while, so RCPT cannot be used to find out who an alias's counterpart is."""

    def __init__(self, config: LimitsConfig, summary: Summary):
        self.config = config
        self.summary = summary
        self.failures: dict[str, deque[float]] = defaultdict(deque)
        self.blocked: dict[str, float] = {}

    def _key_blocked(self, key: str, now: float) -> bool:
        until = self.blocked.get(key)
        if until is None:
            return False
        if now >= until:
            del self.blocked[key]
            return False
        return True

    def blocked_for(self, client: str, alias: str | None) -> bool:
        now = time.monotonic()
        return self._key_blocked(f"client:{client}", now) or (alias is not None and self._key_blocked(
            f"alias:{alias}", now))

    def strike(self, client: str, alias: str | None) -> None:
        now = time.monotonic()
        for key in [f"client:{client}"] + ([f"alias:{alias}"] if alias else []):
            times = self.failures[key]
            times.append(now)
            while times and now - times[0] > self.config.refused_recipients_window:
                times.popleft()
            if len(times) >= self.config.max_refused_recipients and key not in self.blocked:
                self.blocked[key] = now + self.config.refused_recipients_block
                LIMITS.warning("blocking guesses", extra={
                    "key": key.split(":")[0], "seconds": self.config.refused_recipients_block,
                    "client": self.summary.labels(client)})
                times.clear()
        if len(self.failures) > 100_000:  # a flood of distinct keys: forget the oldest half
            for key in list(self.failures)[:50_000]:
                del self.failures[key]


class Rates:
    """Messages accepted in the last hour, per sending party and per conversation."""

    def __init__(self, config: LimitsConfig):
        self.config = config
        self.seen: dict[str, deque[float]] = defaultdict(deque)

    def _count(self, key: str, now: float) -> int:
        times = self.seen[key]
        while times and now - times[0] > 3600:
            times.popleft()
        return len(times)

    def over(self, party: str, conversation: str) -> str | None:
        """Which hourly limit taking one more message would pass, or None (and then it is counted)."""
        now = time.monotonic()
        if self._count(f"party:{party}", now) >= self.config.messages_per_hour_per_party:
            return "messages from you"
        if self._count(f"conversation:{conversation}", now) >= self.config.messages_per_hour_per_conversation:
            return "messages in this conversation"
        self.seen[f"party:{party}"].append(now)
        self.seen[f"conversation:{conversation}"].append(now)
        return None
