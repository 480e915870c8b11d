"""Every SMTP reply the relay gives, by name, in one place to review what clients see."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    status: str  # RFC 3463 enhanced status code
    text: str

    def __call__(self, status: str | None = None, **details: str) -> str:
        """The reply line; `status` replaces the enhanced code where another server's is passed on."""
        return f"{self.code} {status or self.status} {self.text.format(**details)}"

    def __str__(self) -> str:
        return self()


FORWARDED = Reply(250, "2.0.0", "Queued as {message_id}")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient ok")

XFORWARD_REFUSED = Reply(550, "5.7.0", "XFORWARD is accepted only from the relay's trusted peers")
AUTH_FAILED = Reply(550, "5.7.26", "Message refused: {reason}")
AUTH_UNAVAILABLE = Reply(451, "4.7.5", "The sender cannot be checked just now ({reason}); try again later")
NOT_YOUR_FROM = Reply(
    550, "5.7.1",
    "Message refused: its From names an address the marketplace does not know for you; send as yourself")
RELAY_DENIED = Reply(550, "5.7.1", "Relay access denied: this server only accepts mail for its own aliases")
UNKNOWN_ALIAS = Reply(550, "5.1.1", "No such alias: check the address you are replying to")
NOT_COUNTERPART = Reply(
    550, "5.7.1",
    "This alias only accepts mail from the other party of its conversation; "
    "send from the address the marketplace knows for you",
)
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients: send to the others in a new transaction")

TOO_BIG = Reply(552, "5.3.4", "Message size exceeds the limit of {limit} bytes")
BARE_LINE_END = Reply(550, "5.6.0", "Message refused: it contains {problem}; lines must end with CRLF (RFC 5321 2.3.8)")
MAIL_LOOP = Reply(554, "5.4.6", "Message refused: it has passed {hops} relays, a mail loop")
MALFORMED = Reply(550, "5.6.0", "Message refused: {reason}")
NOT_ANONYMISED = Reply(
    550, "5.7.0", "Message refused: it could not be stripped of personal addresses (ref {ref}); please rephrase and resend"
)

UNREADABLE = Reply(554, "5.6.0", "Message refused: the relay could not read it (ref {ref})")
TOO_COSTLY = Reply(552, "5.3.4", "Message refused: it needs more {resource} than the relay allows one message")

BOUNCED = Reply(250, "2.0.0", "Received but not delivered (rule {rule}); a notice explaining why has been sent to you")
FLAGGED = Reply(250, "2.0.0", "Flag recorded: the message you flagged goes to the marketplace for review, not to the seller")
BLOCKED = Reply(550, "5.7.1", "Message not delivered: {reason}")
ALREADY_HANDLED = Reply(250, "2.0.0", "Already received: {reply}")
REPORT_RECEIVED = Reply(250, "2.0.0", "Report received")
REPORTS_ONLY = Reply(550, "5.7.1", "This address takes delivery reports only, from the null sender <>")


INTERNAL_ERROR = Reply(451, "4.3.0", "Temporary local problem, try again later (ref {ref})")
STORE_UNAVAILABLE = Reply(451, "4.3.0", "The relay cannot store the message now, try again later (ref {ref})")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, try again later")
BUSY = Reply(421, "4.3.2", "Too many connections, try again later")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections from your address, try again later")
SESSION_TOO_LONG = Reply(421, "4.4.2", "Session too long, closing; reconnect to go on")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors in this session, closing")
TOO_MANY_TRANSACTIONS = Reply(421, "4.7.0", "Too many messages in one session; reconnect to go on")
TOO_MANY_GUESSES = Reply(450, "4.7.1", "Too many refused recipients from here; try again later")
TOO_MANY_MESSAGES = Reply(451, "4.7.1", "Too many {what} this hour; try again later")
HEADER_TOO_BIG = Reply(552, "5.3.4", "Message refused: its header is over the limit ({what})")
BAD_SENDER = Reply(501, "5.1.7", "Bad sender address: {why}")
TLS_FIRST = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
TLS_FAILED = Reply(454, "4.7.0", "TLS not available due to temporary reason")
