"""The tokens of a session: a new refresh token in its family and an access token (an RFC 9068 JWT,
`typ: at+jwt`, signed with the key ring's current key) that carries the client it was issued to
(`client_id`), the scopes granted (`scope`), the client's audience (`aud`) and how and when the session's
user authenticated (`amr`, `auth_time`). The grants issue here; `app.keys.tokens` verifies."""

import math
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.sessions import Authentication, start_session
from app.clients.models import BUILTIN_CLIENT_ID, OAuthClient
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.opaque_tokens import new_token
from app.keys.keyring import KeyRing
from app.keys.signing import sign_jwt
from app.oidc.acr import acr_of

# RFC 9068 §2.1: the `typ` header of a JWT access token.
ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
# Claims only `issue_access_token` sets: `amr` (RFC 8176) and `auth_time` (OIDC Core) come from the
# login, `client_id` and `scope` (RFC 9068 §2.2) from the grant, never from `extra_claims`.
REGISTERED_CLAIMS: Final = frozenset(
    {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "amr", "acr", "auth_time", "client_id", "scope"}
)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str | None  # None: a grant without a refresh token (client_credentials)
    session_id: uuid.UUID | None  # None: a token that belongs to no user's session
    device_token: str | None = None  # after a password login: the client's new device token
    scope: tuple[str, ...] = ()  # the scopes the access token carries (RFC 6749 §5.1 `scope`)
    id_token: str | None = None  # with `openid`: the authorization code grant, and a refresh


def _timestamp(now: datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return now.timestamp()


def audience_of(oauth_client: OAuthClient, settings: Settings) -> str:
    """The `aud` of the client's access tokens: its own audience, else the service's."""
    return oauth_client.access_token_audience or settings.JWT_AUDIENCE


def issue_access_token(
    keyring: KeyRing,
    settings: Settings,
    *,
    subject: str,
    session_id: str | None,
    now: datetime,
    amr: Sequence[str] = (),
    auth_time: datetime | None = None,
    client_id: str = BUILTIN_CLIENT_ID,
    scope: Sequence[str] = (),
    audience: str | None = None,
    ttl_seconds: int | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> tuple[str, int]:
    """A signed access token for `subject` in session `session_id` (None: no session, as for a client's
    own token), and its lifetime in seconds (`ttl_seconds`, else ACCESS_TOKEN_TTL_SECONDS).

    `aud` is `audience`, else JWT_AUDIENCE. `scope` is space-separated (RFC 9068 §2.2.3), left out when
    nothing was granted. `amr` (RFC 8176 method values) and `auth_time` (when the user authenticated,
    OIDC Core §2) are set when given; pyauth's user grants always give them."""
    extra = dict(extra_claims or {})
    if clash := REGISTERED_CLAIMS & extra.keys():
        raise ValueError(f"extra_claims may not set registered claims: {sorted(clash)}")
    key = keyring.current
    issued_at = math.floor(_timestamp(now))
    ttl = ttl_seconds or settings.ACCESS_TOKEN_TTL_SECONDS
    claims = {
        **extra,
        "iss": settings.issuer,
        "aud": audience or settings.JWT_AUDIENCE,
        "sub": subject,
        "client_id": client_id,
        "exp": issued_at + ttl,
        "iat": issued_at,
        "nbf": issued_at,
        "jti": secrets.token_urlsafe(16),
    }
    if session_id is not None:
        claims["sid"] = session_id
    if scope:
        claims["scope"] = " ".join(scope)
    if amr:
        claims["amr"] = list(amr)
        claims["acr"] = acr_of(amr)
    if auth_time is not None:
        claims["auth_time"] = math.floor(_timestamp(auth_time))
    return sign_jwt(key, claims, typ=ACCESS_TOKEN_TYPE), ttl


def issue_tokens(
    refresh_token: str,
    session_id: uuid.UUID,
    authentication: Authentication,
    *,
    keyring: KeyRing,
    settings: Settings,
    now: datetime,
    oauth_client: OAuthClient,
    scope: Sequence[str],
) -> IssuedTokens:
    """`refresh_token`, already stored for the session (its first, or a rotation's successor), and
    a new access token for `oauth_client` granting `scope`."""
    user = authentication.user
    access_token, expires_in = issue_access_token(
        keyring,
        settings,
        subject=str(user.id),
        session_id=str(session_id),
        now=now,
        amr=authentication.amr,
        auth_time=authentication.auth_time,
        client_id=oauth_client.client_id,
        scope=scope,
        audience=audience_of(oauth_client, settings),
        ttl_seconds=oauth_client.access_token_ttl_seconds,
        extra_claims={"email_verified": user.is_verified, "roles": list(user.roles)},
    )
    return IssuedTokens(
        access_token,
        expires_in,
        refresh_token,
        session_id,
        authentication.device_token,
        scope=tuple(scope),
    )


async def start_session_with_tokens(
    db: AsyncSession,
    authentication: Authentication,
    *,
    oauth_client: OAuthClient,
    scopes: Sequence[str],
    keyring: KeyRing,
    settings: Settings,
    ctx: RequestContext,
) -> IssuedTokens:
    """How a completed login ends (the password grant, the mfa grant): a new session of `oauth_client`,
    granted `scopes`, with the client's refresh-token lifetime, and its first tokens."""
    refresh_token, refresh_token_hash = new_token()
    session_id = await start_session(
        db,
        authentication,
        settings=settings,
        ctx=ctx,
        refresh_token_hash=refresh_token_hash,
        oauth_client_id=oauth_client.client_id,
        scopes=scopes,
        absolute_ttl_seconds=oauth_client.refresh_token_ttl_seconds,
    )
    return issue_tokens(
        refresh_token,
        session_id,
        authentication,
        keyring=keyring,
        settings=settings,
        now=ctx.now,
        oauth_client=oauth_client,
        scope=scopes,
    )
