"""Create an administrator or grant the role to an existing account: the one procedure behind both the
CLI (`app.admin.cli`) and the FIRST_ADMIN_* settings at startup (`app.admin.bootstrap`).

They differ only in what they check before promoting an existing account (the CLI describes it to the
operator; the startup setting requires the account's own password), which each passes as `vet`.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import service
from app.core.context import RequestContext
from app.core.errors import PyauthError
from app.users import repository as users_repository
from app.users.models import User


class UserVanished(PyauthError):
    status_code = 409
    code = "user_vanished"
    message = "The account was deleted while the command ran; run it again."


@dataclass(frozen=True)
class Outcome:
    user: User
    result: Literal["created", "promoted", "already_admin", "refused"]


async def create_or_promote(
    db: AsyncSession,
    email: str,
    *,
    password_hash: str | None,
    ctx: RequestContext,
    source: str,
    vet: Callable[[User], Awaitable[bool]],
    require_verified: bool,
) -> Outcome:
    """Under the admin-roster lock (taken here, held to the end of the caller's transaction): a new admin
    account when none has the canonical `email` and a `password_hash` is given; else the existing account,
    promoted once `vet` accepts it (`refused` otherwise) unless it is an admin already. Raises
    `UserVanished` when the account is deleted between the two reads, `AccountNotVerified` from
    `promote_to_admin` when `require_verified` and its address was never verified."""
    await service.lock_admin_roster(db)
    user = await users_repository.get_by_email(db, email)
    if user is None and password_hash is not None:
        created = await service.create_admin(
            db, email=email, password_hash=password_hash, ctx=ctx, source=source
        )
        if created is not None:
            return Outcome(created, "created")
        user = await users_repository.get_by_email(db, email)  # registered meanwhile
    if user is None:
        raise UserVanished()
    if not await vet(user):
        return Outcome(user, "refused")
    if user.is_admin:
        return Outcome(user, "already_admin")
    await service.promote_to_admin(db, user, ctx=ctx, source=source, require_verified=require_verified)
    return Outcome(user, "promoted")
