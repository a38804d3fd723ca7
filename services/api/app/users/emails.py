"""Email addresses: validated with email-validator and reduced to one canonical form.

The canonical form is what the unique index holds, so `Alice@Example.COM ` and `alice@example.com` are one
account. Beyond email-validator's normalisation (NFC, lower-cased domain, IDNA) the local part is lower-cased
too: almost every mail system treats it case-insensitively, and two accounts that differ only in case are
an account-takeover trap.
"""

import unicodedata

from email_validator import EmailNotValidError, validate_email

from app.core.errors import PyauthError

MAX_EMAIL_LENGTH = 320


class InvalidEmail(PyauthError):
    status_code = 422
    code = "invalid_email"
    message = "The email address is not valid."


def canonicalize_email(raw: str) -> str:
    candidate = unicodedata.normalize("NFC", raw.strip())
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidEmail()
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"The email address is not valid: {exc}") from None
    return result.normalized.lower()
