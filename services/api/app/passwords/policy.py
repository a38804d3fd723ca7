"""What a new password must meet: a length in code points after NFC, not a common, breached or guessable
password, no context words, and (when enabled) not known to Have I Been Pwned.

No composition rules and no rotation (NIST SP 800-63B-4; ASVS 6.2.5, 6.2.10); the blocklist of commonly
used, expected or compromised values that 63B-4 asks for is the two shipped lists, zxcvbn's estimate
(`strength`) and the range API (`pwned`). Every refusal is a 422 `PyauthError` with its own stable code.
`check_password_locally` holds every check that needs no network; `check_new_password` is the full check
that every caller awaits.
"""

import gzip
import unicodedata
from functools import cache
from importlib import resources
from typing import Annotated

from pydantic import Field

from app.core.config import Settings
from app.core.errors import PyauthError
from app.passwords import pwned, strength

COMMON_PASSWORDS_FILE = "common-passwords.txt.gz"
BREACHED_PASSWORDS_FILE = "breached-passwords.txt.gz"

# A new password in a request body, as the OpenAPI document states it to generated clients: the length
# rule of the default settings (a deployment's PASSWORD_MIN_LENGTH / PASSWORD_MAX_LENGTH replace it; the
# server's answer, 422 `password_too_short` / `password_too_long`, is what counts), in code points after
# NFC. The rules a client cannot check (common, breached, guessable, context words) stay in the server.
# Validation itself only stops absurd bodies early (4096), so every policy refusal keeps its own code.
_MIN_DEFAULT = Settings.model_fields["PASSWORD_MIN_LENGTH"].default
_MAX_DEFAULT = Settings.model_fields["PASSWORD_MAX_LENGTH"].default
NewPassword = Annotated[
    str,
    Field(
        max_length=4096,
        description=f"At least {_MIN_DEFAULT} and at most {_MAX_DEFAULT} characters "
        "(Unicode code points after NFC normalisation; the deployment's PASSWORD_MIN_LENGTH and "
        "PASSWORD_MAX_LENGTH, these by default). "
        "Any characters, no composition rules; a common, breached or easily guessed password, or one that "
        "contains the email's name or the service's name, is refused.",
        json_schema_extra={"minLength": _MIN_DEFAULT, "maxLength": _MAX_DEFAULT},
        examples=["correct horse battery staple"],
    ),
]
# A password the account already has: never empty (stated, not enforced: an empty one stays a 400
# `invalid_current_password`, counted like any wrong one); its length rule may have changed since it was set.
CurrentPassword = Annotated[
    str,
    Field(max_length=4096, description="The account's current password.", json_schema_extra={"minLength": 1}),
]

# Shorter context words would refuse too many unrelated passwords ("al" from al@example.com).
_MIN_CONTEXT_WORD_LENGTH = 3


class PasswordTooLong(PyauthError):
    status_code = 422
    code = "password_too_long"
    message = "The password is too long."


class PasswordTooShort(PyauthError):
    status_code = 422
    code = "password_too_short"
    message = "The password is too short."


class PasswordTooCommon(PyauthError):
    status_code = 422
    code = "password_too_common"
    message = "This password is one of the most commonly used passwords. Choose another."


class PasswordTooGuessable(PyauthError):
    status_code = 422
    code = "password_too_guessable"
    message = "This password follows a pattern that is easy to guess. Choose another."


class PasswordContainsContext(PyauthError):
    status_code = 422
    code = "password_contains_context"
    message = "The password must not contain your email address's name or domain, or the service's name."


class PasswordNotText(PyauthError):
    status_code = 422
    code = "password_not_text"
    message = "The password contains characters that are not valid Unicode text."


# Every refusal of a new password: what an endpoint that takes one can answer with 422.
NEW_PASSWORD_ERRORS: tuple[type[PyauthError], ...] = (
    PasswordTooLong,
    PasswordTooShort,
    PasswordTooCommon,
    PasswordTooGuessable,
    PasswordContainsContext,
    PasswordNotText,
)


def normalize_password(password: str) -> str:
    """NFC, so that the same visible password typed on different systems hashes the same (63B)."""
    return unicodedata.normalize("NFC", password)


