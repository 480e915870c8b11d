"""Issue 14.4-5, acceptance over SMTP: links and contact details in images and documents.

An image with a printed URL and one with a QR code that encodes a URL are
removed with a note; a product photo with a size chart passes. An invoice PDF
that carries the seller's e-mail is removed and the seller told; one that
carries only the order id passes byte for byte. A legacy .doc is a document,
not a forbidden file. Where the OCR engine is missing the relay still starts,
says so, and treats images as [filters.images] when_unreadable says.
"""
from __future__ import annotations

import logging

import pytest
from conftest import BUYER, SELLER, make_config, open_conversation, send
from test_documents import make_doc, make_pdf
from test_images import URL, _product_photo, _qr, _text_image
from test_policy import notice_parts, parse, seller_message

from bench.common import encoded
from filters import images
from relay.server import Relay

needs_ocr = pytest.mark.skipif(images.engine() is None, reason="Tesseract is not installed (.ci/run installs it)")


def _delivered_and_notice(messages):
    delivered = [m for m in messages if m.rcpt_tos == [BUYER]]
    notices = [m for m in messages if m.rcpt_tos == [SELLER]]
    return delivered, notices


def _names(message) -> list[str]:
    return [part.get_filename() for part in parse(message.content).walk() if part.get_filename()]


def _note(message) -> str:
    return [p.get_content() for p in parse(message.content).walk() if p.get_content_type() == "text/plain"][-1]


@needs_ocr
async def test_a_printed_url_and_a_qr_code_are_removed_and_a_size_chart_passes(relay, sink, conversation):
    printed = encoded(_text_image([f"Visit {URL}", "for more designs"]), "PNG")
    flyer = encoded(_qr("https://shop.example/promo", scale=10), "PNG")
    chart = encoded(_product_photo(), "JPEG", quality=92)
    await send(relay, SELLER, conversation.buyer_alias, seller_message(
        "Photos", "Here are the photos you asked for.",
        [("banner.png", printed), ("flyer.png", flyer), ("sizes.jpg", chart)]))
    delivered, notices = _delivered_and_notice(await sink.wait_for(2))
    assert _names(delivered[0]) == ["sizes.jpg"]
    note = _note(delivered[0])
    assert "banner.png" in note and "flyer.png" in note
    report = notice_parts(notices[0])
    assert "banner.png" in report["text"] and "flyer.png" in report["text"]


async def test_an_invoice_with_the_sellers_email_is_removed_and_one_with_the_order_id_passes_whole(
        relay, sink, conversation):
    leaking = make_pdf([f"Invoice A-1001\nQuestions? {SELLER}"])
    plain = make_pdf(["Invoice A-1001\nOne oak bench, 240.00 EUR"])
    await send(relay, SELLER, conversation.buyer_alias, seller_message(
        "Invoice", "The invoice is attached.", [("invoice.pdf", leaking), ("receipt.pdf", plain)]))
    delivered, notices = _delivered_and_notice(await sink.wait_for(2))
    parts = {p.get_filename(): p.get_content() for p in parse(delivered[0].content).walk() if p.get_filename()}
    assert list(parts) == ["receipt.pdf"] and parts["receipt.pdf"] == plain
    assert "invoice.pdf" in _note(delivered[0])
    report = notice_parts(notices[0])
    assert "invoice.pdf" in report["text"] and SELLER not in delivered[0].content.decode("latin-1")


async def test_a_web_shop_in_a_word_letter_is_removed_and_a_legacy_doc_passes(relay, sink, conversation):
    from test_documents import make_docx

    letter = make_docx(body="Thank you! More designs at www.bottega-rossi.it")
    legacy = make_doc([("Assembly manual: tighten the four screws by hand.\r", True)])
    await send(relay, SELLER, conversation.buyer_alias, seller_message(
        "Papers", "Two documents.", [("letter.docx", letter), ("manual.doc", legacy)]))
    delivered, _ = _delivered_and_notice(await sink.wait_for(2))
    assert _names(delivered[0]) == ["manual.doc"]


@pytest.mark.parametrize("when_unreadable", ["pass", "strip"])
async def test_without_the_ocr_engine_the_relay_says_so_and_treats_images_as_configured(
        tmp_path, sink, caplog, monkeypatch, when_unreadable):
    monkeypatch.setattr(images, "engine", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")  # the workers find no tesseract either
    config = make_config(tmp_path, sink.port, filters={"images": {"when_unreadable": when_unreadable}})
    relay = Relay(config)
    with caplog.at_level(logging.INFO):
        await relay.start()
    try:
        said = [r for r in caplog.records if "OCR" in r.getMessage()]
        assert len(said) == 1 and when_unreadable in said[0].getMessage()
        listening = [r for r in caplog.records if r.getMessage() == "listening"]
        assert listening and getattr(listening[0], "ocr") == "missing"
        opened = await open_conversation(relay)
        photo = encoded(_text_image([f"Visit {URL}"]), "PNG")
        await send(relay, SELLER, opened.buyer_alias, seller_message("Photo", "A photo.", [("photo.png", photo)]))
        arrived = await sink.wait_for(1 if when_unreadable == "pass" else 2)
        delivered, _ = _delivered_and_notice(arrived)
        assert _names(delivered[0]) == (["photo.png"] if when_unreadable == "pass" else [])
    finally:
        await relay.stop()
