"""Queries of rate limiting and login throttling: per-IP window counters (`rate_limit_hits`), failure
counters per account (`login_throttles`) and per known device (`login_devices`). Functions execute or
flush; the caller commits (`service.hit` commits its own short transaction)."""

import functools
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol, cast

import asyncpg
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from app.core.config import Settings
from app.core.database import CteWrite, DriverStatement, shift_parameters
from app.core.models import attribute_columns, read_only
from app.ratelimit.models import LoginDevice, LoginThrottle, RateLimitHit
from app.users.models import User

# Per-IP windows


async def skip_wal_flush(db: AsyncSession) -> None:
    """For the rest of this transaction: commit without waiting for the WAL flush (a lost hit after a
    crash is harmless)."""
    await db.execute(text("SET LOCAL synchronous_commit = off"))


# One upsert, the hits counted so far ($1 the key, $2 the window's start). Sent alone on the driver's
# connection (autocommit): the table is UNLOGGED, so its commit writes no WAL of the row and waits for no
# flush (as `skip_wal_flush` would ask). A `Counted` statement carries it instead.
COUNT_HIT = f"""
INSERT INTO {RateLimitHit.__tablename__} (key, window_start, hits) VALUES ($1, $2, 1)
ON CONFLICT (key, window_start) DO UPDATE SET hits = {RateLimitHit.__tablename__}.hits + 1
RETURNING hits
"""  # noqa: S608 - the table name from the model; every value is a parameter


async def count_hit(connection: asyncpg.Connection, key: str, window_start: datetime) -> int:
    """Count one hit of `key` in the window starting at `window_start`, in one statement on the driver's
    connection (`app.core.database.driver_connection`); the hits counted so far."""
    hits: int = await connection.fetchval(COUNT_HIT, key, window_start)
    return hits


class Read(Protocol):
    """A read the request makes next anyway, sent in the hit's round trip (`count_hit_and_read`): a SELECT
    of at most one row whose own parameters are $1, $2, ... (`parameters`); `take` gets its row, or None
    when it found none."""

    sql: str
    parameters: tuple[object, ...]

    def take(self, row: Mapping[str, Any] | None) -> None: ...


class Counted(Protocol):
    """A statement that counts the hit itself, with what the request would do next, in one round trip
    (the refresh's rotation: `app.auth.service.RotationAhead`). It holds `COUNT_HIT` (`service.hit_upsert`)
    for `key` in the window starting at `window_start`, does nothing else once the hits counted exceed
    `limit`, and returns the hits."""

    async def count(
        self, connection: asyncpg.Connection, key: str, window_start: datetime, limit: int
    ) -> int: ...


_FOUND = "_read_found"  # a column of the read's side that is never NULL where it found a row


@functools.cache
def _count_hit_and_read(read_sql: str) -> str:
    """`COUNT_HIT` and a one-row read in one statement: the hit's count, then the read's columns (each NULL
    where the read found nothing). The read's parameters are numbered after the hit's two."""
    return (
        f"WITH hit AS ({COUNT_HIT}) SELECT hit.hits, read.* FROM hit"  # noqa: S608 - no value in the text
        f" LEFT JOIN LATERAL (SELECT true AS {_FOUND}, r.* FROM ({shift_parameters(read_sql, 2)}) AS r)"
        " AS read ON true"
    )


async def count_hit_and_read(
    connection: asyncpg.Connection, key: str, window_start: datetime, read: Read
) -> int:
    """`count_hit`, with `read` in the same statement: one round trip for both. The read runs in the
    hit's own (autocommit) transaction, so it sees what was committed before the statement; `read.take`
    gets its row. The hits counted so far."""
    row = await connection.fetchrow(_count_hit_and_read(read.sql), key, window_start, *read.parameters)
    values = dict(row)
    hits: int = values.pop("hits")
    found = values.pop(_FOUND)
    read.take(values if found else None)
    return hits


async def prune_windows(db: AsyncSession, before: datetime) -> None:
    await db.execute(delete(RateLimitHit).where(RateLimitHit.window_start < before))


