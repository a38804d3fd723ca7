"""The `authorization_codes` table: one row per code the authorization endpoint hands out.

A code is 256 random bits stored only as its SHA-256 digest (as refresh tokens are). It is bound to the
client, the exact redirect URI, the PKCE challenge, the nonce and scope of its request, and to the user and
how and when they authenticated (the browser session's `auth_time` and `amr`). `used_at` makes it single
use; `session_id` names the session its exchange started, which a second use of the code ends
(RFC 6749 §4.1.2); `browser_session_id` the browser session it came from, whose sign-out ends that session.
"""

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, DateTime, ForeignKey, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    code_challenge: Mapped[str] = mapped_column(String(128), nullable=False)  # S256 only
    nonce: Mapped[str | None] = mapped_column(String(512))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(128)), nullable=False)
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    amr: Mapped[list[str]] = mapped_column(ARRAY(String(16)), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The session the code's exchange started: ended if the code comes back (RFC 6749 §4.1.2).
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("auth_sessions.id", ondelete="SET NULL"), index=True
    )
    # The SSO browser session whose sign-in the code carries: RP-initiated logout ends the client sessions
    # its codes started.
    browser_session_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("browser_sessions.id", ondelete="SET NULL"), index=True
    )


class AppGrant(Base):
    """A user's consent to a (third-party) client: the scopes they allowed it, remembered so that the
    consent page is shown once, until `prompt=consent` asks again or the client asks for more. The user
    lists and revokes these (`/users/me/grants`)."""

    __tablename__ = "app_grants"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(128)), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
