"""Delivery: take due messages from the queue and hand them to their next hops.

A loop claims what is due (new messages wake it at once; otherwise it looks
every `poll_seconds`) and delivers up to `[delivery] concurrency` at a time.
Each attempt ends one of three ways:

- the next hop took it: out of the queue, the message log says delivered;
- a 4xx, no connection, a DNS timeout: tried again after a backoff that
  doubles from `retry_base` up to `retry_cap`, with jitter; a forward older
  than `warn_after` earns its sender one delay warning;
- a 5xx, a domain that does not exist, or `give_up_after` passed: out of the
  queue, the message log says failed, and the sender of a forward gets a
  notice. Nothing is ever said about a notice: that could loop.

Every attempt is one JSON line on the `relay.delivery` logger.
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import secrets
from dataclasses import replace
from datetime import datetime, timedelta

from aliases.models import utcnow
from aliases.queue import FORWARD, NOTICE, Claimed, Copy, Queue

from .config import Config
from .logs import AddressLabels
from .metrics import Metrics
from .nexthop import NextHopAnswer, NextHops
from .notices import NoticeContext, Notifier
from .scrub import AddressScrubber
from .signing import Signer

log = logging.getLogger(__name__)
ATTEMPTS = logging.getLogger("relay.delivery")
_ENHANCED = re.compile(r"\A\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")
WARNING = "warning"


BOUNCE_PREFIX = "bounce+"


def bounce_address(token: str, domain: str) -> str:
    return f"{BOUNCE_PREFIX}{token}@{domain}"


def new_token() -> str:
    return secrets.token_hex(12)


def status_of(reply: str, permanent: bool) -> str:
    """The enhanced status code in a next hop's reply, or the general one for its class."""
    found = _ENHANCED.match(reply)
    return found.group(1) if found else ("5.0.0" if permanent else "4.0.0")


class Delivery:
    def __init__(self, config: Config, queue: Queue, hops: NextHops, notifier: Notifier, signer: Signer | None,
                 metrics: Metrics | None = None):
        self.metrics = metrics or Metrics()
        self.config = config
        self.queue = queue
        self.hops = hops
        self.notifier = notifier
        self.signer = signer
        self.labels = AddressLabels.of(config)
        self._wake = asyncio.Event()
        self._busy: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._stopping = False

    @property
    def busy(self) -> int:
        """Deliveries under way."""
        return len(self._busy)

    def poke(self) -> None:
        """Something was queued: look now."""
        self._wake.set()

    async def start(self) -> None:
        released = await self.queue.release_own()
        if released:
            log.info("took back claims from before a restart", extra={"messages": released})
        self._runner = asyncio.create_task(self._run(), name="delivery")

    async def stop(self, grace: float) -> None:
        """Stop claiming; let deliveries under way finish within grace; the rest stays queued."""
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            await self._runner
        if self._busy:
            _, late = await asyncio.wait(self._busy, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.hops.close()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            room = self.config.delivery.concurrency - len(self._busy)
            claimed = []
            if room > 0:
                try:
                    claimed = await self.queue.claim(room)
                except Exception:
                    log.exception("could not claim queued messages")
            for item in claimed:
                task = asyncio.create_task(self._attempt(item))
                self._busy.add(task)
                task.add_done_callback(self._finished)
            try:  # until something is queued, an attempt ends (room for more), or it is time to look
                await asyncio.wait_for(self._wake.wait(), self.config.delivery.poll_seconds)
            except TimeoutError:
                pass

    def _finished(self, task: asyncio.Task) -> None:
        self._busy.discard(task)
        self._wake.set()  # room for one more

    async def _attempt(self, item: Claimed) -> None:
        try:
            body = await self.queue.body(item)
            head = body[:body.find(b"\r\n\r\n") + 2]
            smtputf8 = not (item.recipient.isascii() and item.envelope_from.isascii() and head.isascii())
            answer = await self.hops.send(envelope_from=item.envelope_from, recipients=[item.recipient],
                                          message=body, smtputf8=smtputf8)
            await self._settle(item, answer)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The store or a bug: the claim runs out and the message is tried again.
            log.exception("delivery attempt failed", extra={"queue_id": item.id})

    async def _settle(self, item: Claimed, answer: NextHopAnswer) -> None:
        # A refusal often quotes the mailbox ("550 5.1.1 <ann@...>: User unknown"): in the log
        # and the store it is the recipient's label, as everywhere in the log.
        if not self.config.log.real_addresses:
            answer = replace(answer, text=AddressScrubber({item.recipient.lower(): self.labels(item.recipient)})
                             .scrub_text(answer.text))
        age = (utcnow() - item.created_at).total_seconds()
        if answer.accepted:
            await self.queue.delivered(item, answer.text)
            outcome = "delivered"
        elif answer.permanent or age >= self.config.delivery.give_up_after:
            reason = answer.text if answer.permanent else f"gave up after {age / 3600:.0f} hours: {answer.text}"
            await self.queue.failed(item, reason, await self._failure_notice(item, answer))
            outcome = "failed"
        else:
            due = self._next_attempt(item.attempts + 1)
            await self.queue.deferred(item, answer.text, due, await self._delay_warning(item, age))
            outcome = "deferred"
        self.metrics.attempted(outcome, item.kind, age)
        ATTEMPTS.info(outcome, extra={
            "queue_id": item.id, "message_log_id": item.message_id, "conversation": item.conversation_id,
            "kind": item.kind,
            "recipient": self.labels(item.recipient), "attempt": item.attempts + 1, "next_hop": answer.host or None,
            "answer": self.labels.within(answer.text), "age_seconds": round(age, 1),
        })

    def _next_attempt(self, attempts: int) -> datetime:
        settings = self.config.delivery
        delay = min(settings.retry_cap, settings.retry_base * 2 ** (attempts - 1))
        return utcnow() + timedelta(seconds=delay * random.uniform(0.8, 1.2))

    async def _failure_notice(self, item: Claimed, answer: NextHopAnswer) -> Copy | None:
        if item.kind != FORWARD:
            return None  # never a notice about a notice
        status = status_of(answer.text, answer.permanent)
        return await self._notice(item, "delivery_failed", f"the recipient's mail server: status {status}",
                                  f"status {status}")

    async def _delay_warning(self, item: Claimed, age: float) -> Copy | None:
        warn_after = self.config.delivery.warn_after
        if item.kind != FORWARD or item.warned or not warn_after or age < warn_after:
            return None
        return await self._notice(item, "delivery_delayed", "not delivered yet", None, delayed=True)

    async def _notice(self, item: Claimed, rule: str, reason: str, snippet: str | None,
                      delayed: bool = False) -> Copy | None:
        context = await self.queue.notice_context(item.message_id)
        if context is None:
            return None
        about = NoticeContext.from_json(context)
        message = self.notifier.compose(about, rule, reason, snippet, delayed=delayed)
        if message is None:
            return None
        return self.notice_copy(about.sender_address, message, WARNING if delayed else NOTICE)

    def notice_copy(self, recipient: str, message: bytes, kind: str = NOTICE) -> Copy:
        """A notice ready for the queue: signed, from its own bounce address (reports about it are dropped)."""
        token = new_token()
        if self.signer is not None:
            message = self.signer.sign(message)
        return Copy(kind, bounce_address(token, self.config.aliases.domain), recipient, message, token)
