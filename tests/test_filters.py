"""Filters alone: a table of (message, expected verdict) per rule, and the labelled set of real-looking messages."""
from __future__ import annotations

import io
import tomllib
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from test_identifiers import tiny_png

from filters.pipeline import Pipeline
from filters.settings import FiltersConfig
from filters.view import Attachment, Facts, MessageView

LABELLED = Path(__file__).parent / "data" / "labelled"
SELLER = "orders@seller-shop.example"
BUYER = "ann.buyer@example.com"
BUYER_ALIAS = "b0b0b0b0b0b0b0b0@relay.test"
SELLER_ALIAS = "s0s0s0s0s0s0s0s0@relay.test"


def facts(**overrides) -> Facts:
    values = dict(direction="seller_to_buyer", conversation_aliases=frozenset({BUYER_ALIAS, SELLER_ALIAS}),
                  party_addresses=frozenset({SELLER, BUYER}))
    return Facts(**{**values, **overrides})


def view(text: str = "", html: str | None = None, subject: str = "Your order", attachments=()) -> MessageView:
    return MessageView(subject=subject, texts=(text,) if text else (), htmls=(html,) if html else (),
                       attachments=tuple(attachments))


PIPELINE = Pipeline(FiltersConfig())


def judged(message: MessageView, **fact_overrides):
    judgement = PIPELINE.judge(message, facts(**fact_overrides))
    return judgement.bounce.rule if judgement.bounce else None


# (rule expected or None, text) — language-bound rules have a pass and a catch in each language.
CONTENT_TABLE = [
    (None, "Your parcel 1Z999AA10123456784 ships on 3.12.2026, approx. 2.5 kg, e.g. by UPS."),
    ("links", "Track it at https://tracking.example.com/123"),
    ("links", "See www.myshop.com for the size chart"),
    ("links", "More photos on myshop.com"),
    ("links", "Pedidos personalizados en tienda.es"),
    ("links", "Trovi la guida su negozio.it"),
    ("links", "Katalog ada di toko.co.id"),
    ("links", "Size guide at shop.co.uk"),
    ("links", "See hxxp://myshop.example.org/x"),
    ("links", "Photos at myshop[.]com/gallery"),
    ("links", "Photos at myshop dot com"),
    (None, "The file invoice.pdf and photo.jpg are attached, i.e. both documents, v2.0, No. 5."),
    (None, f"Questions? Write to {SELLER}. On Mon, Buyer <{BUYER_ALIAS}> wrote: hello"),
    ("contact", "Write to me at shop.help@gmail.com instead"),
    ("contact", "Email shophelp [at] gmail [dot] com"),
    ("contact", "email me at lindapark.crafts at outlook.com"),
    ("contact", "My gmail is lindacrafts88, write there for faster answers"),
    ("contact", "Mi gmail es tienda_ana, escríbeme allí"),
    (None, "Sorry, my gmail is slow today, I only saw your message now."),
    # promotion, per language
    (None, "I have refunded 12.50 EUR for the late delivery."),
    ("promotion", "Use code SAVE10 for 10% off your next order."),
    (None, "He reembolsado 12,50 EUR por el retraso, disculpe."),
    ("promotion", "Visita nuestra tienda para más modelos."),
    (None, "Ho rimborsato 12,50 EUR per il ritardo, mi scusi."),
    ("promotion", "Seguici su Instagram per le novità!"),
    (None, "Saya sudah mengembalikan dana Rp 150.000 karena keterlambatan."),
    ("promotion", "Gunakan kode HEMAT10 untuk pesanan berikutnya."),
    # review, per language
    (None, "Thank you for your order, I hope you enjoy the mug."),
    ("review", "Please leave us a 5-star review if you like it!"),
    (None, "Gracias por su pedido, espero que le guste la taza."),
    ("review", "Le devolvemos 5 EUR si nos deja una reseña de cinco estrellas."),
    (None, "Grazie per l'ordine, spero che la tazza le piaccia."),
    ("review", "Ci lasci una recensione positiva, per favore."),
    (None, "Terima kasih atas pesanan Anda, semoga cangkirnya disukai."),
    ("review", "Mohon berikan ulasan bintang 5 ya kak."),
]


@pytest.mark.parametrize("expected,text", CONTENT_TABLE)
def test_content_rules(expected, text):
    assert judged(view(text)) == expected