# The schedule in SQL, shared by the account and the device counters


class Schedule(NamedTuple):
    """The settings `attempt_allowed` reads (LOGIN_*), as a key a built statement can be kept under."""

    free_attempts: int
    delay_base_seconds: float
    delay_max_seconds: float
    max_failures: int

    @classmethod
    def of(cls, settings: Settings) -> "Schedule":
        return cls(
            settings.LOGIN_FREE_ATTEMPTS,
            settings.LOGIN_DELAY_BASE_SECONDS,
            settings.LOGIN_DELAY_MAX_SECONDS,
            settings.LOGIN_MAX_FAILURES,
        )


def attempt_allowed(
    failures: ColumnElement[int] | QueryableAttribute[int],
    last_failure_at: ColumnElement[Any] | QueryableAttribute[Any],
    schedule: Schedule,
    now: datetime | BindParameter[datetime],
    *,
    lock: bool,
) -> ColumnElement[bool]:
    """`service.delay_for` in SQL, evaluated on the locked row: within the free attempts, or the delay
    since the last counted attempt has passed; and, where the lock applies, below LOGIN_MAX_FAILURES."""
    free = schedule.free_attempts
    delay = func.least(
        literal(schedule.delay_base_seconds, Float)
        * func.power(literal(2.0, Float), func.least(failures - free, 32)),
        literal(schedule.delay_max_seconds, Float),
    )
    waited = func.coalesce(last_failure_at, now) + func.make_interval(0, 0, 0, 0, 0, 0, delay) <= now
    allowed = or_(failures < free, waited)
    return and_(failures < schedule.max_failures, allowed) if lock else allowed


# Account counters

# The table itself, for the statements sent on every login: pyauth never loads a throttle row as an object,
# so the ORM has nothing to do for them, and its handling of each execution costs more than the round trip.
_THROTTLES = cast(Table, LoginThrottle.__table__)


class AttemptCount(NamedTuple):
    """What one `count_attempt` statement did: `counted` is the new count when it counted the attempt
    (on the existing row, or as a new row's first), else None; `failures` and `last_failure_at` are the
    row as it stood before the statement (None: there was none)."""

    counted: int | None
    failures: int | None
    last_failure_at: datetime | None


@functools.cache
def _count_attempt_statement(schedule: Schedule, *, lock: bool) -> DriverStatement:
    """`count_attempt`'s statement, built and compiled for the driver once per schedule: every login sends
    it, and building it (some 2,500 Python calls) cost several times what sending it does. Its values are
    the parameters `attempt_email`, `attempt_kind` and `attempt_at`."""
    # Not named as columns: an UPDATE's execution parameters named as one of its columns would set it.
    email = bindparam("attempt_email", type_=_THROTTLES.c.email.type)
    kind = bindparam("attempt_kind", type_=_THROTTLES.c.kind.type)
    now = bindparam("attempt_at", type_=_THROTTLES.c.last_failure_at.type)
    key = (_THROTTLES.c.email == email, _THROTTLES.c.kind == kind)
    allowed = attempt_allowed(_THROTTLES.c.failures, _THROTTLES.c.last_failure_at, schedule, now, lock=lock)
    counted = (
        update(_THROTTLES)
        .where(*key, allowed)
        .values(failures=_THROTTLES.c.failures + 1, last_failure_at=now)
        .returning(_THROTTLES.c.failures)
        .cte("counted")
    )
    first = select(email, kind, literal(1), now).where(~exists(counted.select()))
    inserted = (
        insert(_THROTTLES)
        .from_select(["email", "kind", "failures", "last_failure_at"], first)
        .on_conflict_do_nothing()
        .returning(_THROTTLES.c.failures)
        .cte("inserted")
    )
    # Every part of one statement reads the same snapshot: this is the row before the UPDATE.
    existing = select(_THROTTLES.c.failures, _THROTTLES.c.last_failure_at).where(*key).subquery("existing")
    statement = select(
        func.coalesce(counted.select().scalar_subquery(), inserted.select().scalar_subquery()),
        existing.c.failures,
        existing.c.last_failure_at,
    ).outerjoin_from(select(literal(1)).subquery("one"), existing, true())
    return DriverStatement.of(statement)


