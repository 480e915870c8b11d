"""The notice a sender gets when a message was blocked or lost attachments: an RFC 3464 report.

multipart/report; report-type=delivery-status, with a human-readable part in
the sender's language, a message/delivery-status part, and the original's
headers (text/rfc822-headers) in which the caller has already replaced the
recipient's real address with its alias. It is sent from <> (the caller's
job) and marked Auto-Submitted, so that two relays can never loop (RFC 3834).

The notice is written here field by field from validated parts, under one set
of rules, rather than by the stdlib's generator: header objects made under one
email policy and written under another once turned a short accented subject
into a crash and the sender's message into a 451 retried for days. Whatever
the sender wrote (subject, snippet, file names) is cleaned of control and
line-break characters and encoded as RFC 2047 words; the delivery-status
fields are ASCII; the bodies are base64.
"""
from __future__ import annotations

import base64
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from email.header import Header
from email.utils import format_datetime, formataddr

from .texts import render, rule_text, texts

CRLF = "\r\n"
_SUBJECT_LIMIT = 200


@dataclass(frozen=True)
class Blocked:
    """What happened to the sender's message, in the rules' own words."""

    subject: str
    date: str
    order_id: str | None
    rule: str
    reason: str
    snippet: str | None = None
    removed: tuple[tuple[str, str], ...] = ()
    """(filename, rule) of each attachment removed from a message that was delivered."""
    delayed: bool = False
    """Not delivered yet and still being tried (a delay warning), rather than not delivered at all."""
    appeal: str | None = None
    """How to appeal ([filters.sanctions] appeal), for a notice that the sender is on hold."""
    flag_word: str | None = None
    """The word a buyer replies with to flag a seller's message; a buyer's notice says so."""

    @property
    def delivered(self) -> bool:
        return bool(self.removed) and self.rule == "attachment_removed"

    def bare(self) -> Blocked:
        """The same notice without anything the sender wrote: what is sent when the full one cannot be."""
        return Blocked(subject="", date=self.date, order_id=self.order_id, rule=self.rule, reason=self.reason,
                       removed=tuple(("-", rule) for _, rule in self.removed), delayed=self.delayed,
                       appeal=self.appeal, flag_word=self.flag_word)


@dataclass(frozen=True)
class Sender:
    address: str
    locale: str


def shown(text: str | None, limit: int = 1000) -> str:
    """Sender-written text fit to show in a notice: one line, nothing a reader cannot see, bounded."""
    if not text:
        return ""
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") else c for c in text
                   if unicodedata.category(c) not in ("Cf", "Co", "Cn") or c in "\t")
    return " ".join(kept.split())[:limit]


def human_text(blocked: Blocked, locale: str, recipient_role: str) -> str:
    t = texts(locale)["notice"]
    role = texts(locale)["roles"].get(recipient_role, recipient_role)
    # The rule's own words are English (they go to the log and Diagnostic-Code);
    # the sender reads the translated explanation of the rule instead.
    values = dict(subject=shown(blocked.subject, _SUBJECT_LIMIT) or "-", date=shown(blocked.date, 100),
                  order=shown(blocked.order_id, 100), reason=rule_text(locale, blocked.rule, "note"),
                  snippet=shown(blocked.snippet, 300), recipient_role=role)
    lines = [t["greeting"], ""]
    if blocked.delivered:
        lines.append(render(t["stripped"], **values))
        for name, rule in blocked.removed:
            lines.append(f"  - {shown(name, 200)}: {rule_text(locale, rule, 'title')}")
        advice = [rule_text(locale, rule, "advice") for rule in dict.fromkeys(r for _, r in blocked.removed)]
        lines += ["", render(t["message_line"], **values)]
        if blocked.order_id:
            lines.append(render(t["order_line"], **values))
        lines += [render(t["next_line"], advice=" ".join(advice))]
    else:
        lines += [render(t["delayed" if blocked.delayed else "blocked"], **values), "",
                  render(t["message_line"], **values)]
        if blocked.order_id:
            lines.append(render(t["order_line"], **values))
        lines += [render(t["rule_line"], rule_title=rule_text(locale, blocked.rule, "title")),
                  render(t["why_line"], **values)]
        if values["snippet"]:
            lines.append(render(t["snippet_line"], **values))
        lines.append(render(t["next_line"], advice=rule_text(locale, blocked.rule, "advice")))
        if blocked.appeal:
            lines.append(render(t["appeal_line"], appeal=shown(blocked.appeal, 300)))
    if blocked.flag_word and recipient_role == "seller":  # the notice goes to a buyer
        lines += ["", render(t["flag_line"], flag=blocked.flag_word)]
    return "\n".join(lines + ["", t["closing"], ""])


