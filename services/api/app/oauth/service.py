"""What introspection, revocation and UserInfo answer about a token.

Introspection (RFC 7662) is for authenticated confidential clients. A caller sees a token as active
only if it may see it: the token was issued to the caller (its `client_id`), or, for an access token,
its `aud` is the audience the caller registered (`access_token_audience`): a resource server registered
with its audience introspects the tokens meant for it. Anything else, like anything invalid, expired or
whose session ended, is `{"active": false}`, so a caller learns nothing about other clients' tokens.

Revocation (RFC 7009) acts only on the caller's own tokens; another client's token is answered 200 and
left as it was (§2.2). A refresh token or an access token ends its session. A client_credentials token
has no session: it is not revocable and lives until its `exp` (ACCESS_TOKEN_TTL_SECONDS at most, or the
client's override).
"""

import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.grants.client_auth import (
    BASIC_CHALLENGE,
    AuthMethod,
    InvalidClient,
    authenticate_client,
    credentials_of,
)
from app.auth.sessions import (
    Authenticated,
    SessionEndReason,
    end_sessions,
    find_live_session,
    find_session_of_refresh_token,
    idle_ttl,
)
from app.clients import service as clients
from app.clients.models import BUILTIN_CLIENT_ID, OAuthClient
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import PyauthError
from app.core.opaque_tokens import digest
from app.keys.keyring import KeyRing
from app.keys.tokens import InvalidAccessToken, verify_issued_token
from app.oidc.claims import scope_claims

INACTIVE: Final[Mapping[str, Any]] = MappingProxyType({"active": False})
ACCESS_TOKEN_HINT: Final = "access_token"  # noqa: S105 - RFC 7009 §2.1 hint names, not secrets
REFRESH_TOKEN_HINT: Final = "refresh_token"  # noqa: S105


