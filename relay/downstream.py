"""Acting on a report from downstream (relay/reports.py reads it): mark the message, tell its sender once.

A report is accepted only from <> and only for a bounce address the relay
issued (relay/gate.py); one about a notice, an auto-reply, or one that says
nothing the relay can use is logged and dropped. A failure is told to the
sender once, whatever number of reports say so.
"""
from __future__ import annotations

import logging

from aliases.queue import FAILED, FORWARD, Queue

from . import replies
from .config import Config
from .delivery import Delivery
from .notices import NoticeContext
from .reports import DELAYED, read_report
from .workers import WorkerPool, WorkLimit

log = logging.getLogger(__name__)
REPORTS = logging.getLogger("relay.report")


class Downstream:
    def __init__(self, config: Config, queue: Queue, workers: WorkerPool, delivery: Delivery):
        self.config = config
        self.queue = queue
        self.workers = workers
        self.delivery = delivery

    async def handle(self, message_id: int, kind: str, raw: bytes) -> str:
        if kind != FORWARD:
            REPORTS.info("dropped", extra={"message_log_id": message_id, "why": f"a report about a {kind}"})
            return replies.REPORT_RECEIVED()
        try:
            reading = await self.workers.run(self.config.limits.cpu_seconds(len(raw)), read_report, raw)
        except WorkLimit as exc:
            return replies.TOO_COSTLY(resource=exc.resource)
        except Exception:
            log.exception("a report could not be read", extra={"message_log_id": message_id})
            return replies.REPORT_RECEIVED()
        if reading.kind not in (FAILED, DELAYED):
            REPORTS.info("dropped", extra={"message_log_id": message_id, "why": reading.kind})
            return replies.REPORT_RECEIVED()
        status = reading.status or ("5.0.0" if reading.kind == FAILED else "4.0.0")
        state = "failed" if reading.kind == FAILED else "delayed"
        changed = await self.queue.mark(message_id, state, f"report from downstream: {state}, status {status}")
        notice = None
        if changed:
            notice = await self._notice(message_id, reading.kind, status)
            if notice is not None:
                await self.queue.add(message_id, notice)
                self.delivery.poke()
        REPORTS.info(state, extra={"message_log_id": message_id, "status": status, "notice": notice is not None,
                                   "again": not changed})
        return replies.REPORT_RECEIVED()

    async def _notice(self, message_id: int, kind: str, status: str):
        context = await self.queue.notice_context(message_id)
        if context is None:
            return None
        about = NoticeContext.from_json(context)
        delayed = kind == DELAYED
        rule = "delivery_delayed" if delayed else "delivery_failed"
        message = self.delivery.notifier.compose(about, rule, f"the recipient's mail server: status {status}",
                                                 f"status {status}", delayed=delayed)
        return message and self.delivery.notice_copy(about.sender_address, message)
