"""Ending the pending account tokens of a user: the one function that a password change or reset,
logout-all, deactivation and an administrator's reset of sessions all call (ASVS 7.4.3).

Without it a mailed link outlived the change that was meant to lock an attacker out: an email change
requested with a stolen password could still be confirmed after the owner reset that password.
"""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.account import repository
from app.account.models import GRANTING_PURPOSES


async def end_pending_tokens(
    db: AsyncSession, user_id: uuid.UUID, *, now: datetime, password_changed: bool = False
) -> int:
    """Spend every unused verification, reset and email-change token of the user; returns how many.

    With `password_changed`, also move the user's token epoch to `now`: a token created before it is
    refused even if a transaction that issued it commits after this one (defence in depth; the row lock
    below already orders issuing and ending)."""
    user = await repository.lock_owner(db, user_id)
    if user is None:
        return 0
    if password_changed:
        user.password_changed_at = now
        await db.flush()
    return await repository.spend_all(db, user_id=user_id, purposes=GRANTING_PURPOSES, now=now)
