"""What the benchmarks share: a free loopback port, and waiting for a relay to listen."""
from __future__ import annotations

import asyncio
import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def listening(port: int, deadline: float = 30.0) -> None:
    """Returns once something accepts on 127.0.0.1:port; raises if nothing does before the deadline."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if loop.time() > until:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {deadline:.0f} s") from None
            await asyncio.sleep(0.05)


def font(size: int):
    """DejaVu where the system has it, else Pillow's own scalable font: no font package needed."""
    import glob

    from PIL import ImageFont

    found = sorted(glob.glob("/usr/share/fonts/**/DejaVuSans.ttf", recursive=True))
    return ImageFont.truetype(found[0], size) if found else ImageFont.load_default(size)


def encoded(image, fmt: str, **options) -> bytes:
    """A Pillow image as the bytes of a file in format fmt."""
    import io

    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()

