"""The relay's HTTP servers (the API, /metrics) inside its own event loop, on uvicorn.

uvicorn would take SIGTERM and SIGINT for itself; here they belong to the
relay, which stops these servers as part of its orderly stop.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn

START_SECONDS = 30.0


class ListenFailure(Exception):
    """An HTTP server's address cannot be had; the text names the setting."""


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield

    def install_signal_handlers(self) -> None:  # uvicorn before 0.29
        pass


class HttpServer:
    def __init__(self, app, host: str, port: int, reuse_port: bool = False, name: str = "http"):
        self.app, self.host, self.wanted_port, self.reuse_port, self.name = app, host, port, reuse_port, name
        self.server: _Embedded | None = None
        self.task: asyncio.Task | None = None
        self.port: int | None = None

    async def start(self) -> None:
        """Listening when this returns; OSError if the address cannot be had."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
        # every response waited for the client's delayed ACK (40 ms a request on Linux).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self.host, self.wanted_port))
        except OSError as exc:
            sock.close()
            raise ListenFailure(f"cannot listen on [{self.name}] listen {self.host}:{self.wanted_port}: "
                                f"{exc.strerror or exc}") from None
        sock.set_inheritable(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", server_header=False,
                                proxy_headers=False, timeout_graceful_shutdown=5,
                                timeout_keep_alive=65)  # past a client pool's idle time: no race on a closing connection
        self.server = _Embedded(config)
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]), name=f"{self.name}-server")
        deadline = asyncio.get_running_loop().time() + START_SECONDS
        while not self.server.started:  # uvicorn says it has started only by this flag
            if self.task.done():
                self.task.result()  # raises what stopped it
                raise ListenFailure(f"the {self.name} server stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise ListenFailure(f"the {self.name} server did not start within {START_SECONDS:g} s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.server is None or self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, 10)
