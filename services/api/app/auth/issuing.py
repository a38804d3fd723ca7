"""The tokens of a session: a new refresh token in its family and an access token (an RFC 9068 JWT,
`typ: at+jwt`, signed with the key ring's current key) that carries how and when the session's user
authenticated (`amr`, `auth_time`). The grants issue here; `app.keys.tokens` verifies."""

import math
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.sessions import Authentication
from app.core.config import Settings
from app.core.opaque_tokens import new_token
from app.keys.keyring import KeyRing

# Claims only `issue_access_token` sets: `amr` (RFC 8176) and `auth_time` (OIDC Core) come from the
# login, never from `extra_claims`.
REGISTERED_CLAIMS: Final = frozenset(
    {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "amr", "auth_time"}
)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: uuid.UUID
    device_token: str | None = None  # after a password login: the client's new device token
    id_token: str | None = None  # the authorization code grant, when `openid` was asked for


def _timestamp(now: datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return now.timestamp()


def issue_access_token(
    keyring: KeyRing,
    settings: Settings,
    *,
    subject: str,
    session_id: str,
    now: datetime,
    amr: Sequence[str] = (),
    auth_time: datetime | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> tuple[str, int]:
    """A signed access token for `subject` in session `session_id`, and its lifetime in seconds.

    `amr` (RFC 8176 method values) and `auth_time` (when the user authenticated, OIDC Core §2) are
    set when given; pyauth's grants always give them."""
    extra = dict(extra_claims or {})
    if clash := REGISTERED_CLAIMS & extra.keys():
        raise ValueError(f"extra_claims may not set registered claims: {sorted(clash)}")
    key = keyring.current
    issued_at = math.floor(_timestamp(now))
    ttl = settings.ACCESS_TOKEN_TTL_SECONDS
    claims = {
        **extra,
        "iss": settings.issuer,
        "aud": settings.JWT_AUDIENCE,
        "sub": subject,
        "exp": issued_at + ttl,
        "iat": issued_at,
        "nbf": issued_at,
        "jti": secrets.token_urlsafe(16),
        "sid": session_id,
    }
    if amr:
        claims["amr"] = list(amr)
    if auth_time is not None:
        claims["auth_time"] = math.floor(_timestamp(auth_time))
    headers = {"kid": key.kid, "typ": "at+jwt"}
    token = jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=headers)
    return token, ttl


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