def _field(name: str, text: str) -> str:
    """One header field: plain folded ASCII where that is safe, else RFC 2047 words in UTF-8."""
    text = shown(text)
    charset = "us-ascii" if text.isascii() and "=?" not in text else "utf-8"
    return f"{name}: " + Header(text, charset, header_name=name).encode(linesep=CRLF) + CRLF


def _ascii(text: str) -> str:
    """A delivery-status field's value: RFC 3464 wants US-ASCII."""
    return shown(text, 300).encode("ascii", "replace").decode("ascii")


def _base64_part(content_type: str, text: str) -> str:
    encoded = base64.encodebytes(text.replace("\r\n", "\n").replace("\n", CRLF).encode("utf-8")).decode("ascii")
    return f"Content-Type: {content_type}{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}" + encoded.replace("\n", CRLF)


def _recipient_field(address: str) -> str:
    # The envelope sender as the session accepted it; anything that could break the field leaves it out.
    if not address or any(c in "<>\r\n" or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in address):
        return "To: undisclosed-recipients:;" + CRLF
    return f"To: <{address}>{CRLF}"


def build(*, blocked: Blocked, sender: Sender, recipient_role: str, recipient_alias: str,
          original_headers: str, from_name: str, from_address: str, reporting_mta: str) -> bytes:
    locale = sender.locale
    t = texts(locale)["notice"]
    domain = from_address.rpartition("@")[2]
    boundary = "=_notice_" + secrets.token_hex(12)
    template = "subject_stripped" if blocked.delivered else "subject_delayed" if blocked.delayed else "subject"
    subject = render(t[template], subject=shown(blocked.subject, _SUBJECT_LIMIT) or "-")
    action, code = ("delivered", "2.6.0") if blocked.delivered else ("delayed", "4.4.7") if blocked.delayed \
        else ("failed", "5.7.1" if blocked.rule != "delivery_failed" else "5.0.0")
    head = (
        f"From: {formataddr((from_name, from_address))}{CRLF}"
        + _recipient_field(sender.address)
        + _field("Subject", subject)
        + f"Date: {format_datetime(datetime.now(timezone.utc))}{CRLF}"
        + f"Message-ID: <{secrets.token_hex(12)}@{domain}>{CRLF}"
        + f"Auto-Submitted: auto-replied{CRLF}"
        + f"Content-Language: {_ascii(locale)}{CRLF}"
        + f"MIME-Version: 1.0{CRLF}"
        + f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"{CRLF}'
    )
    status = (
        f"Content-Type: message/delivery-status{CRLF}{CRLF}"
        f"Reporting-MTA: dns; {_ascii(reporting_mta)}{CRLF}{CRLF}"
        f"Final-Recipient: rfc822; {_ascii(recipient_alias)}{CRLF}"
        f"Action: {action}{CRLF}"
        f"Status: {code}{CRLF}"
        f"Diagnostic-Code: smtp; {_ascii(blocked.rule + ': ' + blocked.reason)[:200]}{CRLF}"
    )
    parts = [_base64_part('text/plain; charset="utf-8"', human_text(blocked, locale, recipient_role)), status]
    if original_headers:
        parts.append(_base64_part('text/rfc822-headers; charset="utf-8"', original_headers))
    body = "".join(f"--{boundary}{CRLF}{part}{CRLF}" for part in parts) + f"--{boundary}--{CRLF}"
    return (head + CRLF + body).encode("utf-8")
