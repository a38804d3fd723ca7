"""Tables of the limits.

`rate_limit_hits` is a fixed-window counter per (limit, client IP, window). It is UNLOGGED: no WAL, so a
hit costs one cheap upsert; it survives clean restarts (make down / make up) and is emptied only by a
Postgres crash, after which windows simply start again.

`login_throttles` counts consecutive failed password checks per canonical email and kind: `login` for
sign-ins from untrusted clients, for known and unknown addresses alike (so throttling reveals nothing),
and `reauth` for the current-password check of a signed-in user (password and email change). A row is
reserved (counted) before the hash runs and deleted by a success. It is an ordinary, crash-safe table.

`login_devices` holds the device tokens handed out by successful logins (OWASP's device cookies), only as
a SHA-256 digest, each with its own failure counter: a login that presents one is throttled on that
counter instead of the account's.
"""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base


class RateLimitHit(Base):
    __tablename__ = "rate_limit_hits"
    __table_args__ = {"prefixes": ["UNLOGGED"]}  # noqa: RUF012 - SQLAlchemy's declarative attribute

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)


class LoginThrottle(Base):
    __tablename__ = "login_throttles"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True, server_default="login")
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class LoginDevice(Base):
    __tablename__ = "login_devices"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