def refuse_oversized(password: str, settings: Settings) -> None:
    """Refuse a password far beyond the maximum, before NFC or hashing spends any work on it."""
    byte_limit = 4 * settings.PASSWORD_MAX_LENGTH
    # A code point is 1 to 4 bytes of UTF-8, so a string longer than the byte limit in code points is
    # over it in bytes too: refuse a huge input without copying it into an encoded buffer.
    if len(password) > byte_limit or len(password.encode("utf-8", "surrogatepass")) > byte_limit:
        raise PasswordTooLong(_too_long_detail(settings))


async def check_new_password(password: str, *, settings: Settings, email: str | None) -> str:
    """Return the NFC form of `password` to hash, or raise the first refusal that applies."""
    refuse_oversized(password, settings)
    # On the event loop: at most ~1.5 ms of CPU (the estimate's bound, `strength`), which holds the GIL
    # throughout, so a thread would only add its hand-offs. The lists are read at startup (`load`).
    normalized = check_password_locally(password, settings=settings, email=email)
    if settings.HIBP_ENABLED:
        count = await pwned.times_pwned(normalized, settings)
        if count is not None and count >= settings.HIBP_MIN_COUNT:
            raise PasswordTooCommon(
                "This password has appeared in a data breach (Have I Been Pwned). Choose another."
            )
    return normalized


def check_password_locally(password: str, *, settings: Settings, email: str | None) -> str:
    """Every check that needs no network, cheapest first: the NFC form, or the first refusal."""
    refuse_oversized(password, settings)
    normalized = normalize_password(password)
    if len(normalized) > settings.PASSWORD_MAX_LENGTH:
        raise PasswordTooLong(_too_long_detail(settings))
    if len(normalized) < settings.PASSWORD_MIN_LENGTH:
        raise PasswordTooShort(f"Use at least {settings.PASSWORD_MIN_LENGTH} characters.")
    if not _is_text(normalized):
        raise PasswordNotText()
    folded = normalized.casefold()
    if folded in common_passwords():
        raise PasswordTooCommon()
    if folded in breached_passwords():
        raise PasswordTooCommon(
            "This password is in a list of passwords exposed in data breaches. Choose another."
        )
    if any(word in folded for word in _context_words(settings, email)):
        raise PasswordContainsContext()
    if settings.PASSWORD_MIN_SCORE > 0:
        estimate = strength.estimate(normalized)
        if estimate.score < settings.PASSWORD_MIN_SCORE:
            raise PasswordTooGuessable(_guessable_detail(estimate.warning))
    return normalized


def load(settings: Settings) -> None:
    """Read the shipped lists and make zxcvbn build its own (~90 ms), so that no request pays for it on
    the event loop. A worker calls this at startup; the first check would otherwise."""
    common_passwords()
    breached_passwords()
    if settings.PASSWORD_MIN_SCORE > 0:
        strength.estimate("warm-up")


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list, read once on first use, NFC and casefolded like the passwords compared to it."""
    return _load(COMMON_PASSWORDS_FILE)


@cache
def breached_passwords() -> frozenset[str]:
    """The shipped breached list (8+ code points, already NFC and casefolded), read once on first use."""
    return _load(BREACHED_PASSWORDS_FILE)


def _load(name: str) -> frozenset[str]:
    data = resources.files("app.passwords").joinpath(name).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return frozenset(normalize_password(line).casefold() for line in lines if line)


def _guessable_detail(warning: str) -> str:
    # zxcvbn's warnings name the pattern ("Straight rows of keys are easy to guess"), never the password.
    if not warning:
        return PasswordTooGuessable.message
    return f"This password is easy to guess ({warning.rstrip('.')}). Choose another."


def _too_long_detail(settings: Settings) -> str:
    return f"Use at most {settings.PASSWORD_MAX_LENGTH} characters."


def _is_text(password: str) -> bool:
    # JSON allows a lone surrogate ("\ud800") and pydantic passes it through; such a string cannot be
    # encoded as UTF-8, so it could never be typed again and would crash the hasher.
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _context_words(settings: Settings, email: str | None) -> list[str]:
    words = [settings.SERVICE_NAME]
    if email is not None and "@" in email:
        local_part, _, domain = email.rpartition("@")
        words += [local_part, domain.split(".", 1)[0]]
    folded = (normalize_password(word).casefold() for word in words)
    return [word for word in folded if len(word) >= _MIN_CONTEXT_WORD_LENGTH]
