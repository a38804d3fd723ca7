"""Sessions and their refresh tokens.

A session is one login: a family of refresh tokens of which at most one is unused at any time.
Refresh tokens are stored only as a SHA-256 digest of their 256 random bits.
"""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, LargeBinary, String, Uuid, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base


class AuthSession(Base):
    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    # The OAuth client the session's tokens were issued to (its refresh tokens work for it alone); the
    # default is the built-in client, which every session from before the client registry belongs to.
    # Deleting a client ends its sessions.
    client_id: Mapped[str] = mapped_column(
        String(64),
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
        server_default=text("'pyauth'"),
    )
    # The scopes the login granted (RFC 6749 §3.3): a refresh grants these or fewer, never more (§6).
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(128)), nullable=False, server_default=text("'{}'"))
    # How the login authenticated (RFC 8176 `amr` values): refreshed tokens carry the same. Sessions from
    # before second factors existed were password logins.
    amr: Mapped[list[str]] = mapped_column(ARRAY(String(16)), nullable=False, server_default=text("'{pwd}'"))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # The one live token of a session is found by this partial index.
        Index("ix_refresh_tokens_unused", "session_id", postgresql_where=text("used_at IS NULL")),
    )
