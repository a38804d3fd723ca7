"""The `signing_keys` table: one row per key pair; the private half is encrypted at rest."""

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), nullable=False)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # When it may start signing. A rotated-in key is published (in the JWKS) from `created_at` but signs
    # only from here, KEY_PUBLICATION_LEAD_SECONDS later, so that cached key sets already hold it.
    active_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # When a newer key takes over signing (at a rotation: the new key's `active_from`, possibly ahead);
    # the public key stays published until every token it signed has expired.
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