class InsufficientScope(PyauthError):
    """RFC 6750 §3.1: the token is valid but lacks the scope the resource needs."""

    status_code = 403
    code = "insufficient_scope"
    message = "The access token lacks the openid scope."
    headers = MappingProxyType({"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="openid"'})


async def authenticate_confidential_client(
    db: AsyncSession, form: Mapping[str, str | None], authorization: str | None, *, ctx: RequestContext
) -> OAuthClient:
    """The confidential client that the request's credentials prove (as at the token endpoint), or 401
    `invalid_client`: introspection answers no public client and nobody anonymous."""
    credentials = credentials_of(form, authorization)
    if credentials.method is AuthMethod.NONE:
        raise InvalidClient("Authenticate as a confidential client.", headers=BASIC_CHALLENGE)
    return await authenticate_client(db, credentials, ctx=ctx)


async def authenticate_revoking_client(
    db: AsyncSession, form: Mapping[str, str | None], authorization: str | None, *, ctx: RequestContext
) -> OAuthClient:
    """The client that revokes, authenticated as at the token endpoint: no credentials at all is the
    built-in client, so callers from before clients existed keep working."""
    return await authenticate_client(db, credentials_of(form, authorization), ctx=ctx)


def _client_of(claims: Mapping[str, Any]) -> str:
    # Tokens from before RFC 9068's `client_id` claim were all the built-in client's.
    client_id = claims.get("client_id", BUILTIN_CLIENT_ID)
    return client_id if isinstance(client_id, str) else ""


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return (
        [aud]
        if isinstance(aud, str)
        else [a for a in aud if isinstance(a, str)]
        if isinstance(aud, list)
        else []
    )


async def _token_session(
    db: AsyncSession, claims: Mapping[str, Any], *, now: datetime, settings: Settings
) -> Authenticated | None:
    """The live session of a user's access token, if it is the session of the token's user and client."""
    sid = claims.get("sid")
    try:
        session_id = uuid.UUID(sid) if isinstance(sid, str) else None
    except ValueError:
        return None
    found = await find_live_session(db, session_id, now=now, settings=settings) if session_id else None
    if found is None or str(found.user.id) != claims["sub"] or found.session.client_id != _client_of(claims):
        return None
    return found


async def _verified(
    keyring: KeyRing, settings: Settings, token: str, *, now: datetime
) -> Mapping[str, Any] | None:
    if token.count(".") != 2:  # not a JWT: pyauth's refresh tokens are opaque
        return None
    try:
        return await verify_issued_token(keyring, settings, token, now=now)
    except InvalidAccessToken:
        return None


async def introspect(
    db: AsyncSession,
    *,
    caller: OAuthClient,
    token: str,
    token_type_hint: str | None,
    keyring: KeyRing,
    settings: Settings,
    ctx: RequestContext,
) -> Mapping[str, Any]:
    """RFC 7662 §2.2: the token's metadata if it is active and the caller may see it, else inactive. The
    hint only chooses which kind is looked up first (§2.1)."""
    lookups = [_access_token_answer, _refresh_token_answer]
    if token_type_hint == REFRESH_TOKEN_HINT:
        lookups.reverse()
    for lookup in lookups:
        answer = await lookup(db, caller, token, keyring=keyring, settings=settings, now=ctx.now)
        if answer is not None:
            return answer
    return INACTIVE


async def _access_token_answer(
    db: AsyncSession, caller: OAuthClient, token: str, *, keyring: KeyRing, settings: Settings, now: datetime
) -> Mapping[str, Any] | None:
    claims = await _verified(keyring, settings, token, now=now)
    if claims is None:
        return None
    client_id = _client_of(claims)
    if client_id != caller.client_id and caller.access_token_audience not in _audiences(claims):
        return None
    if "sid" in claims:
        if await _token_session(db, claims, now=now, settings=settings) is None:
            return None
    elif claims["sub"] != client_id:
        return None
    # A token stops with its client (disabled, or deleted: which also ends its sessions).
    if client_id != caller.client_id and await clients.find_enabled_client(db, client_id) is None:
        return None
    answer = {
        "active": True,
        "token_type": "Bearer",
        "client_id": client_id,
        **{
            name: claims[name]
            for name in ("scope", "sub", "exp", "iat", "nbf", "iss", "aud", "jti")
            if name in claims
        },
    }
    return answer


async def _refresh_token_answer(
    db: AsyncSession, caller: OAuthClient, token: str, *, keyring: KeyRing, settings: Settings, now: datetime
) -> Mapping[str, Any] | None:
    found = await find_session_of_refresh_token(db, token, now=now, settings=settings, live_only=True)
    if found is None or found.session.client_id != caller.client_id:
        return None
    auth_session = found.session
    # The token works until the session's absolute expiry or its idle timeout, whichever comes first.
    expires_at = min(auth_session.expires_at, auth_session.last_used_at + idle_ttl(settings))
    answer: dict[str, Any] = {
        "active": True,
        "token_type": "refresh_token",
        "client_id": auth_session.client_id,
        "sub": str(found.user.id),
        # The one unused token of a session was issued at its last use.
        "iat": math.floor(auth_session.last_used_at.timestamp()),
        "exp": math.floor(expires_at.timestamp()),
        "iss": settings.issuer,
        "aud": settings.issuer,  # a refresh token is for pyauth's own token endpoint
        "jti": digest(token).hex()[:32],  # names the token without revealing it
    }
    if auth_session.scopes:
        answer["scope"] = " ".join(auth_session.scopes)
    return answer


async def revoke(
    db: AsyncSession,
    *,
    caller: OAuthClient,
    token: str,
    keyring: KeyRing,
    settings: Settings,
    ctx: RequestContext,
) -> None:
    """RFC 7009 §2.1: end the session of the caller's refresh or access token. A token that is unknown,
    invalid, expired or another client's changes nothing (§2.2: still answered 200). The hint is not
    needed: a refresh token is opaque and an access token a JWT, so each is recognised by its form."""
    found = await find_session_of_refresh_token(db, token, now=ctx.now, settings=settings, live_only=False)
    if found is None:
        claims = await _verified(keyring, settings, token, now=ctx.now)
        if claims is None or _client_of(claims) != caller.client_id:
            return
        found = await _token_session(db, claims, now=ctx.now, settings=settings)
    if found is None or found.session.client_id != caller.client_id:
        return
    await end_sessions(
        db,
        SessionEndReason.TOKEN_REVOKED,
        user_id=found.user.id,
        session_id=found.session.id,
        ctx=ctx,
    )


async def userinfo(
    db: AsyncSession, *, token: str, keyring: KeyRing, settings: Settings, ctx: RequestContext
) -> Mapping[str, Any]:
    """OIDC Core §5.3.2: `sub` and the claims the token's scopes grant (§5.4): `email` gives `email` and
    `email_verified`; `profile` gives the profile claims pyauth keeps (`name` when set, `locale`,
    `updated_at`), from `app.oidc.claims` as the ID token's. 401 `invalid_token` unless the token is live
    and a user's; 403 without `openid`."""
    claims = await _verified(keyring, settings, token, now=ctx.now)
    found = await _token_session(db, claims, now=ctx.now, settings=settings) if claims is not None else None
    if claims is None or found is None:
        raise InvalidAccessToken()
    scopes = set(str(claims.get("scope", "")).split())
    if "openid" not in scopes:
        raise InsufficientScope()
    return {"sub": str(found.user.id), **scope_claims(found.user, scopes)}