@pytest.mark.parametrize("expected,html", [
    (None, '<p>Thanks!</p><div class="gmail_quote">On Mon, Buyer &lt;<a href="mailto:%s">%s</a>&gt; wrote:</div>'
     % (BUYER_ALIAS, BUYER_ALIAS)),
    (None, '<html xmlns:o="urn:schemas-microsoft-com:office:office" xmlns="http://www.w3.org/TR/REC-html40">'
     '<head><style>p {background: url(http://example.com/x.png)}</style></head><body><p>Shipped today.</p>'
     '<img src="cid:image001.png@01D"></body></html>'),
    ("links", '<p>See <a href="https://myshop.example.com/">our page</a></p>'),
    ("links", '<form action="https://evil.example.com/pay"><input name="card"></form>'),
    ("links", '<img src="https://tracker.example.com/pixel.gif" width="1">'),
    ("contact", '<a href="mailto:shop.help@gmail.com">write me</a>'),
])
def test_html_is_read_with_a_parser(expected, html):
    assert judged(view(html=html)) == expected


def test_allow_listed_domains_pass():
    pipeline = Pipeline(FiltersConfig(links={"allowed_domains": ["ups.com"]}))
    allowed = pipeline.judge(view("Track it at https://www.ups.com/track?n=1Z999 or wwwapps.ups.com"), facts())
    assert allowed.bounce is None
    assert pipeline.judge(view("Or at https://fedex.com"), facts()).bounce.rule == "links"


def test_rules_follow_their_directions():
    assert judged(view("Visit www.myshop.com"), direction="buyer_to_seller") is None
    off = Pipeline(FiltersConfig(links={"enabled": False}))
    assert off.judge(view("Visit www.myshop.com"), facts()).bounce is None


