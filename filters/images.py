"""Images as text: what a person reading an image attachment would read, for the content rules.

The marketplace forbids links "in plain text or embedded in an image", and the
content rules work on text; this turns an image into text for them: Tesseract
OCR (through pytesseract) plus the payloads of QR codes and barcodes
(zxing-cpp), one per line.

Bounded in cost, since an attacker chooses the bytes:
- only raster formats a mail attachment is (Pillow would otherwise hand EPS
  to Ghostscript and try dozens of exotic decoders);
- a picture whose decoded size passes Pillow's decompression-bomb limit is not
  decoded at all; one over `max_pixels` is scaled down (a JPEG is decoded at
  the reduced scale to begin with), so OCR never sees more than that;
- Tesseract runs as a subprocess killed at the deadline (`timeout` covers the
  whole call); its OpenMP threads are limited to one unless the environment
  says otherwise, since the relay already runs one worker per core and the
  threads only contend (measured about twice as fast on two cores).

Reading choices:
- page segmentation mode 11 (sparse text): the default layout analysis drops
  text inside a table or beside a picture (a size chart next to a garment read
  as nothing), and the rules want any text anywhere, in no particular order.
  On noise-like textures sparse mode reads short junk fragments (two or three
  letters); that is the price of not missing a URL in a corner;
- one grayscale copy, with transparency laid on white, as most mail clients
  show it; EXIF orientation applied, as phone photos store it;
- the first frame of an animation and the first page of a TIFF, which is what
  a mail client shows without being asked.

`readable` is False only when the OCR a picture needed could not run or the
picture could not be decoded; QR and barcode payloads found are still in
`text` then, so a missing Tesseract does not let a QR link through. Pictures
under `min_bytes` skip OCR (tracking pixels, icons, signature logos are most
of the images in mail) but are still searched for codes: a QR code PNG of a
URL is a few hundred bytes.
"""
from __future__ import annotations

import functools
import io
import math
import os
import re
import time
import warnings
from dataclasses import dataclass

from PIL import Image

try:
    import pytesseract
except ImportError:  # the relay still reads codes, and says OCR could not run
    pytesseract = None
try:
    import zxingcpp
except ImportError:
    zxingcpp = None

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

FORMATS = ("JPEG", "PNG", "GIF", "TIFF", "BMP", "WEBP")
_PILLOW_DEFAULT_LIMIT = 89_478_485
_TESSERACT_MAX_SIDE = 32_767  # Tesseract refuses wider or taller images ("Image too large")
_MIN_SIDE = 8  # fewer pixels than a legible letter needs: nothing to OCR
_CONFIG = "--psm 11"
_HIGH_DEPTH = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_LANGUAGE = re.compile(r"^[a-z_]+$")
NOT_INSTALLED = "OCR engine not installed"


@dataclass(frozen=True)
class ImageReading:
    text: str
    """OCR text plus decoded QR/barcode payloads, one per line."""
    readable: bool
    """False when the OCR engine is missing or the image could not be read."""
    why: str | None = None
    """When not readable: a short reason (engine missing, too large, timed out, undecodable)."""


@functools.cache
def engine() -> str | None:
    """The OCR engine's version, or None when it is not installed (checked once: it costs a process)."""
    if pytesseract is None:
        return None
    try:
        return str(pytesseract.get_tesseract_version())
    except (OSError, SystemExit, ValueError, RuntimeError):  # SystemExit: pytesseract's word for an odd version
        return None


@functools.cache
def _installed_languages() -> frozenset[str]:
    try:
        return frozenset(pytesseract.get_languages(config=""))
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def _languages(requested: str) -> str | None:
    """The requested languages that are installed, in the order asked: a missing one only narrows the reading."""
    installed = _installed_languages()
    wanted = [name for name in requested.split("+") if _LANGUAGE.match(name) and name in installed]
    return "+".join(dict.fromkeys(wanted)) or None


class _Refused(Exception):
    """The picture is not to be decoded or not decodable; the message is the reason given back."""


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """The first frame, in gray, upright, at most max_pixels and within Tesseract's side limit.

    Pillow's bomb limit is checked from the header, before any pixel is decoded.
    """
    limit = Image.MAX_IMAGE_PIXELS or _PILLOW_DEFAULT_LIMIT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's remarks on odd files ("Corrupt EXIF data") are not for the log
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _decoded(Image.open(io.BytesIO(data), formats=FORMATS), limit, max_pixels)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise _Refused(f"too large to decode (over {limit} pixels)") from None


