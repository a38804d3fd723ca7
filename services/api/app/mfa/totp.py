"""TOTP (RFC 6238) with pyotp: 30-second steps, 6 digits, HMAC-SHA-1 (what authenticator apps support),
a window of one step either side for clock drift (RFC 6238 §5.2).

The time is always the injected clock's (`ctx.now`), never the system's. `matching_step` answers *which*
step a code belongs to, so that the caller can refuse a code of a step already used (RFC 6238 §5.2: "the
verifier MUST NOT accept the second attempt of the same OTP").
"""

import hmac
from datetime import datetime
from typing import Final

import pyotp

DIGITS: Final = 6
PERIOD_SECONDS: Final = 30
DRIFT_STEPS: Final = 1  # one step before and after the current one


def new_secret() -> str:
    """160 random bits (RFC 4226 §4 recommends them), base32 as authenticator apps expect."""
    return pyotp.random_base32(length=32)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS)  # SHA-1 is pyotp's default


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app reads (from a QR code)."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def code_at(secret: str, now: datetime) -> str:
    """The code of the step `now` falls in (for tests and tools)."""
    return _totp(secret).at(now)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (RFC 6238 T) within the drift window whose code is `code`, else None. Every step of
    the window is compared in constant time."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = _totp(secret)
    current = totp.timecode(now)
    found = None
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(now, counter_offset=offset), code) and found is None:
            found = current + offset
    return found
