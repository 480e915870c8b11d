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


class FiltersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    attachments: AttachmentsRule = AttachmentsRule()
    optout: OptOutRule = OptOutRule()
    links: LinksRule = LinksRule()
    contact: Rule = Rule()
    promotion: PhraseRule = PhraseRule()
    review: PhraseRule = PhraseRule()
    frequency: FrequencyRule = FrequencyRule()
