"""The tokens of a session: a new refresh token in its family and an access token that carries how
and when the session's user authenticated (`amr`, `auth_time`)."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.sessions import Authentication
from app.core.config import Settings
from app.core.opaque_tokens import new_token
from app.keys.service import KeyRing
from app.keys.tokens import issue_access_token


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: uuid.UUID
    device_token: str | None = None  # after a password login: the client's new device token


async def issue_tokens(
    db: AsyncSession,
    session_id: uuid.UUID,
    authentication: Authentication,
    *,
    keyring: KeyRing,
    settings: Settings,
    now: datetime,
) -> IssuedTokens:
    user = authentication.user
    refresh_token, refresh_hash = new_token()
    await repository.add_refresh_token(db, session_id=session_id, token_hash=refresh_hash, now=now)
    access_token, expires_in = issue_access_token(
        keyring,
        settings,
        subject=str(user.id),
        session_id=str(session_id),
        now=now,
        amr=authentication.amr,
        auth_time=authentication.auth_time,
        extra_claims={"email_verified": user.is_verified, "roles": list(user.roles)},
    )
    return IssuedTokens(access_token, expires_in, refresh_token, session_id, authentication.device_token)
