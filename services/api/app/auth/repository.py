"""Queries on sessions and refresh tokens. Functions flush or execute; the request commits."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.audit.service import AuditRow
from app.auth.models import AuthSession, RefreshToken
from app.clients.models import ClientType, GrantType
from app.clients.service import EnabledClientRead
from app.core.database import CteWrite, execute_with_writes, shift_parameters, statement_connection
from app.core.models import read_only
from app.ratelimit.service import hit_upsert
from app.users.models import User


@dataclass(frozen=True)
class SessionWithUser:
    session: AuthSession
    user: User


# A finished login's new session, its first refresh token and its `login.succeeded` audit row, in one
# statement: the token and the audit row take the session's id from the INSERT before them (foreign keys are
# checked when the statement ends, when the session row exists). The login's other writes (`CteWrite`:
# its failure count cleared, its device token) come first in the same statement (`with_writes`).
_START_SESSION = f"""
started AS (
  INSERT INTO {AuthSession.__tablename__}
    (id, user_id, created_at, last_used_at, expires_at, user_agent, ip_address, client_id, scopes, amr)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
  RETURNING id
), first_refresh_token AS (
  INSERT INTO {RefreshToken.__tablename__} (token_hash, session_id, created_at)
  SELECT $11, id, $4 FROM started
)
INSERT INTO {AuditEntry.__tablename__}
  (occurred_at, event, user_id, session_id, ip_address, user_agent, details)
SELECT $4, $12, $2, id, $13, $14, $15 FROM started
"""  # noqa: S608 - table names from the models; every value is a parameter


@dataclass(frozen=True)
class SessionStart:
    """A new session's columns (`created_at` is the sign-in, `now` its first use) and its first refresh
    token's digest."""

    user_id: uuid.UUID
    created_at: datetime
    now: datetime
    expires_at: datetime
    user_agent: str | None
    ip_address: str | None
    client_id: str
    scopes: Sequence[str]
    amr: Sequence[str]
    refresh_token_hash: bytes


async def start_session(
    db: AsyncSession, start: SessionStart, audit: AuditRow, writes: Sequence[CteWrite] = ()
) -> uuid.UUID:
    """`_START_SESSION` with `writes` (`execute_with_writes`). The new session's id."""
    session_id = uuid.uuid4()
    own = (
        session_id,
        start.user_id,
        start.created_at,
        start.now,
        start.expires_at,
        start.user_agent,
        start.ip_address,
        start.client_id,
        list(start.scopes),
        list(start.amr),
        start.refresh_token_hash,
        *audit.driver_values(),
    )
    await execute_with_writes(db, _START_SESSION, own, writes)
    return session_id


async def add_refresh_token(
    db: AsyncSession, *, session_id: uuid.UUID, token_hash: bytes, now: datetime
) -> None:
    db.add(RefreshToken(token_hash=token_hash, session_id=session_id, created_at=now))
    await db.flush()


async def mark_refresh_token_used(db: AsyncSession, token_hash: bytes, now: datetime) -> uuid.UUID | None:
    """Atomically claim an unused token: of two concurrent claims exactly one gets the session id; the
    other waits on the row lock, then sees `used_at` set and gets None."""
    return await db.scalar(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .returning(RefreshToken.session_id)
    )


# The rotation of a refresh token whose session is live and belongs to the presenting client, in one
# statement: claim the token (of two concurrent claims one waits on the row lock, then finds it used and
# claims nothing), touch the session, insert the successor and the `token.refreshed` audit row, and read the
# session and its user (all but the password hash). `sessions.session_is_live` is the claim's condition
# ($4 = now - idle TTL). Every write hangs on the claim: when it claims nothing, nothing is written
# and the step-by-step path (`service.refresh`) finds out why and refuses. The claim returns the session's
# and the user's columns as it found them, the session's `last_used_at` but the touch's ($1): nothing
# reads the two rows again. (The table names come from the models; every value is a parameter.)
_CLAIM = f"""
  UPDATE {RefreshToken.__tablename__} AS t SET used_at = $1
  FROM {AuthSession.__tablename__} AS s JOIN {User.__tablename__} AS u ON u.id = s.user_id<sources>
  WHERE t.token_hash = $2 AND t.used_at IS NULL AND s.id = t.session_id
    AND s.client_id = $3 AND s.revoked_at IS NULL AND s.expires_at > $1
    AND s.last_used_at > $4 AND u.is_active<conditions>
  RETURNING s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.revoked_reason,
    s.user_agent, s.ip_address, s.client_id, s.scopes, s.amr, u.email, u.display_name, u.is_active,
    u.is_verified, u.roles, u.password_changed_at, u.locale, u.created_at AS user_created_at,
    u.updated_at AS user_updated_at
"""  # noqa: S608
_AFTER_CLAIM = f"""
touched AS (
  UPDATE {AuthSession.__tablename__} AS s SET last_used_at = $1 FROM claimed WHERE s.id = claimed.id
), successor AS (
  INSERT INTO {RefreshToken.__tablename__} (token_hash, session_id, created_at)
  SELECT $5, id, $1 FROM claimed
), audited AS (
  INSERT INTO {AuditEntry.__tablename__}
    (occurred_at, event, user_id, session_id, ip_address, user_agent, details)
  SELECT $1, $6, user_id, id, $7, $8, $9 FROM claimed
)
"""  # noqa: S608
_ROTATED = "SELECT claimed.*, $1 AS last_used_at FROM claimed"
_ROTATE_LIVE_REFRESH_TOKEN = (
    f"WITH claimed AS ({_CLAIM.replace('<sources>', '').replace('<conditions>', '')}),"
    f" {_AFTER_CLAIM}{_ROTATED}"
)

