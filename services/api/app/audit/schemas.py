"""What the audit endpoints return: the full row for admins, a reduced view for the user concerned."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    event: str
    user_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    session_id: uuid.UUID | None
    ip_address: str | None
    user_agent: str | None
    reason: str | None
    details: dict[str, Any] | None


class AuditPage(BaseModel):
    """Newest first. Pass `next_cursor` back as `cursor` for the next page; null on the last page."""

    items: list[AuditEventRead]
    next_cursor: str | None


class OwnEventRead(BaseModel):
    """One of the caller's own security events. An administrator's action says only that: which
    administrator, and from where, is not shown."""

    occurred_at: datetime
    event: str
    reason: str | None
    by_administrator: bool
    session_id: uuid.UUID | None
    ip_address: str | None
    user_agent: str | None


class OwnEventsPage(BaseModel):
    items: list[OwnEventRead]
    next_cursor: str | None
