"""Text and codes read from image attachments (filters/images.py), on pictures made here with Pillow.

The pictures are real: text drawn with a TrueType font, QR codes made by
segno. OCR tests skip where Tesseract is not installed; code tests need only
zxing-cpp. Nothing here is a timed assertion: the cost bounds are checked by
what the OCR step was given (its pixel count) and by the reason given back.
"""
from __future__ import annotations

import io
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter

from bench.common import encoded, font
from filters import images
from filters.images import NOT_INSTALLED, ImageReading, engine, read_image

needs_ocr = pytest.mark.skipif(engine() is None, reason="the Tesseract OCR engine is not installed (tesseract-ocr)")
URL = "www.bottega-rossi.it"
PROMO = "https://shop.example/promo"
_URL_LIKE = re.compile(r"(?i)https?:|www|[a-z0-9-]\s*\.\s*[a-z]{2,}\b|@")




def _text_image(lines, size=(1000, 240), font_size=52, background="white", ink="black", mode="RGB") -> Image.Image:
    image = Image.new(mode, size, background)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((30, 40 + number * (font_size + 24)), line, font=font(font_size), fill=ink)
    return image


def _compact(text: str) -> str:
    """OCR puts a space where a glyph gap is wide ("rossi. it"); the comparison ignores spacing and case."""
    return re.sub(r"\s+", "", text).lower()


def _qr(payload: str, scale: int = 8) -> Image.Image:
    segno = pytest.importorskip("segno", reason="segno (QR code maker, a test dependency) is not installed")
    return Image.open(io.BytesIO(_encoded_qr(segno.make(payload, error="m"), scale))).convert("RGB")


def _encoded_qr(code, scale: int) -> bytes:
    out = io.BytesIO()
    code.save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def _needs_zxing():
    pytest.importorskip("zxingcpp", reason="zxing-cpp (QR and barcode reader) is not installed")


@pytest.fixture
def ocr_sizes(monkeypatch):
    """The size of every picture handed to Tesseract, while still reading it for real."""
    seen = []
    original = images.pytesseract.image_to_string

    def spy(image, *args, **kwargs):
        seen.append(image.size)
        return original(image, *args, **kwargs)

    monkeypatch.setattr(images.pytesseract, "image_to_string", spy)
    return seen


