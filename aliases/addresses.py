"""Real addresses as the store keeps them: validated once, compared lower-cased."""
from __future__ import annotations

import secrets
import string

from email_validator import EmailNotValidError, validate_email

ALIAS_ALPHABET = string.ascii_lowercase + string.digits
ALIAS_LENGTH = 16  # 36**16 is about 2**82.7: over 80 bits, unguessable


class InvalidAddress(ValueError):
    pass


def normalize(address: str) -> str:
    """A real address checked for syntax (not deliverability) and lower-cased."""
    try:
        checked = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{address!r} is not a valid email address: {exc}") from None
    return checked.normalized.lower()


def new_local_part() -> str:
    """A fresh alias local part from the OS's CSPRNG, derived from nothing."""
    return "".join(secrets.choice(ALIAS_ALPHABET) for _ in range(ALIAS_LENGTH))
