"""Tables of the second factors.

`mfa_totp` holds at most one TOTP authenticator per user: its secret encrypted with the key-encryption key
(`app.mfa.secret_box`), `confirmed_at` once one valid code proved the user's app has it (before that it
is no factor), and `last_step`, the RFC 6238 time step of the last code accepted, so that no code is
accepted twice (the UPDATE that accepts one requires a later step: see `repository.accept_totp_step`).

`mfa_recovery_codes` holds ten single-use codes per user, only as SHA-256 digests: each code is 128 random
bits, so a digest cannot be reversed by guessing, and a slow password hash would add nothing but cost.

`mfa_tokens` are the tickets a password login that needs a second factor answers with: single-use,
short-lived, bound to the user, the client and the device token of the first step; only their digest is
stored.
"""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, LargeBinary, String, Uuid, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base


class MfaTotp(Base):
    __tablename__ = "mfa_totp"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class MfaRecoveryCode(Base):
    __tablename__ = "mfa_recovery_codes"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MfaToken(Base):
    __tablename__ = "mfa_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    client_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), nullable=False
    )
    # The device token the first step presented (its digest), so the finished login replaces it.
    device_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # What the first step proved (RFC 8176 values), which the second step's methods are added to.
    amr: Mapped[list[str]] = mapped_column(ARRAY(String(16)), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(128)), nullable=False, server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_mfa_tokens_expires_at", "expires_at"),)