def _docx(macros: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        if macros:
            archive.writestr("word/vbaProject.bin", b"\x00" * 16)
    return buffer.getvalue()


PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"
ZIP = _docx().replace(b"word/document.xml", b"other/documen.xml")


@pytest.mark.parametrize("filename,data,stripped", [
    ("invoice.pdf", PDF, False),
    ("photo.png", tiny_png(), False),
    ("notes.txt", "Größe: M\n".encode(), False),
    ("letter.docx", _docx(), False),
    ("invoice.pdf", EXE, True),           # a renamed executable
    ("invoice.pdf.exe", EXE, True),       # a double extension
    ("letter.docx", _docx(macros=True), True),
    ("letter.docm", _docx(macros=True), True),
    ("photos.zip", ZIP, True),
    ("photo.png", PDF, True),             # content does not match the name
    ("notes.txt", EXE, True),
])
def test_attachment_types_are_read_from_the_bytes(filename, data, stripped):
    attachment = Attachment("0.2", filename, "application/octet-stream", data)
    judgement = PIPELINE.judge(view("See attached.", attachments=[attachment]), facts())
    assert judgement.bounce is None
    assert (judgement.stripped_ids == {"0.2"}) is stripped


def test_attachments_over_the_limit_bounce_and_apply_both_ways():
    big = Attachment("0.2", "scan.pdf", "application/pdf", PDF + b"\0" * (10 * 1024 * 1024))
    assert judged(view("Scan attached.", attachments=[big]), direction="buyer_to_seller") == "attachments_too_large"


def test_text_attachments_are_checked_like_the_body():
    notes = Attachment("0.2", "notes.txt", "text/plain", b"More on www.myshop.com", "More on www.myshop.com")
    judgement = PIPELINE.judge(view("See notes.", attachments=[notes]), facts())
    assert judgement.bounce is None and judgement.stripped_ids == {"0.2"}
    assert judgement.strips[0].rule == "links"


@pytest.mark.parametrize("subject,category,thread,opted_out,expected", [
    ("A question about your order", None, False, True, "opt_out"),
    ("[Important] delivery on Tuesday?", None, False, True, None),
    ("Re: [important] engraving text", None, False, True, None),
    ("Important: delivery", None, False, True, "opt_out"),          # brackets required
    ("A question about your order", "handmade", False, True, None),
    ("A question about your order", None, True, True, None),        # a reply in the buyer's thread
    ("A question about your order", None, False, False, None),
])
def test_opt_out(subject, category, thread, opted_out, expected):
    message = view("Can you be home on Tuesday between 9.00 and 12.00?", subject=subject)
    assert judged(message, buyer_opted_out=opted_out, category=category, buyer_has_written=thread) == expected


def test_important_marker_does_not_carry_a_review_request():
    message = view("Please leave us a 5-star review!", subject="[Important] your order")
    assert judged(message, buyer_opted_out=True) == "not_critical"


def test_over_messaging():
    message = view("Your parcel ships tomorrow.")
    assert judged(message, unsolicited_last_day=1) is None
    assert judged(message, unsolicited_last_day=2) == "too_many_messages"
    assert judged(message, unsolicited_last_day=5, replies_to_buyer=True) is None


def _labelled(name: str) -> list[dict]:
    """The project's own set and the independent one (tests/data/labelled/independent/, written from
    the marketplace's policy by someone who had not read the rules' code)."""
    messages = []
    for folder in (LABELLED, LABELLED / "independent"):
        for message in tomllib.loads((folder / name).read_text(encoding="utf-8"))["message"]:
            message["set"] = folder.name
            messages.append(message)
    for message in messages:
        for key in ("body", "html", "subject"):
            if message.get(key):
                message[key] = (message[key].replace("{seller}", SELLER).replace("{buyer_alias}", BUYER_ALIAS)
                                .replace("{seller_alias}", SELLER_ALIAS))
    return messages


def _verdict(message: dict) -> str | None:
    bounce = PIPELINE.judge(view(message["body"], message.get("html"), message["subject"]), facts()).bounce
    return bounce.rule if bounce else None


def test_labelled_set(capsys):
    ordinary, violations = _labelled("ordinary.toml"), _labelled("violations.toml")
    false_positives = [(m["set"], m["lang"], m["subject"], _verdict(m)) for m in ordinary if _verdict(m)]
    misses = [(m["set"], m["lang"], m["rule"], m["subject"], _verdict(m)) for m in violations
              if _verdict(m) != m["rule"]]
    with capsys.disabled():
        print(f"\nlabelled set: {len(ordinary) - len(false_positives)}/{len(ordinary)} ordinary passed, "
              f"{len(violations) - len(misses)}/{len(violations)} violations caught by their rule")
        for lang in ("en", "es", "it", "id"):
            counts = Counter(m["rule"] for m in violations if m["lang"] == lang)
            print(f"  {lang}: {sum(m['lang'] == lang for m in ordinary)} ordinary, "
                  + ", ".join(f"{rule} {counts[rule]}" for rule in sorted(counts)))
    independent = [m for m in ordinary + violations if m["set"] == "independent"]
    assert len(ordinary) + len(violations) + len(EDGES.ORDINARY) + len(EDGES.EVASIVE) >= 300
    assert len(independent) >= 100
    assert {m["lang"] for m in ordinary} == {m["lang"] for m in violations} == {"en", "es", "it", "id"}
    assert {m["rule"] for m in violations} == {"links", "contact", "promotion", "review"}
    assert false_positives == []
    assert misses == []


def _edge_cases():
    import importlib.util
    spec = importlib.util.spec_from_file_location("edge_cases", LABELLED / "edge_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EDGES = _edge_cases()
# Known gaps, each a deliberate choice or work left: see the issue note.
KNOWN = {
    "v02": "letters spaced out one by one (m y s h o p . c o m) are not joined",
}


def _links_the_buyer_wrote(html: str | None) -> frozenset[str]:
    """The quoted part of a reply is the buyer's earlier message, whose links the store remembers."""
    if not html:
        return frozenset()
    import lxml.html

    quotes = lxml.html.fromstring(html).xpath('//blockquote|//*[contains(@class, "gmail_quote")]')
    return PIPELINE.links_written(view("\n".join(q.text_content() for q in quotes)))


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c[0], marks=[pytest.mark.xfail(strict=True, reason=KNOWN[c[0]])] if c[0] in KNOWN else [])
    for c in EDGES.ORDINARY + EDGES.EVASIVE
])
def test_edge_cases(case):
    """Messages written to sit on the rules' edges, in a reply to the buyer (the usual case)."""
    case_id, expected, subject, text, html = case
    message = MessageView(subject=subject, texts=(text,) if text else (), htmls=(html,) if html else (),
                          attachments=())
    edge_facts = facts(party_addresses=frozenset({EDGES.SELLER, EDGES.SELLER2, EDGES.BUYER}),
                       conversation_aliases=frozenset({EDGES.BA, EDGES.SA}), buyer_has_written=True,
                       buyer_links=_links_the_buyer_wrote(html))
    bounce = PIPELINE.judge(message, edge_facts).bounce
    assert (bounce.rule if bounce else None) == expected, bounce and bounce.snippet
