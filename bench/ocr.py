"""What reading an image attachment costs: filters.images.read_image on three typical pictures.

Makes a phone photo with text (3000x4000 JPEG), a screenshot of a chat
(1200x900 PNG) and a QR code on a flyer (PNG), reads each N times, and prints
the median and max milliseconds per picture and the peak resident memory of
this process while reading it (Linux: VmHWM, reset per picture) and of the
largest Tesseract process it ran (polled from /proc).

    .venv/bin/python bench/ocr.py --runs 5
    .venv/bin/python bench/ocr.py --runs 5 --max-pixels 4000000

OMP_THREAD_LIMIT set in the environment overrides the module's default of one thread for Tesseract.
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import encoded, font  # noqa: E402
from filters.images import engine, read_image  # noqa: E402
from filters.settings import FiltersConfig  # noqa: E402


def phone_photo() -> bytes:
    """A shop sign photographed on a table: soft gradient, sensor grain, a few lines of text."""
    width, height = 3000, 4000
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    tint = Image.new("RGB", (width, height), (190, 160, 120))
    photo = Image.blend(base, tint, 0.6)
    grain = Image.effect_noise((width // 4, height // 4), 25).resize((width, height)).convert("RGB")
    photo = Image.blend(photo, grain, 0.15).filter(ImageFilter.GaussianBlur(1.5))
    draw = ImageDraw.Draw(photo)
    draw.rectangle([(300, 1400), (2700, 2500)], fill=(235, 232, 225))
    for row, line in enumerate(["Bottega Rossi", "Pelletteria artigianale", "www.bottega-rossi.it"]):
        draw.text((400, 1500 + row * 320), line, font=font(170), fill=(25, 20, 20))
    return encoded(photo, "JPEG", quality=88)


def screenshot() -> bytes:
    """A chat screenshot: a title bar, bubbles, a few lines in three languages."""
    shot = Image.new("RGB", (1200, 900), (245, 245, 245))
    draw = ImageDraw.Draw(shot)
    draw.rectangle([(0, 0), (1200, 70)], fill=(30, 90, 160))
    draw.text((20, 15), "Messages", font=font(34), fill="white")
    lines = ["Hi! Thanks for your order of the leather bag.", "Write to me on WhatsApp +39 333 123 4567",
             "or visit www.bottega-rossi.it for a discount.", "Contatto: mario.rossi@example.com",
             "Gracias, hasta pronto.", "Terima kasih atas pesanan Anda."]
    for row, line in enumerate(lines):
        top = 110 + row * 110
        draw.rounded_rectangle([(30, top), (1000, top + 80)], radius=20, fill=(220, 240, 220))
        draw.text((50, top + 22), line, font=font(28), fill=(20, 20, 20))
    return encoded(shot, "PNG")


def qr_flyer() -> bytes:
    """A QR code for a shop link on a small flyer with a heading."""
    import segno

    code = io.BytesIO()
    segno.make("https://shop.example/promo", error="m").save(code, kind="png", scale=10, border=4)
    flyer = Image.new("RGB", (900, 1100), (250, 248, 240))
    flyer.paste(Image.open(code).convert("RGB"), (150, 300))
    ImageDraw.Draw(flyer).text((120, 120), "Scan for 20% off", font=font(60), fill=(10, 10, 10))
    grain = random.Random(5)
    pixels = flyer.load()
    for _ in range(20_000):
        x, y = grain.randrange(900), grain.randrange(1100)
        pixels[x, y] = tuple(max(0, band - grain.randint(0, 30)) for band in pixels[x, y])
    return encoded(flyer, "PNG")


def _kib(path: str, field: str = "VmHWM") -> int:
    try:
        with open(path) as status:
            return next((int(line.split()[1]) for line in status if line.startswith(field + ":")), 0)
    except OSError:
        return 0


def _comm(path: str) -> str:
    try:
        with open(path) as comm:
            return comm.read().strip()
    except OSError:
        return ""


class ChildPeak(threading.Thread):
    """The largest peak resident size of this process's children (the Tesseract runs), polled from /proc."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kib, self.address_kib, self._done = 0, 0, threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._done.wait(0.01):
            for stat in glob.glob("/proc/[0-9]*/stat"):
                try:
                    with open(stat) as text:
                        parent = int(text.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if parent == me and _comm(stat[:-4] + "comm") == "tesseract":  # not the fork before its exec
                    self.peak_kib = max(self.peak_kib, _kib(stat[:-4] + "status"))
                    self.address_kib = max(self.address_kib, _kib(stat[:-4] + "status", "VmPeak"))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kib


def _reset_own_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM, so each picture's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-pixels", type=int, default=FiltersConfig().images.max_pixels,
                        help="read_image's max_pixels (default: the relay's)")
    parser.add_argument("--timeout", type=float, default=10.0, help="read_image's timeout, seconds")
    args = parser.parse_args()
    print(f"tesseract {engine() or 'not installed'}, OMP_THREAD_LIMIT={os.environ.get('OMP_THREAD_LIMIT')}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {args.runs} runs, "
          f"max_pixels={args.max_pixels}, timeout={args.timeout:g} s")
    pictures = {"phone photo 3000x4000 JPEG": phone_photo(), "screenshot 1200x900 PNG": screenshot(),
                "QR flyer 900x1100 PNG": qr_flyer()}
    for name, data in pictures.items():
        timings, reading = [], None
        _reset_own_peak()
        children = ChildPeak()
        children.start()
        for _ in range(args.runs):
            start = time.perf_counter()
            reading = read_image(data, max_pixels=args.max_pixels, timeout=args.timeout)
            timings.append((time.perf_counter() - start) * 1000)
        tesseract = children.stop() / 1024
        address = children.address_kib / 1024
        own = _kib("/proc/self/status") / 1024
        said = reading.text.replace("\n", " | ")
        print(f"{name:27} {len(data) / 1024:4.0f} KiB  median {statistics.median(timings):5.0f} ms  "
              f"max {max(timings):5.0f} ms  peak RSS {own:4.0f} MiB + Tesseract {tesseract:4.0f} MiB "
              f"(address space {address:4.0f} MiB)  "
              f"readable={reading.readable} why={reading.why}")
        print(f"{'':27} text: {said[:100]}")
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")

if __name__ == "__main__":
    main()
