"""The `account_tokens` table: single-use tokens sent by email, stored only as a SHA-256 digest.

`email` is the address the token was mailed to: a verification token only verifies that address, an
email-change token carries the new address it will set, and a cancel token the old address it was sent to.
"""

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose label, not a secret
    CHANGE_EMAIL = "change_email"
    # Mailed to the old address with the "change requested" warning: it only ever takes power away, so
    # it outlives password changes and newer requests.
    CANCEL_EMAIL_CHANGE = "cancel_email_change"


# What a password change or reset, logout-all, deactivation or an administrator's reset ends: every token
# that can grant something (ASVS 7.4.3).
GRANTING_PURPOSES = (TokenPurpose.VERIFY_EMAIL, TokenPurpose.RESET_PASSWORD, TokenPurpose.CHANGE_EMAIL)


class AccountToken(Base):
    __tablename__ = "account_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
