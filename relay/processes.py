"""`relay serve` on every core: [server] processes relays sharing one port and one store.

One Python process runs its event loop on one core, whatever number of
workers read messages beside it. With processes = N, `relay serve` starts N
whole relays (sessions, decisions, group commit, delivery) that each listen on
the same port with SO_REUSEPORT, so the kernel spreads connections among them,
as among the nodes of a cluster: each has its own name in the queue's claims
(NODE/1, NODE/2, ...), and the leases that keep two nodes from delivering one
message keep two processes apart too. This process only watches over them: it
brings the store to its schema once, passes SIGTERM, SIGINT and SIGHUP on, and
starts again a relay that died; one that fails as it starts stops them all.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys

from aliases import database

from .config import Config

log = logging.getLogger(__name__)
ENVIRONMENT = "RELAY_PROCESS"
"""Set for the relays this process starts: "INDEX/COUNT"."""
_FAILED_AT_START = 10.0
"""A relay that exits 1 or 2 within this many seconds of starting could not start: again would not help.
One killed, or ending later, is started again."""
_PR_SET_PDEATHSIG = 1


class ProcessFailure(Exception):
    """A relay process could not start."""


def this_process() -> tuple[int, int] | None:
    """(index, count) in a relay started by supervise(); None in a lone `relay serve`."""
    value = os.environ.get(ENVIRONMENT, "")
    index, _, count = value.partition("/")
    return (int(index), int(count)) if index.isdigit() and count.isdigit() else None


def _die_with_parent() -> None:
    """In the child, before it runs: SIGTERM when the supervisor dies (kill -9 included), so no relay
    is left listening on the port with nobody watching it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the relays outlive a killed supervisor
        pass


async def _start(index: int, count: int) -> asyncio.subprocess.Process:
    environment = {**os.environ, ENVIRONMENT: f"{index}/{count}"}
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "relay.cli", *sys.argv[1:],
                                                env=environment, preexec_fn=_die_with_parent)


async def supervise(config: Config) -> None:
    """Run config.server.processes relays until SIGTERM or SIGINT; raises ProcessFailure if one cannot start."""
    url = config.database_url()
    store = database.Database(url)
    try:
        await database.prepare(store.engine, url)  # once, not raced by N processes
    finally:
        await store.dispose()
    count = config.server.processes
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    running: dict[int, asyncio.subprocess.Process] = {}

    def tell(sig: signal.Signals) -> None:
        for process in running.values():
            if process.returncode is None:
                process.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: (stopping.set(), tell(signal.SIGTERM)))
    loop.add_signal_handler(signal.SIGHUP, lambda: tell(signal.SIGHUP))
    log.info("starting relay processes", extra={"processes": count, "port": config.server.port})
    for index in range(1, count + 1):
        running[index] = await _start(index, count)
    started = {index: loop.time() for index in running}
    waits = {index: asyncio.ensure_future(process.wait()) for index, process in running.items()}
    failure = None
    while waits:
        done, _ = await asyncio.wait(waits.values(), return_when=asyncio.FIRST_COMPLETED)
        for index in [i for i, w in waits.items() if w in done]:
            status = waits.pop(index).result()
            if stopping.is_set():
                continue
            quickly = loop.time() - started[index] < _FAILED_AT_START
            if quickly and status in (1, 2):  # the relay's own "cannot start" (relay/cli.py): it would again
                failure = f"relay process {index} of {count} could not start (status {status})"
                stopping.set()
                tell(signal.SIGTERM)
                continue
            log.error("relay process ended; starting it again", extra={"relay_process": index, "status": status})
            if quickly:
                await asyncio.sleep(1.0)  # never a loop of restarts as fast as the machine can fork
            running[index] = await _start(index, count)
            started[index] = loop.time()
            waits[index] = asyncio.ensure_future(running[index].wait())
    if failure:
        raise ProcessFailure(failure + "; its log says why")
