"""`relay sink`: a next hop for debugging that prints every message it receives.

It is the shipped smarthost, so a newcomer can watch rewritten messages arrive.
It listens on loopback only and delivers nothing anywhere.
"""
from __future__ import annotations

import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP


class PrintingHandler:
    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        content = envelope.original_content.decode("utf-8", "replace").replace("\r\n", "\n")
        sender = envelope.mail_from if envelope.mail_from == "<>" else f"<{envelope.mail_from}>"
        print(f"----- message {self.count}: MAIL FROM:{sender} RCPT TO:"
              + ", ".join(f"<{r}>" for r in envelope.rcpt_tos)
              + f" ({len(envelope.original_content)} bytes)", file=self.out)
        print(content.rstrip("\n"), file=self.out)
        print(f"----- end of message {self.count}", file=self.out, flush=True)
        return "250 2.0.0 Printed by relay sink"


async def run(host: str, port: int) -> None:
    handler = PrintingHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.localhost", enable_SMTPUTF8=True, data_size_limit=None),
        host=host, port=port,
    )
    print(f"relay sink listening on {host}:{port}; Ctrl-C stops it", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
