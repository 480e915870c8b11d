"""Messages the relay writes for a party: standard messages by name, review requests, vacation replies.

Their texts are the marketplace's, per locale, in TOML like the notices'
(relay/templates/LOCALE.toml, or [messages] templates). A seller chooses a
template and gives its fields; nothing else of theirs goes in, so there is
nothing for the content filters to judge, and the fields themselves are held
to short plain values (no links, no addresses, one line).
"""
from __future__ import annotations

import base64
import re
import tomllib
from dataclasses import dataclass
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import lru_cache
from pathlib import Path
from string import Template

from aliases.views import REVIEW_REQUEST

from .rewrite import clean_display_name

SHIPPED = Path(__file__).parent / "templates"
DEFAULT_LOCALE = "en"
AUTO_REPLY = "auto_reply"  # REVIEW_REQUEST is both the template's name and the message log's kind
RESERVED = {AUTO_REPLY, REVIEW_REQUEST}
FILLED_BY_RELAY = frozenset({"order", "seller", "until", "subject"})
_FIELD = re.compile(r"[\w .,:;/#()'+\-]{1,80}")
_LINKISH = re.compile(r"(?i)(://|www\.|@|\.(com|net|org|shop|store|io|co|me|info|biz|xyz|app|link)\b)")


class TemplateError(ValueError):
    """A template or its fields cannot be used; the text says which and why."""


@dataclass(frozen=True)
class StandardText:
    name: str
    subject: str
    body: str
    critical: bool
    """Goes to a buyer who opted out too (delivery scheduling, shipping-address problems)."""

    @property
    def fields(self) -> frozenset[str]:
        """The fields the sender must give (those the relay fills itself excluded)."""
        names = {m.group("named") or m.group("braced") for text in (self.subject, self.body)
                 for m in Template.pattern.finditer(text) if m.group("named") or m.group("braced")}
        return frozenset(names) - FILLED_BY_RELAY


class Templates:
    def __init__(self, folder: Path | None = None):
        self.folder = folder or SHIPPED
        self.by_locale = _load(str(self.folder))
        if DEFAULT_LOCALE not in self.by_locale:
            raise TemplateError(f"{self.folder}: no {DEFAULT_LOCALE}.toml")
        self.check_reserved()

    def names(self) -> list[str]:
        return sorted(name for name in self.by_locale[DEFAULT_LOCALE] if name not in RESERVED)

    def check_reserved(self) -> None:
        """The relay's own texts must be there: a vacation would otherwise fail every buyer's message."""
        for name in sorted(RESERVED):
            if name not in self.by_locale[DEFAULT_LOCALE]:
                raise TemplateError(f"{self.folder}/{DEFAULT_LOCALE}.toml: [{name}] is missing; the relay needs it")

    def get(self, name: str, locale: str) -> StandardText:
        chosen = self.by_locale.get(locale, {}).get(name) or self.by_locale[DEFAULT_LOCALE].get(name)
        if chosen is None:
            raise TemplateError(f"no standard message named {name!r}; there are: {', '.join(self.names())}")
        return chosen

    def fill(self, name: str, locale: str, given: dict[str, str], filled: dict[str, str]) -> tuple[str, str, bool]:
        """(subject, body, critical) in the reader's language, or TemplateError naming the field at fault."""
        text = self.get(name, locale)
        missing = sorted(text.fields - set(given))
        if missing:
            raise TemplateError(f"fields.{missing[0]}: required by the standard message {name!r}")
        unknown = sorted(set(given) - text.fields)
        if unknown:
            raise TemplateError(f"fields.{unknown[0]}: not a field of {name!r} (it has: "
                                f"{', '.join(sorted(text.fields)) or 'none'})")
        for key, value in given.items():
            if not _FIELD.fullmatch(value) or _LINKISH.search(value):
                raise TemplateError(f"fields.{key}: must be a short plain value (letters, digits, dates, "
                                    f"up to 80 characters; no links or addresses)")
        values = {**given, **filled}
        subject = " ".join(Template(text.subject).safe_substitute(values).split())
        return subject, Template(text.body).safe_substitute(values), text.critical


@lru_cache(maxsize=8)
def _load(folder: str) -> dict[str, dict[str, StandardText]]:
    found: dict[str, dict[str, StandardText]] = {}
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise TemplateError(f"{path}: {exc}") from None
        texts = {}
        for name, table in data.items():
            if not isinstance(table, dict) or not isinstance(table.get("subject"), str) \
                    or not isinstance(table.get("body"), str):
                raise TemplateError(f"{path}: [{name}] needs a subject and a body")
            texts[name] = StandardText(name, table["subject"], table["body"], bool(table.get("critical", False)))
        found[path.stem] = texts
    return found


def _subject(subject: str) -> str:
    """One line; encoded words only when it needs them (RFC 2047)."""
    subject = " ".join(subject.split())
    return subject if subject.isascii() and len(subject) < 900 else Header(subject, "utf-8").encode(linesep="\r\n")


def letter(*, sender_name: str, sender_alias: str, recipient: str, subject: str, body: str, message_id: str,
           date, in_reply_to: str | None = None, auto_submitted: str | None = None) -> bytes:
    """A plain-text message from a party's alias, each field written by the relay itself."""
    def field(name: str, value: str) -> str:
        return f"{name}: {value}\r\n"

    lines = [
        field("From", formataddr((clean_display_name(sender_name), sender_alias), charset="utf-8")),
        field("To", recipient),
        field("Subject", _subject(subject)),
        field("Date", format_datetime(date)),
        field("Message-ID", message_id),
    ]
    if in_reply_to:
        lines += [field("In-Reply-To", in_reply_to), field("References", in_reply_to)]
    if auto_submitted:
        lines.append(field("Auto-Submitted", auto_submitted))
    lines += [field("MIME-Version", "1.0"), field("Content-Type", "text/plain; charset=utf-8"),
              field("Content-Transfer-Encoding", "base64")]
    encoded = base64.encodebytes(body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"))
    # UTF-8 where an address needs it (SMTPUTF8, RFC 6532): delivery asks for SMTPUTF8 then.
    return ("".join(lines) + "\r\n").encode("utf-8") + encoded.replace(b"\n", b"\r\n")