# The same rotation carrying the rate limit's hit ($10 key, $11 window start) and the read of the
# presenting client ($3), for `count_hit_and_rotate`. The claim also needs the hits within the limit ($12)
# and the client to be one whose refresh `client_auth` and `check_grant_allowed` accept with no secret
# sent: enabled (the read's own condition), public, registered for the refresh_token grant. Where any of
# that fails nothing but the hit is written, and the token endpoint refuses as it would have.
_CLIENT_COLUMNS = EnabledClientRead.columns
_CLIENT_PREFIX = "client__"
_COUNT_HIT_AND_ROTATE = f"""
WITH hit AS ({hit_upsert(9)}),
client AS ({shift_parameters(EnabledClientRead.sql, 2)}),
claimed AS ({
    _CLAIM.replace("<sources>", ", hit, client").replace(
        "<conditions>",
        f" AND hit.hits <= $12 AND client.client_type = '{ClientType.PUBLIC.value}'"
        f" AND '{GrantType.REFRESH_TOKEN.value}' = ANY(client.grant_types)",
    )
}), {_AFTER_CLAIM}
SELECT hit.hits, {", ".join(f"client.{key} AS {_CLIENT_PREFIX}{key}" for key in _CLIENT_COLUMNS)}, rotated.*
FROM hit LEFT JOIN client ON true LEFT JOIN ({_ROTATED}) AS rotated ON true
"""  # noqa: S608
_SESSION_COLUMNS = (
    "id", "user_id", "created_at", "last_used_at", "expires_at", "revoked_at", "revoked_reason",
    "user_agent", "ip_address", "client_id", "scopes", "amr",
)  # fmt: skip
_USER_COLUMNS = {
    "email": "email",
    "display_name": "display_name",
    "is_active": "is_active",
    "is_verified": "is_verified",
    "roles": "roles",
    "password_changed_at": "password_changed_at",
    "locale": "locale",
    "user_created_at": "created_at",
    "user_updated_at": "updated_at",
}


@dataclass(frozen=True)
class Rotation:
    """What a rotation's statement is given: the presented token's digest and its successor's, the
    presenting client, the time, the idle cutoff (`now` - idle TTL: `sessions.session_is_live`) and the
    `token.refreshed` audit row."""

    token_hash: bytes
    successor_hash: bytes
    client_id: str
    now: datetime
    idle_since: datetime
    audit: AuditRow

    def parameters(self) -> tuple[object, ...]:
        """$1 to $9 of `_ROTATE_LIVE_REFRESH_TOKEN` and `_COUNT_HIT_AND_ROTATE`."""
        return (
            self.now,
            self.token_hash,
            self.client_id,
            self.idle_since,
            self.successor_hash,
            *self.audit.driver_values(),
        )


async def rotate_live_refresh_token(db: AsyncSession, rotation: Rotation) -> SessionWithUser | None:
    """`_ROTATE_LIVE_REFRESH_TOKEN`, sent to the driver (`statement_connection`): on its own before the
    request's transaction has begun (one statement, so atomic and durable alone: one round trip instead of
    three), else in it. The rotated session and its user (both detached, read-only, the user without its
    password hash), or None when the token was not an unused one of a live session of the client, in
    which case nothing was written."""
    async with statement_connection(db) as connection:
        row = await connection.fetchrow(_ROTATE_LIVE_REFRESH_TOKEN, *rotation.parameters())
    return _rotated(row) if row is not None else None


