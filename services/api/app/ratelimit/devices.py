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

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.opaque_tokens import digest, new_token
from app.ratelimit.models import LoginDevice
from app.ratelimit.service import Reservation, attempt_allowed, refusal
from app.users.models import User

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
    device: LoginDevice | None = await db.scalar(
        select(LoginDevice)
        .join(User, User.id == LoginDevice.user_id)
        .where(
            LoginDevice.token_hash == digest(token),
            User.email == email,
            LoginDevice.expires_at > now,
            LoginDevice.failures < settings.LOGIN_MAX_FAILURES,
        )
    )
    return device


async def reserve_attempt(
    db: AsyncSession, device: LoginDevice, *, settings: Settings, now: datetime
) -> Reservation:
    """As `service.reserve_attempt`, on the device's own counter; the account lock does not apply."""
    failures = await db.scalar(
        update(LoginDevice)
        .where(
            LoginDevice.token_hash == device.token_hash,
            attempt_allowed(LoginDevice.failures, LoginDevice.last_failure_at, settings, now, lock=False),
        )
        .values(failures=LoginDevice.failures + 1, last_failure_at=now)
        .returning(LoginDevice.failures)
    )
    if failures is not None:
        return Reservation(granted=True, failures=int(failures))
    current = (
        await db.execute(
            select(LoginDevice.failures, LoginDevice.last_failure_at).where(
                LoginDevice.token_hash == device.token_hash
            )
        )
    ).one_or_none()
    refused = None
    if current is not None:  # else rotated away by a concurrent success
        refused = refusal(current.failures, current.last_failure_at, settings, now, lock=False)
    # Allowed now but not a moment ago: a concurrent attempt won the race for it.
    return refused or Reservation(granted=False, failures=0, retry_after=1.0)


async def release_attempt(db: AsyncSession, device: LoginDevice) -> None:
    await db.execute(
        update(LoginDevice)
        .where(LoginDevice.token_hash == device.token_hash, LoginDevice.failures > 0)
        .values(failures=LoginDevice.failures - 1)
    )


async def issue(
    db: AsyncSession,
    user_id: uuid.UUID,
    *,
    settings: Settings,
    now: datetime,
    replaces: LoginDevice | None = None,
) -> str:
    """A new device token for `user_id` after a successful login; the presented one, if any, is spent.
    Returns the token for the client; only its digest is stored."""
    if replaces is not None:
        await db.execute(delete(LoginDevice).where(LoginDevice.token_hash == replaces.token_hash))
    token, token_hash = new_token()
    db.add(
        LoginDevice(
            token_hash=token_hash,
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.DEVICE_TOKEN_TTL_SECONDS),
            failures=0,
        )
    )
    await db.flush()
    others = LoginDevice.user_id == user_id, LoginDevice.token_hash != token_hash
    newest_others = (
        select(LoginDevice.token_hash)
        .where(*others)
        .order_by(LoginDevice.created_at.desc())
        .limit(MAX_DEVICES_PER_USER - 1)
    )
    await db.execute(
        delete(LoginDevice).where(
            *others,
            (LoginDevice.expires_at <= now) | LoginDevice.token_hash.not_in(newest_others.scalar_subquery()),
        )
    )
    return token