def _decoded(image: Image.Image, limit: int, max_pixels: int) -> Image.Image:
    width, height = image.size
    if width * height > limit:
        raise _Refused(f"too large to decode ({width}x{height} pixels)")
    if width < 1 or height < 1:
        raise _Refused("undecodable image (no pixels)")
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block hides no pixels: read the picture as stored
        orientation = None
    scale = min(1.0, math.sqrt(max_pixels / (width * height)) if max_pixels > 0 else 1.0,
                _TESSERACT_MAX_SIDE / max(width, height))
    target = (max(1, int(width * scale)), max(1, int(height * scale)))
    if image.format in ("JPEG", "MPO"):
        image.draft("L", target)  # libjpeg decodes straight to gray at 1/2, 1/4 or 1/8 scale, not below target
    image.seek(0)
    image.load()
    gray = _grayscale(image)
    if gray.size != target and (gray.size[0] > target[0] or gray.size[1] > target[1]):
        gray = gray.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)  # antialiased, half of Lanczos's time
    if orientation in _TRANSPOSE:
        gray = gray.transpose(_TRANSPOSE[orientation])
    return gray


def _grayscale(image: Image.Image) -> Image.Image:
    """One band of eight bits: deep images stretched to their range (converting clips them to white)."""
    if image.mode in _HIGH_DEPTH:
        low, high = image.getextrema()
        factor = 255.0 / (high - low) if high > low else 1.0
        return image.convert("F").point(lambda value: (value - low) * factor).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("L")
    return image if image.mode == "L" else image.convert("L")


def _codes(gray: Image.Image) -> list[str]:
    """QR and barcode payloads, each once; a failure here costs only the codes, never the OCR."""
    if zxingcpp is None:
        return []
    try:
        found = zxingcpp.read_barcodes(gray)
    except Exception:
        return []
    return list(dict.fromkeys(code.text for code in found if code.text))


def _ocr(gray: Image.Image, languages: str, seconds: float, timeout: float) -> tuple[str | None, str | None]:
    """(text, None), or (None, why) when Tesseract could not read it in time."""
    if engine() is None:
        return None, NOT_INSTALLED
    lang = _languages(languages)
    if lang is None:
        return None, f"no OCR language installed of {languages!r}"
    if seconds <= 0:
        return None, f"OCR timed out after {timeout:g} s"
    gray.format = "PPM"  # pytesseract's temporary copy: PPM is written ten times faster than its default PNG
    try:
        raw = pytesseract.image_to_string(gray, lang=lang, config=_CONFIG, timeout=seconds)
    except pytesseract.TesseractNotFoundError:
        return None, NOT_INSTALLED
    except pytesseract.TesseractError as exc:
        return None, f"OCR failed: {str(exc.message)[:200]}"
    except RuntimeError as exc:  # pytesseract's timeout, after killing the process
        if "timeout" in str(exc).lower():
            return None, f"OCR timed out after {timeout:g} s"
        return None, f"OCR failed: {str(exc)[:200]}"
    except OSError as exc:  # the temporary file, or the process, could not be had
        return None, f"OCR failed: {exc.__class__.__name__}"
    return "\n".join(line.strip() for line in raw.splitlines() if line.strip()), None


def read_image(data: bytes, *, min_bytes: int = 4096, max_pixels: int = 12_000_000,
               timeout: float = 10.0, languages: str = "eng+spa+ita+ind") -> ImageReading:
    """What a person would read in the picture; never raises, whatever the bytes."""
    start = time.monotonic()
    try:
        try:
            gray = _open(data, max_pixels)
        except _Refused as refused:
            return ImageReading("", False, str(refused))
        except MemoryError:
            return ImageReading("", False, "too large to decode in memory")
        except Image.UnidentifiedImageError:
            return ImageReading("", False, f"undecodable: not an image in {', '.join(FORMATS)}")
        except Exception as exc:  # Pillow's many ways of saying the bytes are not a picture it can decode
            return ImageReading("", False, f"undecodable image: {str(exc)[:120] or exc.__class__.__name__}")
        codes = _codes(gray)
        if len(data) < min_bytes or min(gray.size) < _MIN_SIDE:
            return ImageReading("\n".join(codes), True, None)
        text, why = _ocr(gray, languages, timeout - (time.monotonic() - start), timeout)
        lines = ([text] if text else []) + codes
        return ImageReading("\n".join(lines), why is None, why)
    except MemoryError:
        return ImageReading("", False, "too large to read in memory")
    except Exception as exc:  # the promise holds even for a failure not foreseen above
        return ImageReading("", False, f"could not read the image ({exc.__class__.__name__})")
