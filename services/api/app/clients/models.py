"""The `oauth_clients` table and the hashed secrets of confidential clients (`oauth_client_secrets`).

A client secret is 256 random bits, so it is stored as its SHA-256 digest, as refresh tokens are
(`app.core.opaque_tokens`): nobody can guess or brute-force a 256-bit value from its digest, and a slow
password hash (argon2) would only cost CPU on every token request without adding anything.
"""

from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, Timestamps

# The first-party client that token requests without client credentials are made for (migration 0013
# seeds it): every caller of the password and refresh grants from before the client registry.
BUILTIN_CLIENT_ID: Final = "pyauth"
MAX_CLIENT_ID_LENGTH: Final = 64


class ClientType(StrEnum):
    """RFC 6749 §2.1: a confidential client keeps a secret; a public one (an app on a user's device, a
    browser app) cannot."""

    CONFIDENTIAL = "confidential"
    PUBLIC = "public"


class GrantType(StrEnum):
    """The grant types this package names itself (the defaults, the confidential-only rule). A client may
    be registered for any grant type the token endpoint's registry serves (`app.auth.grants.registry`),
    which the admin API checks: adding a grant needs no change here."""

    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type's name
    CLIENT_CREDENTIALS = "client_credentials"
    PASSWORD = "password"  # noqa: S105 - a grant type's name


class SigningAlgorithm(StrEnum):
    """The ID-token signing algorithms a client may register (`id_token_signed_response_alg`)."""

    ES256 = "ES256"
    RS256 = "RS256"


class OAuthClient(Timestamps, Base):
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(MAX_CLIENT_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    client_type: Mapped[str] = mapped_column(String(16), nullable=False)
    redirect_uris: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'")
    )
    grant_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(128)), nullable=False, server_default=text("'{}'"))
    # First-party clients are the service's own apps: no consent screen.
    first_party: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    id_token_signed_response_alg: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default=text("'ES256'")
    )
    # None: the service's defaults (JWT_AUDIENCE, ACCESS_TOKEN_TTL_SECONDS, SESSION_ABSOLUTE_TTL_SECONDS).
    access_token_audience: Mapped[str | None] = mapped_column(String(256))
    access_token_ttl_seconds: Mapped[int | None] = mapped_column(Integer)
    refresh_token_ttl_seconds: Mapped[int | None] = mapped_column(Integer)
    is_disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))

    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - SQLAlchemy's declarative attribute
    __table_args__ = (
        CheckConstraint("client_type IN ('confidential', 'public')", name="known_type"),
        CheckConstraint("id_token_signed_response_alg IN ('ES256', 'RS256')", name="known_id_token_alg"),
    )

    @property
    def is_confidential(self) -> bool:
        return self.client_type == ClientType.CONFIDENTIAL


class ClientSecret(Base):
    """One secret of a confidential client. Two are live during a rotation: the new one, and the previous
    one until its `expires_at`."""

    __tablename__ = "oauth_client_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(
        String(MAX_CLIENT_ID_LENGTH),
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # None: until rotated
