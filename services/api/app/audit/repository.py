"""Queries on `audit_events`: keyset pagination, newest first.

The cursor is the (occurred_at, id) of the last row of a page: unlike an offset, it does not shift
when new events arrive while someone pages back through the log.
"""

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.core.errors import PyauthError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CURSOR_LENGTH = 64


class InvalidCursor(PyauthError):
    status_code = 422
    code = "invalid_cursor"
    message = "The cursor is not one this API handed out."


@dataclass(frozen=True)
class Cursor:
    occurred_at: datetime
    id: int

    @classmethod
    def of(cls, entry: AuditEntry) -> "Cursor":
        return cls(entry.occurred_at, entry.id)

    def encode(self) -> str:
        # Whole microseconds: Postgres keeps microseconds, so the cursor compares exactly.
        micros = (self.occurred_at - _EPOCH) // timedelta(microseconds=1)
        return base64.urlsafe_b64encode(f"{micros}.{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        if len(value) > MAX_CURSOR_LENGTH:
            raise InvalidCursor()
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
            micros, entry_id = (int(part) for part in raw.split("."))
            return cls(_EPOCH + timedelta(microseconds=micros), entry_id)
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
            raise InvalidCursor() from None


async def page(
    db: AsyncSession,
    *,
    limit: int,
    before: Cursor | None,
    user_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    events: Sequence[str],
    since: datetime | None,
    until: datetime | None,
) -> list[AuditEntry]:
    """Up to `limit + 1` rows, so the caller can tell whether another page follows."""
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(AuditEntry.user_id == user_id)
    if actor_id is not None:
        conditions.append(AuditEntry.actor_id == actor_id)
    if events:
        conditions.append(AuditEntry.event.in_(events))
    if since is not None:
        conditions.append(AuditEntry.occurred_at >= since)
    if until is not None:
        conditions.append(AuditEntry.occurred_at < until)
    if before is not None:
        conditions.append(
            tuple_(AuditEntry.occurred_at, AuditEntry.id) < tuple_(before.occurred_at, before.id)
        )
    result = await db.scalars(
        select(AuditEntry)
        .where(*conditions)
        .order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc())
        .limit(limit + 1)
    )
    return list(result)
