"""The SQL of `signing_keys`: the generation lock, reading the live keys, adding and retiring keys."""

import hashlib
from collections.abc import Collection
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.keys.models import SigningKey

# One lock id for every process that may write signing keys (startup, the rotation CLI).
KEY_GENERATION_LOCK_ID: Final = int.from_bytes(
    hashlib.sha256(b"pyauth.signing_keys.generate").digest()[:8], "big", signed=True
)


class StoredKey(NamedTuple):
    """A `signing_keys` row, detached from the session that read it."""

    kid: str
    algorithm: str
    public_jwk: dict[str, Any]
    private_key_encrypted: bytes
    created_at: datetime
    active_from: datetime
    retired_at: datetime | None


async def lock_key_generation(session: AsyncSession) -> None:
    # Transaction-scoped: released by the commit or rollback that ends the caller's transaction.
    await session.execute(select(func.pg_advisory_xact_lock(KEY_GENERATION_LOCK_ID)))


async def read_keys(session: AsyncSession, cutoff: datetime) -> list[StoredKey]:
    """Every key a live token may still name: unretired, or retired after `cutoff`. Newest first."""
    result = await session.execute(
        select(SigningKey)
        .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > cutoff))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid)
    )
    return [
        StoredKey(
            kid=row.kid,
            algorithm=row.algorithm,
            public_jwk=dict(row.public_jwk),
            private_key_encrypted=bytes(row.private_key_encrypted),
            created_at=row.created_at,
            active_from=row.active_from,
            retired_at=row.retired_at,
        )
        for row in result.scalars()
    ]


async def add_key(
    session: AsyncSession,
    *,
    kid: str,
    algorithm: str,
    public_jwk: dict[str, str],
    private_key_encrypted: bytes,
    now: datetime,
    active_from: datetime,
) -> None:
    session.add(
        SigningKey(
            kid=kid,
            algorithm=algorithm,
            public_jwk=public_jwk,
            private_key_encrypted=private_key_encrypted,
            created_at=now,
            active_from=active_from,
            retired_at=None,
        )
    )
    await session.flush()


async def retire_keys(
    session: AsyncSession, *, algorithms: Collection[str], keeping: str, at: datetime
) -> None:
    """Every key of `algorithms` but `keeping` that would still sign after `at` stops signing at `at`
    (an earlier retirement stands)."""
    await session.execute(
        update(SigningKey)
        .where(
            SigningKey.algorithm.in_(list(algorithms)),
            SigningKey.kid != keeping,
            or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > at),
        )
        .values(retired_at=at)
        .execution_options(synchronize_session=False)
    )
