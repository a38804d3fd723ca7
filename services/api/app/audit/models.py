"""The `audit_events` table: append-only rows, one per security event.

`user_id` and `actor_id` hold plain uuids, not foreign keys: the history of an account must outlive the
account, so deleting a user deletes none of its events.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base

MAX_EVENT_LENGTH = 64
MAX_REASON_LENGTH = 64
MAX_IP_LENGTH = 64
MAX_USER_AGENT_LENGTH = 512


class AuditEntry(Base):
    __tablename__ = "audit_events"

    # An identity column: cheap, and the tie-breaker of the (occurred_at, id) keyset cursor.
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    event: Mapped[str] = mapped_column(String(MAX_EVENT_LENGTH), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    ip_address: Mapped[str | None] = mapped_column(String(MAX_IP_LENGTH))
    user_agent: Mapped[str | None] = mapped_column(String(MAX_USER_AGENT_LENGTH))
    reason: Mapped[str | None] = mapped_column(String(MAX_REASON_LENGTH))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        # One index per admin filter, each ending in the cursor's order: newest first, id as tie-breaker.
        Index("ix_audit_events_user_id_occurred_at", "user_id", "occurred_at", "id"),
        Index("ix_audit_events_event_occurred_at", "event", "occurred_at", "id"),
        Index("ix_audit_events_occurred_at", "occurred_at", "id"),
        # What one admin did: few rows, so a partial index.
        Index(
            "ix_audit_events_actor_id_occurred_at",
            "actor_id",
            "occurred_at",
            "id",
            postgresql_where=text("actor_id IS NOT NULL"),
        ),
    )
