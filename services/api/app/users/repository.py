"""Queries on the `users` table. Functions flush; the request commits."""

import uuid

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.templating import DEFAULT_LOCALE
from app.users.models import User


async def get_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


# Built once: every login sends it.
_BY_EMAIL = select(User).where(User.email == bindparam("email"))


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(_BY_EMAIL, {"email": email})


async def insert_if_absent(
    session: AsyncSession, email: str, password_hash: str, locale: str = DEFAULT_LOCALE
) -> User | None:
    """Insert a user unless the email is taken; None if it is. ON CONFLICT makes concurrent
    registrations of one email produce one row and no unique-violation error."""
    statement = (
        insert(User)
        .values(id=uuid.uuid4(), email=email, password_hash=password_hash, locale=locale)
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User)
    )
    return await session.scalar(statement)


async def set_password_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))