async def count_attempt(
    db: AsyncSession, email: str, kind: str, *, settings: Settings, now: datetime, lock: bool
) -> AttemptCount:
    """Count one attempt, in one statement: on the existing row if the schedule allows one now, or as the
    first of a new row. The UPDATE queues on a row a concurrent attempt holds and re-checks the schedule
    against the count it left; a refused UPDATE takes no lock. The INSERT runs only when the UPDATE
    counted nothing, and does nothing when the row exists (or a concurrent one inserted it). The row as it
    stood before the statement comes back too, so that a refusal needs no second round trip."""
    statement = _count_attempt_statement(Schedule.of(settings), lock=lock)
    row = await statement.fetchrow(db, attempt_email=email, attempt_kind=kind, attempt_at=now)
    assert row is not None  # the statement selects from one row, whatever it counted
    counted, failures, last_failure_at = row
    return AttemptCount(counted, failures, last_failure_at)


# One counted attempt given back. Its own statement, or a part of the one that follows (the mfa_token's).
_ATTEMPT_UNCOUNTED = f"""uncounted_attempt AS (
  UPDATE {LoginThrottle.__tablename__} SET failures = failures - 1
  WHERE email = $1 AND kind = $2 AND failures > 0
)"""  # noqa: S608 - the table name from the model; every value is a parameter


def attempt_uncounted(email: str, kind: str) -> CteWrite:
    """Give one counted attempt of `email`'s counter of `kind` back."""
    return CteWrite(_ATTEMPT_UNCOUNTED, (email, kind))


# Built once, on the table (`_THROTTLES`), so no session is synchronized. The parameters are not named as
# columns (see `_count_attempt_statement`).
_DELETE_THROTTLES = delete(_THROTTLES).where(_THROTTLES.c.email == bindparam("throttle_email"))


async def delete_throttles(db: AsyncSession, email: str) -> None:
    """Every row of `email`."""
    await db.execute(_DELETE_THROTTLES, {"throttle_email": email})


# Every successful login sends it, mostly inside the statement that starts its session (`CteWrite`).
_THROTTLES_CLEARED = f"""cleared_throttles AS (
  DELETE FROM {LoginThrottle.__tablename__} WHERE email = $1 AND kind = ANY($2::VARCHAR[])
)"""  # noqa: S608 - the table name from the model; every value is a parameter


def throttles_cleared(email: str, kinds: list[str]) -> CteWrite:
    """The rows of `email` of these kinds deleted."""
    return CteWrite(_THROTTLES_CLEARED, (email, kinds))


# Device counters


# Built and compiled once, as the account counter's statements, and sent to the driver: every login that
# presents a device token sends them (a browser's, with its device cookie), before its hash. The device is
# read into a read-only object (the login hands it on); its counter is changed on the table, and nothing
# reads the object's counter afterwards.
_DEVICES = cast(Table, LoginDevice.__table__)
_FIND_DEVICE = DriverStatement.of(
    select(*(column.label(attribute) for attribute, column in attribute_columns(LoginDevice)))
    .join(User, User.id == _DEVICES.c.user_id)
    .where(
        _DEVICES.c.token_hash == bindparam("device_token_hash"),
        User.email == bindparam("device_email"),
        _DEVICES.c.expires_at > bindparam("device_now"),
        _DEVICES.c.failures < bindparam("device_max_failures"),
    )
)
_DEVICE_STATE = DriverStatement.of(
    select(_DEVICES.c.failures, _DEVICES.c.last_failure_at).where(
        _DEVICES.c.token_hash == bindparam("device_token_hash")
    )
)
_DEVICE_ATTEMPT_UNCOUNTED = f"""uncounted_device_attempt AS (
  UPDATE {LoginDevice.__tablename__} SET failures = failures - 1 WHERE token_hash = $1 AND failures > 0
)"""  # noqa: S608 - the table name from the model; every value is a parameter


