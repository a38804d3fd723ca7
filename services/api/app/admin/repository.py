"""Queries of administration: the admin-roster lock, pages of users, and the rows an admin action
locks. Functions flush or execute; the request (or the CLI, or startup) commits."""

import hashlib
import uuid
from typing import Final

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.users.models import ADMIN_ROLE, User

# Held by every change to who is an admin or who may act: the API's admin actions, the CLI, and the
# FIRST_ADMIN_* bootstrap of every starting worker.
ADMIN_ROSTER_LOCK_ID: Final = int.from_bytes(
    hashlib.sha256(b"pyauth.admin_roster").digest()[:8], "big", signed=True
)


async def lock_admin_roster(db: AsyncSession) -> None:
    """Transaction-scoped: released by the commit or rollback that ends the caller's transaction."""
    await db.execute(select(func.pg_advisory_xact_lock(ADMIN_ROSTER_LOCK_ID)))


async def any_admin_exists(db: AsyncSession) -> bool:
    return bool(await db.scalar(select(exists().where(User.roles.contains([ADMIN_ROLE])))))


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def page_of_users(
    db: AsyncSession,
    *,
    limit: int,
    offset: int,
    email_contains: str | None,
    role: str | None,
    is_active: bool | None,
) -> tuple[list[User], int]:
    """One page of users, newest first, and how many match in all. `email_contains` is matched
    case-insensitively, its LIKE wildcards literally."""
    conditions: list[ColumnElement[bool]] = []
    if email_contains:
        conditions.append(User.email.ilike(f"%{escape_like(email_contains)}%", escape="\\"))
    if role is not None:
        conditions.append(User.roles.contains([role]))
    if is_active is not None:
        conditions.append(User.is_active.is_(is_active))
    total = await db.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    users = await db.scalars(
        select(User)
        .where(*conditions)
        .order_by(User.created_at.desc(), User.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(users), total


async def reload_user(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user as committed now, not as this session last saw it (read under the roster lock)."""
    return await db.get(User, user_id, populate_existing=True)


async def reload_user_for_update(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    """`reload_user`, with the row locked until the transaction ends."""
    return await db.get(User, user_id, populate_existing=True, with_for_update=True)


async def delete_user(db: AsyncSession, user: User) -> None:
    await db.delete(user)
    await db.flush()
