"""Reports from downstream: what the recipient's mail system says, sent to a message's bounce address.

Every message leaves with its own envelope sender, bounce+TOKEN@ALIAS_DOMAIN.
A delivery report (RFC 3464, or the formats large providers write instead)
comes back there from <>. The relay reads it for two facts only, failed or
delayed and the status code, marks the message so, and tells the original
sender in its own words: never the recipient's address, mailbox, hosts or
their provider's text. A report about a notice, an auto-reply (RFC 3834), or
anything it cannot read is logged and dropped, never answered.

Reading runs in a worker, under the same limits as any message: a report is
input from outside too.
"""
from __future__ import annotations

import email
import logging
import re
from dataclasses import dataclass
from email.policy import compat32

from flufl.bounce import all_failures

log = logging.getLogger(__name__)
FAILED, DELAYED, AUTO_REPLY, UNKNOWN = "failed", "delayed", "auto-reply", "unknown"
_STATUS = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
_ACTION = re.compile(r"(?im)^action:\s*(failed|delayed)\b")
_DSN_STATUS = re.compile(r"(?im)^status:\s*([245]\.\d{1,3}\.\d{1,3})\b")
_REPORTERS = re.compile(r"(?i)\b(mailer-daemon|postmaster|mail delivery)\b")
_REPORT_SUBJECT = re.compile(
    r"(?i)undeliver|delivery status|delivery (failure|failed|notification)|failure notice|returned mail|"
    r"could not be delivered|mail delivery failed|non[- ]?delivery")
_AUTO_REPLY_SUBJECT = re.compile(
    r"(?i)auto(matic)?[ -]?(reply|response|antwort|risposta|respuesta)|out of (the )?office|vacation|abwesen|"
    r"fuera de la oficina|fuori sede|balasan otomatis")
_READ_LIMIT = 256 * 1024  # a report's first part and its status; the returned message behind it is not read


@dataclass(frozen=True)
class Reading:
    kind: str
    status: str | None = None
    """The enhanced status code the report gives, if any."""


def _text(message) -> str:
    """The report's readable text, as far as the reader needs to look."""
    pieces = []
    for part in message.walk():
        if part.get_content_maintype() in ("text", "message") and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                pieces.append(payload[:_READ_LIMIT].decode("utf-8", "replace"))
        if sum(map(len, pieces)) > _READ_LIMIT:
            break
    return "\n".join(pieces)


def read_report(raw: bytes) -> Reading:
    """What a report sent to a bounce address says (in a worker: the input is a stranger's)."""
    message = email.message_from_bytes(raw[: 4 * _READ_LIMIT], policy=compat32)
    # The raw text too: reports with broken MIME (a boundary that never occurs) are common.
    text = _text(message) + "\n" + raw[:_READ_LIMIT].decode("utf-8", "replace")
    dsn, loose = _DSN_STATUS.search(text), _STATUS.search(text)
    code = dsn.group(1) if dsn else ".".join(loose.groups()) if loose else None
    actions = {match.lower() for match in _ACTION.findall(text)}
    if "failed" in actions:
        return Reading(FAILED, code)
    if "delayed" in actions:
        return Reading(DELAYED, code)
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # flufl.bounce's scanners are lenient, but the input is anyone's
        temporary, permanent = frozenset(), frozenset()
    if permanent:
        return Reading(FAILED, code if code and code[0] == "5" else "5.0.0")
    if temporary:
        return Reading(DELAYED, code if code and code[0] == "4" else "4.0.0")
    sender, subject = str(message.get("from", "")), str(message.get("subject", ""))
    if (_REPORTERS.search(sender) or _REPORT_SUBJECT.search(subject)) and code:
        return Reading(FAILED if code[0] == "5" else DELAYED, code)
    automatic = str(message.get("auto-submitted", "")).strip().lower()
    if automatic.startswith("auto-replied") or _AUTO_REPLY_SUBJECT.search(subject) or message.get("x-autoreply"):
        return Reading(AUTO_REPLY)
    return Reading(UNKNOWN, code)
