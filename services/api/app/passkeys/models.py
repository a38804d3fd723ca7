"""The `passkeys` and `webauthn_challenges` tables.

A passkey row is a credential public key (COSE, as the authenticator gave it) with the sign counter of its
last use (WebAuthn §7.2 step 21), its transports (hints for the browser), the authenticator model (AAGUID)
and the backup flags (BE: may be synced; BS: is backed up). No secret: the private key never leaves the
authenticator.

A challenge row is the server's memory of one ceremony: only the SHA-256 digest of the challenge, whom or
which sign-in attempt it is for, and until when. Answering a ceremony deletes its row in the same statement
that finds it, so a challenge serves one answer, also across replicas.
"""

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, BigInteger, Boolean, DateTime, ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base

# WebAuthn §5.1: a credential id is at most 1023 bytes.
MAX_CREDENTIAL_ID_BYTES = 1023
MAX_NAME_LENGTH = 64


class Passkey(Base):
    __tablename__ = "passkeys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Unique across users: one authenticator credential belongs to one account (WebAuthn §7.1 step 26).
    credential_id: Mapped[bytes] = mapped_column(
        LargeBinary(MAX_CREDENTIAL_ID_BYTES), nullable=False, unique=True
    )
    public_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sign_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    transports: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH), nullable=False)
    aaguid: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    backup_eligible: Mapped[bool] = mapped_column(Boolean, nullable=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebAuthnChallenge(Base):
    __tablename__ = "webauthn_challenges"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    challenge_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)  # registration | authentication
    # Whose ceremony it is: the signed-in user enrolling, or the user of a second-factor step. NULL for a
    # passwordless sign-in, where the authenticator names the user.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # An opaque id of the sign-in attempt the challenge belongs to (e.g. the MFA token's): the answer must
    # name the same attempt.
    attempt: Mapped[str | None] = mapped_column(String(128))
    user_verification: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
