"""Worker processes that read, judge and rewrite messages, each message under a CPU and a memory limit.

Parsing, the filters and the rewrite are CPU work on input an attacker
shapes; they run here, off the event loop, one message per worker at a time.
The pool watches each message's CPU time in /proc and kills a worker that
passes `[limits] message_cpu_seconds` (a wall-clock cap of ten times that
catches one that hangs without spinning); an address-space limit turns a
runaway allocation into a MemoryError inside the worker; and a worker that
holds more than `worker_recycle_mb` after a message is replaced, because
CPython rarely gives memory back. In each of those cases the worker is
replaced and the caller hears WorkLimit, which the relay answers with a 552.

A worker dies with its parent: the kernel sends it SIGKILL (PR_SET_PDEATHSIG),
and in any case its pipe to the parent closes and it leaves. `spawn`, not
fork: the parent holds an event loop, database threads and sockets.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()
_WALL_FACTOR = 10
_POLL = 0.02


class WorkLimit(Exception):
    """The message needed more of a resource than one message may have."""

    def __init__(self, resource_name: str):
        super().__init__(resource_name)
        self.resource = resource_name


class WorkerLost(Exception):
    """A worker died while reading a message, twice: the message is not one the relay can read."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    """Address space of a worker process; 0 for none."""
    recycle_bytes: int
    """Resident memory after a message above which a worker is replaced; 0 for never."""


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the closed pipe still ends the worker once it is idle
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return 0


def _serve(connection: Connection, parent: int, limits: Limits, initializer, initargs) -> None:
    """The worker's life: warm up, then one message at a time until the pipe closes."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if limits.memory_bytes:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, hard))
    initializer(*initargs)
    connection.send("ready")
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        function, args = task
        try:
            outcome = ("ok", function(*args))
        except MemoryError:
            outcome = ("memory", None)
        except Exception as exc:  # the caller decides what a failure means
            outcome = ("error", exc)
        retire = outcome[0] == "memory" or bool(limits.recycle_bytes and _resident_bytes() > limits.recycle_bytes)
        try:
            connection.send((*outcome, retire))
        except Exception:  # an exception that does not pickle
            connection.send(("error", RuntimeError(repr(outcome[1])), retire))
        if retire:
            return


class _Worker:
    def __init__(self, context, limits: Limits, initializer, initargs):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, os.getpid(), limits, initializer, initargs),
                                       daemon=True, name="relay-worker")
        self.process.start()
        child.close()

    def ready(self, timeout: float) -> bool:
        try:
            return self.connection.poll(timeout) and self.connection.recv() == "ready"
        except (EOFError, OSError):
            return False

    def cpu_seconds(self) -> float:
        try:
            with open(f"/proc/{self.process.pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            return 0.0  # no /proc: the wall-clock cap still holds

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.connection.close()


class WorkerPool:
    def __init__(self, size: int, limits: Limits, initializer, initargs=()):
        self.size = size
        self.limits = limits
        self.initializer, self.initargs = initializer, initargs
        self._context = multiprocessing.get_context("spawn")
        self._threads = ThreadPoolExecutor(size, thread_name_prefix="relay-worker")
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def pids(self) -> set[int]:
        return {worker.process.pid for worker in self._all}

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context, self.limits, self.initializer, self.initargs)
        if not worker.ready(120):
            worker.stop()
            raise RuntimeError("a worker process did not start")
        with self._lock:
            self._all.add(worker)
        return worker

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for worker in await asyncio.gather(*(loop.run_in_executor(self._threads, self._spawn)
                                             for _ in range(self.size))):
            self._idle.put_nowait(worker)

    def _replace(self, worker: _Worker, loop: asyncio.AbstractEventLoop) -> None:
        """In a thread: stop a worker and, unless the pool is closing, start another in its place."""
        with self._lock:
            self._all.discard(worker)
        worker.stop()
        if self._closed:
            return
        try:
            fresh = self._spawn()
        except Exception:
            log.exception("could not start a worker in place of one that was retired")
            return
        loop.call_soon_threadsafe(self._idle.put_nowait, fresh)

    def _call(self, worker: _Worker, cpu_seconds: float, function, args):
        """In a thread: hand the task over and watch the worker until it answers, dies or overruns."""
        worker.connection.send((function, args))
        start, waited = worker.cpu_seconds(), 0.0
        while True:
            ready = wait([worker.connection, worker.process.sentinel], timeout=_POLL)
            if worker.connection in ready:
                try:
                    return worker.connection.recv()
                except (EOFError, OSError):
                    return ("lost", None, True)
            if ready:
                return ("lost", None, True)
            waited += _POLL
            if worker.cpu_seconds() - start > cpu_seconds or waited > cpu_seconds * _WALL_FACTOR:
                return ("cpu", None, True)

    async def run(self, cpu_seconds: float, function, *args):
        """function(*args) in a worker within cpu_seconds; raises WorkLimit, WorkerLost, or what function raised."""
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            worker = await self._idle.get()
            status, value, retire = None, None, True  # a call cut short leaves the worker in no known state
            try:
                status, value, retire = await loop.run_in_executor(self._threads, self._call, worker, cpu_seconds, function, args)
            finally:
                if retire:
                    loop.run_in_executor(None, self._replace, worker, loop)
                else:
                    self._idle.put_nowait(worker)
            if status == "ok":
                return value
            if status == "error":
                raise value
            if status == "memory":
                raise WorkLimit("memory")
            if status == "cpu":
                raise WorkLimit("CPU time")
            log.error("worker died reading a message", extra={"attempt": attempt + 1})
        raise WorkerLost()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        self._closed = True

        def stop_all() -> None:
            with self._lock:
                workers = list(self._all)
                self._all.clear()
            for worker in workers:
                try:
                    worker.connection.send(None)
                    worker.process.join(2)
                except (OSError, ValueError):
                    pass
                worker.stop()

        await loop.run_in_executor(None, stop_all)
        self._threads.shutdown(wait=False, cancel_futures=True)
