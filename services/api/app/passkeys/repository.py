"""Queries of the passkeys domain. Challenges are consumed by one DELETE … RETURNING: of two requests
answering the same challenge (two replicas, or a replay), exactly one gets the row."""

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.passkeys.models import Passkey, WebAuthnChallenge


async def add_challenge(
    db: AsyncSession,
    *,
    challenge_hash: bytes,
    purpose: str,
    user_id: uuid.UUID | None,
    attempt: str | None,
    user_verification: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    db.add(
        WebAuthnChallenge(
            challenge_hash=challenge_hash,
            purpose=purpose,
            user_id=user_id,
            attempt=attempt,
            user_verification=user_verification,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await db.flush()


async def consume_challenge(
    db: AsyncSession,
    *,
    challenge_hash: bytes,
    purpose: str,
    user_id: uuid.UUID | None,
    attempt: str | None,
    now: datetime,
) -> WebAuthnChallenge | None:
    """Delete and return the live challenge with this digest, if it was issued for this purpose, user
    (None: a passwordless one, issued for nobody) and attempt. Any other answer gets None."""
    row = await db.execute(
        delete(WebAuthnChallenge)
        .where(
            WebAuthnChallenge.challenge_hash == challenge_hash,
            WebAuthnChallenge.purpose == purpose,
            WebAuthnChallenge.expires_at > now,
            WebAuthnChallenge.user_id.is_(None) if user_id is None else WebAuthnChallenge.user_id == user_id,
            WebAuthnChallenge.attempt.is_not_distinct_from(attempt),
        )
        .returning(WebAuthnChallenge)
    )
    return row.scalar_one_or_none()


async def discard_challenges_of(db: AsyncSession, user_id: uuid.UUID, purpose: str) -> None:
    """Drop the user's outstanding challenges of this purpose: a new ceremony replaces the last one."""
    await db.execute(
        delete(WebAuthnChallenge).where(
            WebAuthnChallenge.user_id == user_id, WebAuthnChallenge.purpose == purpose
        )
    )


async def discard_challenge(db: AsyncSession, challenge_hash: bytes) -> None:
    """Spend a challenge whatever it was for: after a refused answer, so it cannot be answered again."""
    await db.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.challenge_hash == challenge_hash))


async def passkeys_of(db: AsyncSession, user_id: uuid.UUID) -> list[Passkey]:
    rows = await db.scalars(
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at, Passkey.id)
    )
    return list(rows)


def passkey_exists(user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
    """Whether the user has a passkey, as a condition to select (with other such); on the table itself,
    as every login selects it: no ORM work per execution."""
    passkeys = cast(Table, Passkey.__table__)
    return exists().where(passkeys.c.user_id == user_id)


async def has_passkey(db: AsyncSession, user_id: uuid.UUID) -> bool:
    return bool(await db.scalar(select(passkey_exists(user_id))))


async def count_passkeys(db: AsyncSession, user_id: uuid.UUID) -> int:
    return await db.scalar(select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)) or 0


async def passkey_of(db: AsyncSession, user_id: uuid.UUID, passkey_id: uuid.UUID) -> Passkey | None:
    """The user's passkey with this id; another user's is None, exactly as a missing one."""
    return await db.scalar(select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id))


async def by_credential_id(db: AsyncSession, credential_id: bytes) -> Passkey | None:
    return await db.scalar(select(Passkey).where(Passkey.credential_id == credential_id))


async def insert_passkey(db: AsyncSession, values: dict[str, object]) -> uuid.UUID | None:
    """Insert a passkey; None if its credential id is registered already (to anyone), race included."""
    inserted = await db.execute(
        insert(Passkey)
        .values(id=uuid.uuid4(), **values)
        .on_conflict_do_nothing(index_elements=[Passkey.credential_id])
        .returning(Passkey.id)
    )
    return inserted.scalar_one_or_none()


async def delete_passkey(db: AsyncSession, user_id: uuid.UUID, passkey_id: uuid.UUID) -> Passkey | None:
    deleted = await db.execute(
        delete(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id).returning(Passkey)
    )
    return deleted.scalar_one_or_none()


async def delete_passkeys_of(db: AsyncSession, user_id: uuid.UUID) -> int:
    deleted = await db.execute(delete(Passkey).where(Passkey.user_id == user_id).returning(Passkey.id))
    return len(deleted.all())


async def record_use(
    db: AsyncSession,
    passkey_id: uuid.UUID,
    *,
    seen_count: int,
    new_count: int,
    backed_up: bool,
    now: datetime,
) -> bool:
    """Store a verified assertion's counter, only if the stored one is still the one it was checked
    against: two assertions racing with the same counter cannot both pass. False if it moved."""
    updated = await db.execute(
        update(Passkey)
        .where(Passkey.id == passkey_id, Passkey.sign_count == seen_count)
        .values(sign_count=new_count, backed_up=backed_up, last_used_at=now)
        .returning(Passkey.id)
    )
    return updated.scalar_one_or_none() is not None
