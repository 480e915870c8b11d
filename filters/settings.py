"""The [filters] section of relay.toml: which rule runs, in which direction, with which lists."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["seller_to_buyer", "buyer_to_seller"]
BOTH: list[Direction] = ["seller_to_buyer", "buyer_to_seller"]
SELLER_ONLY: list[Direction] = ["seller_to_buyer"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    directions: list[Direction] = Field(default_factory=lambda: list(SELLER_ONLY))


class LinksRule(Rule):
    allowed_domains: list[str] = Field(default_factory=list)
    """Registered domains (and their subdomains) the marketplace permits, e.g. a carrier's tracking site."""


class PhraseRule(Rule):
    extra_phrases: list[str] = Field(default_factory=list)
    """More regular expressions, matched case- and accent-insensitively on word boundaries."""


class AttachmentsRule(Rule):
    directions: list[Direction] = Field(default_factory=lambda: list(BOTH))
    max_total_bytes: int = Field(10 * 1024 * 1024, gt=0)
    allowed_extensions: list[str] = Field(default_factory=lambda: [
        "txt", "pdf", "doc", "docx", "jpg", "jpeg", "gif", "tif", "tiff", "bmp", "png"])


class OptOutRule(Rule):
    critical_markers: list[str] = Field(default_factory=lambda: ["[Important]"])
    exempt_categories: list[str] = Field(default_factory=lambda: ["handmade", "wine", "custom"])


class FrequencyRule(Rule):
    max_unsolicited_per_day: int = Field(2, ge=0)


class SanctionsRule(BaseModel):
    """The seller's record: flags, blocked messages and [Important] misuse; past the threshold, a hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    max_violations: int = Field(3, ge=1)
    """Violations in window_days after which the seller's mail to buyers is held until reinstated."""
    window_days: float = Field(30, gt=0)
    flag_word: str = Field("FLAG", min_length=2, pattern=r"^[A-Za-z]+$")
    """A buyer flags a seller's message by replying with this word as the subject or first line."""
    appeal: str = "write to the marketplace's seller support, naming this notice"
    """How a held seller appeals, said in the hold notice."""


class ImagesReading(BaseModel):
    """Image attachments read for the content rules: OCR (Tesseract) and QR/bar codes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    min_bytes: int = Field(2048, ge=0)
    """Smaller pictures are not OCRed (icons, spacers); their QR codes are still read."""
    max_pixels: int = Field(4_000_000, gt=0)
    """Larger pictures are scaled down to this before OCR: a printed URL stays readable, the cost bounded."""
    timeout_seconds: float = Field(10.0, gt=0)
    seconds_per_message: float = Field(30.0, gt=0)
    """All images of one message together; the ones left when it is spent count as unreadable."""
    languages: str = "eng+spa+ita+ind"
    when_unreadable: Literal["pass", "strip"] = "pass"
    """An image that could not be read (no OCR engine installed, timed out, undecodable): delivered or removed."""
    when_found: Literal["strip", "bounce"] = "strip"
    """A link, contact or promotion read in an image: the image is removed with a note, or the message bounces."""


class DocumentsReading(BaseModel):
    """PDF and Word attachments read for the content rules: their text and link targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    max_pages: int = Field(50, gt=0)
    max_chars: int = Field(1_000_000, gt=0)
    when_unreadable: Literal["pass", "strip"] = "pass"
    """A document that could not be read whole (encrypted, damaged, too long): delivered or removed."""


class FiltersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    attachments: AttachmentsRule = AttachmentsRule()
    optout: OptOutRule = OptOutRule()
    links: LinksRule = LinksRule()
    contact: Rule = Rule()
    promotion: PhraseRule = PhraseRule()
    review: PhraseRule = PhraseRule()
    frequency: FrequencyRule = FrequencyRule()
    sanctions: SanctionsRule = SanctionsRule()
    images: ImagesReading = ImagesReading()
    documents: DocumentsReading = DocumentsReading()