@pytest.fixture(params=["tesseract missing", "pytesseract missing"])
def no_engine(request, monkeypatch):
    if request.param == "tesseract missing":
        if images.pytesseract is None:
            pytest.skip("pytesseract is not installed: the other case covers it")
        monkeypatch.setattr(images.pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    else:
        monkeypatch.setattr(images, "pytesseract", None)
    images.engine.cache_clear()
    images._installed_languages.cache_clear()
    yield
    images.engine.cache_clear()
    images._installed_languages.cache_clear()


# -- what is read ------------------------------------------------------------------------------


@needs_ocr
def test_engine_reports_its_version():
    assert re.match(r"^\d+\.\d+", engine())


@needs_ocr
def test_a_printed_url_is_read():
    reading = read_image(encoded(_text_image([URL]), "PNG"))
    assert reading == ImageReading(reading.text, True, None)
    assert URL in _compact(reading.text)


@needs_ocr
def test_a_url_in_a_screenshot_among_other_text_is_read():
    shot = _text_image(["Thanks for your order!", f"Discounts on {URL}", "Gracias, a presto."],
                       size=(1200, 900), font_size=34, background=(245, 245, 245), ink=(30, 30, 30))
    reading = read_image(encoded(shot, "PNG"))
    assert reading.readable and URL in _compact(reading.text)
    assert "thanksforyourorder" in _compact(reading.text)


@needs_ocr
def test_light_text_on_a_dark_banner_is_read():
    banner = _text_image([URL], background=(20, 30, 90), ink=(255, 255, 255))
    assert URL in _compact(read_image(encoded(banner, "PNG")).text)


def test_a_qr_code_payload_is_in_the_text():
    _needs_zxing()
    reading = read_image(encoded(_qr(PROMO), "PNG"), min_bytes=0)
    assert PROMO in reading.text.splitlines()


def test_a_qr_code_smaller_than_min_bytes_is_still_decoded():
    """A QR code PNG of a URL is a few hundred bytes: skipping small files must not skip codes."""
    _needs_zxing()
    segno = pytest.importorskip("segno", reason="segno (QR code maker, a test dependency) is not installed")
    data = _encoded_qr(segno.make(PROMO), scale=6)
    assert len(data) < 4096
    reading = read_image(data)
    assert reading.readable and reading.text == PROMO


def test_a_qr_code_beside_a_photo_is_found():
    _needs_zxing()
    photo = Image.new("RGB", (1600, 1200), (200, 190, 170))
    photo.paste(_qr(PROMO, scale=6), (1200, 800))
    assert PROMO in read_image(encoded(photo, "JPEG", quality=90)).text.splitlines()


def _product_photo() -> Image.Image:
    """A garment on a studio backdrop, with grain and blur, and a bordered size chart beside it."""
    width, height = 1200, 900
    photo = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(photo)
    for y in range(height):
        shade = int(200 + 40 * y / height)
        draw.line([(0, y), (width, y)], fill=(shade, shade - 10, shade - 25))
    draw.polygon([(150, 200), (300, 130), (380, 130), (420, 170), (460, 130), (540, 130), (690, 200), (640, 310),
                  (580, 280), (580, 700), (260, 700), (260, 280), (200, 310)], fill=(40, 80, 150))
    grain = random.Random(1)
    pixels = photo.load()
    for _ in range(30_000):
        x, y = grain.randrange(width), grain.randrange(height)
        pixels[x, y] = tuple(max(0, min(255, band + grain.randint(-20, 20))) for band in pixels[x, y])
    photo = photo.filter(ImageFilter.GaussianBlur(1))
    draw = ImageDraw.Draw(photo)
    left, top = 760, 220
    draw.rectangle([(left - 20, top - 20), (left + 380, top + 330)], fill="white", outline="black", width=3)
    for row, (size, cm) in enumerate([("Size", "cm"), ("S", "36"), ("M", "38"), ("L", "40")]):
        y = top + row * 75
        draw.text((left, y), size, font=font(44), fill="black")
        draw.text((left + 200, y), cm, font=font(44), fill="black")
        if row:
            draw.line([(left - 20, y - 8), (left + 380, y - 8)], fill="black", width=2)
    draw.line([(left + 170, top - 20), (left + 170, top + 330)], fill="black", width=2)
    return photo


@needs_ocr
def test_a_size_chart_on_a_product_photo_reads_as_the_chart_and_nothing_else():
    reading = read_image(encoded(_product_photo(), "JPEG", quality=85))
    assert reading.readable
    assert not _URL_LIKE.search(reading.text), reading.text
    tokens = set(re.findall(r"[a-z0-9]+", reading.text.lower()))
    assert tokens <= {"size", "cm", "s", "m", "l", "36", "38", "40"}, reading.text  # nothing invented
    assert {"36", "38", "40"} & tokens, reading.text  # and the chart was read, not skipped


@needs_ocr
@pytest.mark.parametrize("fmt, options", [("JPEG", {"quality": 85}), ("PNG", {}), ("GIF", {}), ("TIFF", {}),
                                          ("BMP", {}), ("WEBP", {"quality": 90})])
def test_each_attachment_format_is_read(fmt, options):
    data = encoded(_text_image([URL]), fmt, **options)
    assert len(data) >= 4096  # so that this is OCR, not the small-file skip
    reading = read_image(data)
    assert reading.readable and URL in _compact(reading.text)


@needs_ocr
def test_an_animated_gif_is_read_from_its_first_frame():
    first, second = _text_image(["FIRST FRAME"]), _text_image(["SECOND PICTURE"])
    data = encoded(first, "GIF", save_all=True, append_images=[second], duration=500, loop=0)
    text = _compact(read_image(data).text)
    assert "firstframe" in text and "second" not in text


@needs_ocr
def test_a_multipage_tiff_is_read_from_its_first_page():
    first, second = _text_image(["FIRST PAGE"]), _text_image(["SECOND SHEET"])
    text = _compact(read_image(encoded(first, "TIFF", save_all=True, append_images=[second])).text)
    assert "firstpage" in text and "second" not in text


@needs_ocr
def test_a_phone_photo_is_read_upright_from_its_exif_orientation():
    upright = _text_image([URL], size=(1400, 400), font_size=72)
    stored = upright.rotate(90, expand=True)  # as the camera wrote the pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to show"
    assert URL in _compact(read_image(encoded(stored, "JPEG", quality=90, exif=exif)).text)


@needs_ocr
def test_text_on_a_transparent_background_is_read_as_shown_on_white():
    data = encoded(_text_image([URL], background=(0, 0, 0, 0), ink=(0, 0, 0, 255), mode="RGBA"), "PNG")
    assert URL in _compact(read_image(data, min_bytes=0).text)


@needs_ocr
def test_a_16_bit_grayscale_png_is_read():
    """Dark gray ink is above 255 in 16 bits: Pillow's plain conversion clips it to white, and the text is gone."""
    deep = _text_image([URL], mode="L", ink=60).point(lambda value: value * 257, mode="I").convert("I;16")
    assert deep.getextrema()[0] > 255
    assert URL in _compact(read_image(encoded(deep, "PNG")).text)


# -- what is skipped, and what is refused -------------------------------------------------------


def test_an_image_under_min_bytes_is_skipped_without_ocr(monkeypatch):
    if images.pytesseract is not None:
        monkeypatch.setattr(images.pytesseract, "image_to_string", lambda *a, **k: pytest.fail("OCR was run"))
    icon = encoded(_text_image(["Hi"], size=(64, 32), font_size=16), "PNG")
    assert len(icon) < 4096
    assert read_image(icon) == ImageReading("", True, None)


@pytest.mark.parametrize("data", [
    b"",
    b"\x00" * 10_000,
    bytes(random.Random(7).randrange(256) for _ in range(20_000)),
    b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + b"0" * 8000 + b"\n%%EOF",  # a PDF renamed .png
    b"\x89PNG\r\n\x1a\n" + b"\xff" * 8000,
    b"GIF89a" + b"\x00" * 8000,
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n" + b"0 0 moveto\n" * 800,  # never handed to Ghostscript
], ids=["empty", "zeros", "random", "pdf", "png-header", "gif-header", "eps"])
def test_bytes_that_are_not_a_picture_are_unreadable_not_an_error(data):
    reading = read_image(data)
    assert not reading.readable and reading.text == "" and reading.why.startswith("undecodable")


def test_a_truncated_picture_is_unreadable():
    data = encoded(_text_image([URL]), "PNG")
    reading = read_image(data[: len(data) // 2], min_bytes=0)
    assert not reading.readable and reading.why.startswith("undecodable")


@pytest.mark.parametrize("side", [10_000, 14_000], ids=["past the limit", "past twice the limit"])
def test_a_decompression_bomb_is_refused_before_decoding(side):
    bomb = encoded(Image.new("1", (side, side), 1), "PNG")  # 100 or 196 million pixels in under 100 kB
    assert len(bomb) < 100_000 and side * side > Image.MAX_IMAGE_PIXELS
    reading = read_image(bomb)
    assert reading == ImageReading("", False, reading.why) and reading.why.startswith("too large to decode")


@needs_ocr
def test_a_very_large_picture_is_scaled_down_for_ocr(ocr_sizes):
    reading = read_image(encoded(Image.new("RGB", (6000, 6000), "white"), "PNG"))
    assert reading == ImageReading("", True, None)
    assert len(ocr_sizes) == 1 and ocr_sizes[0][0] * ocr_sizes[0][1] <= 12_000_000


@needs_ocr
def test_text_in_a_large_photo_is_still_read_after_scaling(ocr_sizes):
    photo = Image.new("RGB", (5000, 6000), (180, 170, 150))
    ImageDraw.Draw(photo).text((400, 3000), URL, font=font(140), fill=(15, 15, 15))
    reading = read_image(encoded(photo, "JPEG", quality=88), max_pixels=4_000_000)
    assert URL in _compact(reading.text)
    assert ocr_sizes[0][0] * ocr_sizes[0][1] <= 4_000_000


@needs_ocr
def test_a_picture_past_tesseracts_side_limit_is_scaled_to_it(ocr_sizes):
    strip = _text_image([URL], size=(40_000, 150))
    reading = read_image(encoded(strip, "PNG"))
    assert reading.readable, reading.why
    assert max(ocr_sizes[0]) <= 32_767


@needs_ocr
def test_ocr_past_the_deadline_is_unreadable_and_keeps_the_codes():
    _needs_zxing()
    picture = _text_image([URL], size=(1400, 500))
    picture.paste(_qr(PROMO, scale=4), (1000, 100))
    reading = read_image(encoded(picture, "PNG"), timeout=0.05)
    assert not reading.readable and "timed out" in reading.why
    assert reading.text == PROMO


@needs_ocr
def test_languages_that_are_not_installed_narrow_the_reading_without_failing():
    data = encoded(_text_image([URL]), "PNG")
    reading = read_image(data, languages="klingon+eng+xx_yy+ita")
    assert reading.readable and URL in _compact(reading.text)
    none_installed = read_image(data, languages="klingon")
    assert not none_installed.readable and "no OCR language" in none_installed.why


# -- without the OCR engine ---------------------------------------------------------------------


def test_without_the_engine_a_picture_is_unreadable_but_nothing_raises(no_engine):
    assert engine() is None
    reading = read_image(encoded(_text_image([URL]), "PNG"))
    assert reading == ImageReading("", False, NOT_INSTALLED)


def test_without_the_engine_qr_codes_are_still_read(no_engine):
    _needs_zxing()
    reading = read_image(encoded(_qr(PROMO), "PNG"), min_bytes=0)
    assert reading == ImageReading(PROMO, False, NOT_INSTALLED)


def test_without_the_engine_a_small_picture_needs_no_ocr(no_engine):
    icon = encoded(_text_image(["Hi"], size=(64, 32), font_size=16), "PNG")
    assert read_image(icon) == ImageReading("", True, None)


# -- any bytes at all ---------------------------------------------------------------------------

_HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"BM", b"RIFF"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_HEADERS), st.binary(max_size=2048))
def test_any_bytes_give_a_reading(header, body):
    reading = read_image(header + body, min_bytes=10**9)  # decoding and codes only: OCR is covered above
    assert isinstance(reading, ImageReading)
    assert reading.readable or reading.why
