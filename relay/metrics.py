"""What an operator graphs: the relay's counters in the Prometheus text format (prometheus-client).

One registry per relay, not the library's global one: a process running two
relays (the tests do) keeps their figures apart. Queue depth and age are read
from the store when /metrics is scraped, so every node reports the shared
queue as it is, not as it last saw it.
"""
from __future__ import annotations

from pathlib import PurePosixPath

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from aliases.queue import FORWARD

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.accepted = Counter("relay_messages_accepted", "Messages answered 2xx after DATA, per recipient",
                                registry=registry)
        self.refused = Counter("relay_messages_refused", "Recipients or messages refused, by SMTP reply class",
                               ["reply_class", "stage"], registry=registry)
        self.bounced = Counter("relay_messages_bounced", "Messages accepted and not forwarded, by rule",
                               ["rule"], registry=registry)
        self.removed = Counter("relay_attachments_removed", "Attachments removed from forwards, by file type",
                               ["type"], registry=registry)
        self.notices = Counter("relay_notices_sent", "Notices and automatic replies handed to a next hop",
                               ["kind"], registry=registry)
        self.attempts = Counter("relay_delivery_attempts", "Delivery attempts, by outcome", ["outcome"],
                                registry=registry)
        self.accept_seconds = Histogram("relay_accept_seconds", "From the end of DATA to the reply",
                                        buckets=LATENCY_BUCKETS, registry=registry)
        self.delivery_seconds = Histogram("relay_delivery_seconds", "From acceptance to delivery",
                                          buckets=DELIVERY_BUCKETS, registry=registry)
        self.sessions = Gauge("relay_smtp_sessions_open", "SMTP sessions open now", registry=registry)
        self.queue_depth = Gauge("relay_queue_depth", "Messages waiting to be delivered (all nodes)",
                                 registry=registry)
        self.queue_oldest = Gauge("relay_queue_oldest_seconds", "Age of the oldest waiting message, 0 if none",
                                  registry=registry)

    def replied(self, reply: str, stage: str) -> None:
        """One recipient's answer: 2xx counts as accepted (after DATA), 4xx and 5xx as refused."""
        code = reply[:1]
        if code == "2":
            if stage == "data":
                self.accepted.inc()
        elif code in "45" and code:
            self.refused.labels(f"{code}xx", stage).inc()

    def decided(self, verdict: str, rule: str | None, removed, seconds: float) -> None:
        self.accept_seconds.observe(seconds)
        if verdict == "bounced":
            self.bounced.labels(rule or "unknown").inc()
        for name, _rule in removed:
            self.removed.labels(_file_type(name)).inc()

    def attempted(self, outcome: str, kind: str, age: float) -> None:
        self.attempts.labels(outcome).inc()
        if outcome == "delivered":
            if kind == FORWARD:
                self.delivery_seconds.observe(age)
            else:
                self.notices.labels(kind).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _file_type(name: str) -> str:
    """The extension, lower case, as the attachment rule reads it; "none" for a name without one."""
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower().lstrip(".")
    return suffix if suffix.isalnum() and len(suffix) <= 10 else "none"