async def find_device(
    db: AsyncSession, token_hash: bytes, email: str, *, now: datetime, max_failures: int
) -> LoginDevice | None:
    """The live, still trusted device of digest `token_hash` if it belongs to the account `email` (a
    read-only model)."""
    row = await _FIND_DEVICE.fetchrow(
        db, device_token_hash=token_hash, device_email=email, device_now=now, device_max_failures=max_failures
    )
    return read_only(LoginDevice, dict(row)) if row is not None else None


@functools.cache
def _count_device_attempt_statement(schedule: Schedule) -> DriverStatement:
    """`count_device_attempt_if_allowed`'s statement, built and compiled once per schedule, on the table;
    its values are the parameters `device_token_hash` and `device_attempt_at` (not named as columns: see
    `_count_attempt_statement`)."""
    now = bindparam("device_attempt_at", type_=_DEVICES.c.last_failure_at.type)
    allowed = attempt_allowed(_DEVICES.c.failures, _DEVICES.c.last_failure_at, schedule, now, lock=False)
    return DriverStatement.of(
        update(_DEVICES)
        .where(_DEVICES.c.token_hash == bindparam("device_token_hash"), allowed)
        .values(failures=_DEVICES.c.failures + 1, last_failure_at=now)
        .returning(_DEVICES.c.failures)
    )


async def count_device_attempt_if_allowed(
    db: AsyncSession, token_hash: bytes, *, settings: Settings, now: datetime
) -> int | None:
    """As `count_attempt` on the existing row, on the device's counter; the account lock does not apply."""
    statement = _count_device_attempt_statement(Schedule.of(settings))
    failures: int | None = await statement.fetchval(db, device_token_hash=token_hash, device_attempt_at=now)
    return failures


class DeviceState(NamedTuple):
    failures: int
    last_failure_at: datetime | None


async def device_state(db: AsyncSession, token_hash: bytes) -> DeviceState | None:
    """(failures, last_failure_at) of the device, if it still exists."""
    row = await _DEVICE_STATE.fetchrow(db, device_token_hash=token_hash)
    return DeviceState(row["failures"], row["last_failure_at"]) if row is not None else None


def device_attempt_uncounted(token_hash: bytes) -> CteWrite:
    """Give one counted attempt of the device `token_hash` back."""
    return CteWrite(_DEVICE_ATTEMPT_UNCOUNTED, (token_hash,))


# A device's new token after a login, in one statement: the presented token (if any, $1) is spent, the new
# one inserted, and of the user's other devices those expired or not among the $6 most recent deleted.
# Every part reads the statement's one snapshot, in which the spent token still exists and the new one does
# not yet: so the spent one is left out of the pruning (it would take a place among the newest, and a row
# may not be deleted twice in one statement).
_DEVICE_REPLACED = f"""spent_device AS (
  DELETE FROM {LoginDevice.__tablename__} WHERE token_hash = $1
), added_device AS (
  INSERT INTO {LoginDevice.__tablename__} (token_hash, user_id, created_at, expires_at, failures)
  VALUES ($2, $3, $4, $5, 0)
), other_devices AS (
  SELECT token_hash, created_at, expires_at FROM {LoginDevice.__tablename__}
  WHERE user_id = $3 AND token_hash IS DISTINCT FROM $1
), pruned_devices AS (
  DELETE FROM {LoginDevice.__tablename__} AS d USING other_devices AS o
  WHERE d.token_hash = o.token_hash AND (
    o.expires_at <= $4
    OR o.token_hash NOT IN (SELECT token_hash FROM other_devices ORDER BY created_at DESC LIMIT $6)
  )
)"""  # noqa: S608 - the table name from the model; every value is a parameter


def device_replaced(
    *,
    token_hash: bytes,
    user_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
    spent_hash: bytes | None,
    newest: int,
) -> CteWrite:
    """`_DEVICE_REPLACED`: store the device token `token_hash` of `user_id`, spend `spent_hash`, and keep
    at most `newest` of the user's other unexpired devices."""
    return CteWrite(_DEVICE_REPLACED, (spent_hash, token_hash, user_id, now, expires_at, newest))
