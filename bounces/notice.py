"""The notice a sender gets when a message was blocked or lost attachments: an RFC 3464 report.

multipart/report; report-type=delivery-status, with a human-readable part in
the sender's language, a message/delivery-status part, and the original's
headers (text/rfc822-headers) in which the caller has already replaced the
recipient's real address with its alias. It is sent from <> (the caller's
job) and marked Auto-Submitted, so that two relays can never loop (RFC 3834).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

from .texts import render, rule_text, texts


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

    @property
    def delivered(self) -> bool:
        return bool(self.removed) and self.rule == "attachment_removed"


@dataclass(frozen=True)
class Sender:
    address: str
    locale: str


def human_text(blocked: Blocked, locale: str, recipient_role: str) -> str:
    t = texts(locale)["notice"]
    role = texts(locale)["roles"].get(recipient_role, recipient_role)
    # The rule's own words are English (they go to the log and Diagnostic-Code);
    # the sender reads the translated explanation of the rule instead.
    values = dict(subject=blocked.subject or "-", date=blocked.date, order=blocked.order_id,
                  reason=rule_text(locale, blocked.rule, "note"), snippet=blocked.snippet, recipient_role=role)
    lines = [t["greeting"], ""]
    if blocked.delivered:
        lines.append(render(t["stripped"], **values))
        for name, rule in blocked.removed:
            lines.append(f"  - {name}: {rule_text(locale, rule, 'title')}")
        advice = [rule_text(locale, rule, "advice") for rule in dict.fromkeys(r for _, r in blocked.removed)]
        lines += ["", render(t["message_line"], **values)]
        if blocked.order_id:
            lines.append(render(t["order_line"], **values))
        lines += [render(t["next_line"], advice=" ".join(advice))]
    else:
        lines += [render(t["blocked"], **values), "", render(t["message_line"], **values)]
        if blocked.order_id:
            lines.append(render(t["order_line"], **values))
        lines += [render(t["rule_line"], rule_title=rule_text(locale, blocked.rule, "title")),
                  render(t["why_line"], **values)]
        if blocked.snippet:
            lines.append(render(t["snippet_line"], **values))
        lines.append(render(t["next_line"], advice=rule_text(locale, blocked.rule, "advice")))
    return "\n".join(lines + ["", t["closing"], ""])


def build(*, blocked: Blocked, sender: Sender, recipient_role: str, recipient_alias: str,
          original_headers: str, from_name: str, from_address: str, reporting_mta: str) -> bytes:
    locale = sender.locale
    t = texts(locale)["notice"]
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = formataddr((from_name, from_address))
    report["To"] = sender.address
    report["Subject"] = render(t["subject_stripped" if blocked.delivered else "subject"], subject=blocked.subject or "-")
    report["Date"] = format_datetime(datetime.now(timezone.utc))
    report["Message-ID"] = make_msgid(domain=from_address.rpartition("@")[2])
    report["Auto-Submitted"] = "auto-replied"
    report["Content-Language"] = locale

    report.attach(MIMEText(human_text(blocked, locale, recipient_role), "plain", "utf-8"))

    per_message, per_recipient = Message(), Message()
    per_message["Reporting-MTA"] = f"dns; {reporting_mta}"
    per_recipient["Final-Recipient"] = f"rfc822; {recipient_alias}"
    per_recipient["Action"] = "delivered" if blocked.delivered else "failed"
    per_recipient["Status"] = "2.6.0" if blocked.delivered else "5.7.1"
    per_recipient["Diagnostic-Code"] = f"smtp; {blocked.rule}: {' '.join(blocked.reason.split())[:200]}"
    status = Message()
    status["Content-Type"] = "message/delivery-status"
    status.set_payload([per_message, per_recipient])
    report.attach(status)

    report.attach(MIMEText(original_headers, "rfc822-headers", "utf-8"))
    return report.as_bytes(policy=SMTP)