@dataclass(frozen=True)
class CountedRotation:
    """What `count_hit_and_rotate` found: the hits counted, the presenting client's row as
    `EnabledClientRead` takes it (None: no enabled client of that id), and the rotated session and user
    (None: nothing rotated)."""

    hits: int
    client: dict[str, object] | None
    rotated: SessionWithUser | None


async def count_hit_and_rotate(
    connection: asyncpg.Connection, rotation: Rotation, *, key: str, window_start: datetime, limit: int
) -> CountedRotation:
    """`_COUNT_HIT_AND_ROTATE` on the driver's connection (`app.ratelimit.service.hit`'s): the rate limit's
    hit, the client's read and the rotation in one round trip and one transaction, durable as the rotation
    alone is. The hit's row stays locked until the commit, so two refreshes counted under the same key (one
    client address) commit one after the other."""
    row = await connection.fetchrow(_COUNT_HIT_AND_ROTATE, *rotation.parameters(), key, window_start, limit)
    client = None
    if row[f"{_CLIENT_PREFIX}client_id"] is not None:
        client = {column: row[_CLIENT_PREFIX + column] for column in _CLIENT_COLUMNS}
    return CountedRotation(row["hits"], client, _rotated(row) if row["id"] is not None else None)


def _rotated(row: asyncpg.Record) -> SessionWithUser:
    """The rotated session and its user from a rotation's row: detached, read-only, no password hash."""
    auth_session = read_only(AuthSession, {column: row[column] for column in _SESSION_COLUMNS})
    user_values = {attr: row[column] for column, attr in _USER_COLUMNS.items()}
    user = read_only(User, {"id": row["user_id"], **user_values})
    return SessionWithUser(session=auth_session, user=user)


async def find_refresh_token(db: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    return await db.get(RefreshToken, token_hash)


async def session_with_user(db: AsyncSession, session_id: uuid.UUID) -> SessionWithUser | None:
    """One round trip: the session and its user."""
    row = (
        await db.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == session_id)
        )
    ).one_or_none()
    return SessionWithUser(session=row[0], user=row[1]) if row else None


# `sessions.session_is_live` as SQL, for the token's session and user: not revoked, not expired, used
# within the idle TTL ($4 = now - idle TTL), the user active. The user's columns but its password hash.
# (The table names come from the models; every value is a parameter.)
_USER_OF_LIVE_SESSION = f"""
SELECT u.id, u.email, u.display_name, u.is_active, u.is_verified, u.roles, u.created_at, u.updated_at
FROM {AuthSession.__tablename__} AS s JOIN {User.__tablename__} AS u ON u.id = s.user_id
WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3 AND s.last_used_at > $4
  AND u.is_active
"""  # noqa: S608


async def user_of_live_session(
    connection: asyncpg.Connection,
    *,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    idle_since: datetime,
) -> asyncpg.Record | None:
    """The session's user if the session is live (see `_USER_OF_LIVE_SESSION`), in one statement on the
    driver's connection (`app.core.database.driver_connection`); None otherwise."""
    row: asyncpg.Record | None = await connection.fetchrow(
        _USER_OF_LIVE_SESSION, session_id, user_id, now, idle_since
    )
    return row


async def touch_session(db: AsyncSession, session_id: uuid.UUID, now: datetime) -> None:
    await db.execute(update(AuthSession).where(AuthSession.id == session_id).values(last_used_at=now))


async def revoke_sessions(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    now: datetime,
    reason: str,
    session_id: uuid.UUID | None = None,
    except_session_id: uuid.UUID | None = None,
) -> int:
    """Revoke one session of a user, or all of them (optionally but one). Returns how many ended."""
    conditions = [AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)]
    if session_id is not None:
        conditions.append(AuthSession.id == session_id)
    if except_session_id is not None:
        conditions.append(AuthSession.id != except_session_id)
    result = await db.execute(
        update(AuthSession).where(and_(*conditions)).values(revoked_at=now, revoked_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_sessions(
    db: AsyncSession, user_id: uuid.UUID, *, now: datetime, idle_since: datetime
) -> list[AuthSession]:
    result = await db.scalars(
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
            AuthSession.last_used_at > idle_since,
        )
        .order_by(AuthSession.last_used_at.desc())
    )
    return list(result)


async def session_of_refresh_token(db: AsyncSession, token_hash: bytes) -> AuthSession | None:
    """The session a refresh token belongs to, used or not (None for an unknown token)."""
    return await db.scalar(
        select(AuthSession)
        .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
        .where(RefreshToken.token_hash == token_hash)
    )
