"""Tables of the limits.

`rate_limit_hits` is a fixed-window counter per (limit, client IP, window). It is UNLOGGED: no WAL, so a
hit costs one cheap upsert; it survives clean restarts (make down / make up) and is emptied only by a
Postgres crash, after which windows simply start again.

`login_throttles` counts consecutive failed logins per canonical email, for known and unknown addresses
alike (so throttling reveals nothing), and is an ordinary, crash-safe table.
"""

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
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
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
