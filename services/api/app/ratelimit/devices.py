"""Known devices (OWASP "Slow Down Online Guessing Attacks with Device Cookies").

A successful password login hands the client a device token: 256 random bits, stored only as a SHA-256
digest, bound to the account, valid for DEVICE_TOKEN_TTL_SECONDS. A later login that presents it for the
same account is throttled on the device's own counter (the same schedule as the account's), so failures
from anywhere else never slow or lock the owner out; and its success lifts the account's lock. The token
grants nothing by itself: the password is still checked. Each success rotates it (OWASP: a new device
cookie per successful login). A device that reaches LOGIN_MAX_FAILURES itself is no longer trusted: its
holder then counts on the account like anyone else. An unknown, expired or foreign token simply makes the
client untrusted.
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.database import CteWrite
from app.core.opaque_tokens import digest, new_token
from app.ratelimit import repository
from app.ratelimit.models import LoginDevice
from app.ratelimit.service import Reservation, refusal

# A client that does not keep its device token gets a new one at every login: keep the newest few.
MAX_DEVICES_PER_USER = 20
MAX_DEVICE_TOKEN_LENGTH = 512


async def recognise(
    db: AsyncSession, token: str | None, email: str, *, settings: Settings, now: datetime
) -> LoginDevice | None:
    """The device behind `token` if it is live and belongs to the account `email`, else None. The query
    runs whenever a token is presented, for unknown accounts too, so its cost tells nothing."""
    if not token or len(token) > MAX_DEVICE_TOKEN_LENGTH:
        return None
    return await repository.find_device(
        db, digest(token), email, now=now, max_failures=settings.LOGIN_MAX_FAILURES
    )


async def reserve_attempt(
    db: AsyncSession, device: LoginDevice, *, settings: Settings, now: datetime
) -> Reservation:
    """As `service.reserve_attempt`, on the device's own counter; the account lock does not apply."""
    failures = await repository.count_device_attempt_if_allowed(
        db, device.token_hash, settings=settings, now=now
    )
    if failures is not None:
        return Reservation(granted=True, failures=int(failures))
    current = await repository.device_state(db, device.token_hash)
    refused = None
    if current is not None:  # else rotated away by a concurrent success
        refused = refusal(current.failures, current.last_failure_at, settings, now, lock=False)
    # Allowed now but not a moment ago: a concurrent attempt won the race for it.
    return refused or Reservation(granted=False, failures=0, retry_after=1.0)


def attempt_released(device: LoginDevice) -> CteWrite:
    """One counted attempt of the device given back, as a write (sent alone, or carried by the statement
    that follows)."""
    return repository.device_attempt_uncounted(device.token_hash)


def replacement(
    user_id: uuid.UUID, *, settings: Settings, now: datetime, replaces: LoginDevice | None = None
) -> tuple[str, CteWrite]:
    """A new device token for `user_id` after a successful login (the presented one, if any, is spent), and
    the write that stores it (its digest only), for the statement that carries it (the login's session):
    the token is the client's only once that statement has run."""
    token, token_hash = new_token()
    write = repository.device_replaced(
        token_hash=token_hash,
        user_id=user_id,
        now=now,
        expires_at=now + timedelta(seconds=settings.DEVICE_TOKEN_TTL_SECONDS),
        spent_hash=replaces.token_hash if replaces is not None else None,
        newest=MAX_DEVICES_PER_USER - 1,
    )
    return token, write
