"""Writing and reading the audit log.

`record()` adds one row to the caller's transaction: the event is committed with the change it
describes, or not at all. A flow that answers with an error (which rolls the request back) and must
still keep its event commits first, as reuse detection does for its revocation.

No password, token or secret ever goes into a row: `details` is for small facts (counts, role lists,
codes), and keys that look like secrets are redacted as a last line of defence.
"""

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import repository
from app.audit.events import AuditEvent
from app.audit.models import (
    MAX_IP_LENGTH,
    MAX_REASON_LENGTH,
    MAX_USER_AGENT_LENGTH,
    AuditEntry,
)
from app.audit.repository import Cursor
from app.core.context import RequestContext

__all__ = ["AuditEvent", "AuditRow", "audit_row", "record", "search"]

log = logging.getLogger("pyauth.audit")

MAX_DETAILS_BYTES = 2048
REDACTED = "[redacted]"
# A key holding any of these is never stored with its value.
_SECRET_KEY_PARTS = ("password", "secret", "token", "hash", "credential", "authorization", "cookie")


async def record(
    db: AsyncSession,
    event: AuditEvent,
    *,
    ctx: RequestContext,
    user_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Add an event to the caller's transaction. No round trip: the row goes out with the next flush.

    `user_id` is the account the event is about, `actor_id` the administrator who acted (None when
    the user acted themself or nobody did), `reason` a short code such as `wrong_password`. The time,
    client address and User-Agent come from `ctx` (none for a background context).
    """
    db.add(
        AuditEntry(
            occurred_at=ctx.now,
            event=AuditEvent(event).value,
            user_id=user_id,
            actor_id=actor_id,
            session_id=session_id,
            ip_address=_clip(ctx.ip_address, MAX_IP_LENGTH),
            user_agent=_clip(ctx.user_agent, MAX_USER_AGENT_LENGTH),
            reason=_clip(reason, MAX_REASON_LENGTH),
            details=stored_details(event, details),
        )
    )


@dataclass(frozen=True)
class AuditRow:
    """An audit row's own columns as stored, for a statement that writes the row together with the change
    it describes (its user and session come from that change): what `record` would store."""

    event: str
    ip_address: str | None
    user_agent: str | None
    details: dict[str, Any] | None

    def driver_values(self) -> tuple[str, str | None, str | None, str | None]:
        """The event, address, User-Agent and details (as JSON text, what asyncpg takes for `jsonb`), for a
        statement sent to the driver directly."""
        details = json.dumps(self.details) if self.details is not None else None
        return self.event, self.ip_address, self.user_agent, details


def audit_row(event: AuditEvent, ctx: RequestContext, details: Mapping[str, Any] | None = None) -> AuditRow:
    """`event`'s row as `record` would store it: the client's address and User-Agent clipped, the details
    redacted and bounded."""
    return AuditRow(
        event=AuditEvent(event).value,
        ip_address=_clip(ctx.ip_address, MAX_IP_LENGTH),
        user_agent=_clip(ctx.user_agent, MAX_USER_AGENT_LENGTH),
        details=stored_details(event, details),
    )


async def search(
    db: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    user_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    events: Sequence[AuditEvent] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """One page of events, newest first, and the cursor of the next page (None on the last one).

    `since` is inclusive and `until` exclusive. Raises `InvalidCursor` for a cursor this API did not
    hand out."""
    rows = await repository.page(
        db,
        limit=limit,
        before=Cursor.decode(cursor) if cursor else None,
        user_id=user_id,
        actor_id=actor_id,
        events=[AuditEvent(event).value for event in events],
        since=since,
        until=until,
    )
    next_cursor = Cursor.of(rows[limit - 1]).encode() if len(rows) > limit else None
    return rows[:limit], next_cursor


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def stored_details(event: AuditEvent, details: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The details as an audit row stores them: secrets redacted, JSON-safe, bounded in size."""
    if not details:
        return None
    redacted: list[str] = []
    # A JSON round trip: uuids and datetimes become strings, and what is stored is exactly what reads back.
    clean = json.loads(json.dumps(_redact(details, redacted), default=str))
    if redacted:
        log.warning("audit %s: redacted details keys %s", event, sorted(set(redacted)))
    if len(json.dumps(clean)) > MAX_DETAILS_BYTES:
        log.warning("audit %s: details over %d bytes dropped", event, MAX_DETAILS_BYTES)
        return {"truncated": True}
    return dict(clean)


def _redact(value: Any, redacted: list[str]) -> Any:
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            name = str(key)
            if any(part in name.lower() for part in _SECRET_KEY_PARTS):
                redacted.append(name)
                result[name] = REDACTED
            else:
                result[name] = _redact(item, redacted)
        return result
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(item, redacted) for item in value]
    return value
