"""The rules of authentication: password login (through the login pipeline), refresh-token rotation
with reuse detection.

A session is a family of refresh tokens. Each refresh marks the presented token used and issues its
successor in the same session. A used token presented again is theft unless it comes within
REFRESH_REUSE_GRACE_SECONDS of its rotation (two tabs refreshing at once): theft revokes the session.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import audit_row, record
from app.auth import repository
from app.auth.errors import InvalidGrant, RefreshTokenAlreadyUsed
from app.auth.grants.client_binding import refuse_another_clients_token
from app.auth.issuing import IssuedTokens, issue_tokens, start_session_with_tokens
from app.auth.login.flow import LoginFlow, LoginRequest
from app.auth.login.pipeline import authenticate
from app.auth.login.second_factor import MfaRequired, second_factors
from app.auth.models import AuthSession
from app.auth.repository import SessionWithUser
from app.auth.scopes import granted_scopes
from app.auth.sessions import (
    SessionEndReason,
    end_sessions,
    idle_ttl,
    session_authentication,
    session_is_live,
)
from app.clients.models import OAuthClient
from app.clients.service import EnabledClientRead
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import commit_before_refusing
from app.core.opaque_tokens import digest, new_token
from app.keys.keyring import KeyRing
from app.metrics import instruments as metrics
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import normalize_password, refuse_oversized
from app.users.emails import InvalidEmail, canonicalize_email

log = logging.getLogger("pyauth.auth")


async def login_with_password(
    db: AsyncSession,
    *,
    username: str,
    password: str,
    hasher: PasswordHasher,
    keyring: KeyRing,
    settings: Settings,
    ctx: RequestContext,
    oauth_client: OAuthClient,
    scope: str | None = None,
    device_token: str | None = None,
) -> IssuedTokens:
    """The password grant: the login pipeline, then a new session of the client and its tokens. The
    session is granted the client's scopes, or those of them `scope` asks for."""
    refuse_oversized(password, settings)  # before anything is counted or hashed
    scopes = granted_scopes(scope, oauth_client.scopes)  # a bad scope costs no attempt
    try:
        email = canonicalize_email(username)
    except InvalidEmail:
        email = username.strip().lower()  # still throttled, like any address
    request = LoginRequest(email=email, password=normalize_password(password), device_token=device_token)
    # Its success writes ride in the statement of its session: one round trip after the hash.
    flow = LoginFlow(db, request, hasher=hasher, settings=settings, ctx=ctx, defer_writes=True)
    try:
        authentication = await authenticate(flow)
    except MfaRequired as required:  # the second step, bound to this client and device
        await second_factors().challenge(
            db,
            required,
            oauth_client=oauth_client,
            scopes=scopes,
            device_token=device_token,
            settings=settings,
            ctx=ctx,
        )
    return await start_session_with_tokens(
        db,
        authentication,
        oauth_client=oauth_client,
        scopes=scopes,
        keyring=keyring,
        settings=settings,
        ctx=ctx,
    )


class RotationAhead:
    """A refresh's rotation sent with the token endpoint's rate-limit hit and the read of its client, in one
    round trip (`repository.count_hit_and_rotate`, as the hit's `Counted` statement) instead of two. Made
    only for a refresh whose client sends no secret (`grants.refresh_token.rotation_ahead`); the statement
    rotates only within the limit and for an enabled public client allowed the grant, the checks the grant
    then makes in Python all over again. `refresh` takes what it found; where it rotated nothing, the
    step-by-step path finds out why, as after `repository.rotate_live_refresh_token`."""

    def __init__(
        self, refresh_token: str, client_read: EnabledClientRead, *, settings: Settings, ctx: RequestContext
    ) -> None:
        self.refresh_token = refresh_token
        self.successor, successor_hash = new_token()
        self.rotation = _rotation(refresh_token, successor_hash, client_read.client_id, settings, ctx)
        self.client_read = client_read
        self.ran = False
        self.rotated: SessionWithUser | None = None

    async def count(
        self, connection: asyncpg.Connection, key: str, window_start: datetime, limit: int
    ) -> int:
        counted = await repository.count_hit_and_rotate(
            connection, self.rotation, key=key, window_start=window_start, limit=limit
        )
        self.client_read.take(counted.client)
        self.ran, self.rotated = True, counted.rotated
        return counted.hits


@dataclass(frozen=True)
class Refreshed:
    """A rotated refresh token: the new tokens, and the session and user they were issued for."""

    tokens: IssuedTokens
    found: SessionWithUser


async def refresh(
    db: AsyncSession,
    *,
    refresh_token: str,
    keyring: KeyRing,
    settings: Settings,
    ctx: RequestContext,
    oauth_client: OAuthClient,
    scope: str | None = None,
    ahead: RotationAhead | None = None,
) -> Refreshed:
    """Rotate the refresh token. The access token grants the session's scopes, or fewer if `scope` asks
    for fewer (RFC 6749 §6); the session keeps its own, so a later refresh may ask for them all again.

    The common case, an unused token of a live session of this client, is one statement
    (`repository.rotate_live_refresh_token`), or none where it ran `ahead` with the rate limit's hit.
    Anything else goes step by step, which refuses it and says why: another client's token, an unknown
    one, a replay, an ended session."""
    now = ctx.now
    if ahead is not None and ahead.ran:
        if ahead.refresh_token != refresh_token or ahead.rotation.client_id != oauth_client.client_id:
            raise RuntimeError("the rotation sent ahead was for another token or client")  # a bug, not input
        rotation, successor, found = ahead.rotation, ahead.successor, ahead.rotated
    else:
        successor, successor_hash = new_token()
        rotation = _rotation(refresh_token, successor_hash, oauth_client.client_id, settings, ctx)
        found = await repository.rotate_live_refresh_token(db, rotation)
    if found is None:
        token_hash, successor_hash = rotation.token_hash, rotation.successor_hash
        await refuse_another_clients_token(db, token_hash, oauth_client, ctx=ctx)
        found = await _rotate_step_by_step(db, token_hash, successor_hash, settings=settings, ctx=ctx)
    metrics.count_refresh("rotated")
    # DEBUG: a rotation is routine traffic, as common as the access tokens it renews; its audit row
    # (`token.refreshed`) and the request line record it. A refused refresh stays INFO.
    log.debug("refresh rotated session=%s", found.session.id)
    tokens = issue_tokens(
        successor,
        found.session.id,
        session_authentication(found.session, found.user),
        keyring=keyring,
        settings=settings,
        now=now,
        oauth_client=oauth_client,
        scope=granted_scopes(scope, found.session.scopes),
    )
    return Refreshed(tokens, found)


def _rotation(
    refresh_token: str, successor_hash: bytes, client_id: str, settings: Settings, ctx: RequestContext
) -> repository.Rotation:
    """The rotation of `refresh_token` into the token whose digest is `successor_hash`, for `client_id`."""
    return repository.Rotation(
        token_hash=digest(refresh_token),
        successor_hash=successor_hash,
        client_id=client_id,
        now=ctx.now,
        idle_since=ctx.now - idle_ttl(settings),
        audit=audit_row(AuditEvent.TOKEN_REFRESHED, ctx),
    )


async def _rotate_step_by_step(
    db: AsyncSession,
    token_hash: bytes,
    successor_hash: bytes,
    *,
    settings: Settings,
    ctx: RequestContext,
) -> SessionWithUser:
    """The rotation one step at a time, for a token the one-statement rotation did not take: claim it,
    check its session, touch it, add the successor and the audit row; or refuse, saying why."""
    now = ctx.now
    session_id = await repository.mark_refresh_token_used(db, token_hash, now)
    if session_id is None:
        await _refuse_spent_token(db, token_hash, settings=settings, ctx=ctx)
    found = await repository.session_with_user(db, session_id) if session_id else None
    if found is None or not session_is_live(found.session, found.user, now=now, settings=settings):
        metrics.count_refresh("invalid")
        user_id, dead_session_id = (found.user.id, found.session.id) if found else (None, session_id)
        # Undo the claim first: a token of an ended session stays unspent, so presenting it again is
        # refused the same way instead of looking like a replay.
        await db.rollback()
        await RefreshFailure(db, ctx).refuse(
            REFRESH_SESSION_ENDED, user_id=user_id, session_id=dead_session_id
        )
    await repository.touch_session(db, found.session.id, now)
    await repository.add_refresh_token(db, session_id=found.session.id, token_hash=successor_hash, now=now)
    await record(
        db,
        AuditEvent.TOKEN_REFRESHED,
        ctx=ctx,
        user_id=found.user.id,
        session_id=found.session.id,
    )
    return found


# The reasons of a `refresh.failed` audit row. A replay that revokes a live session is recorded as
# `refresh.reuse_detected` instead, with the revocation.
REFRESH_UNKNOWN = "unknown_token"  # no such token: forged, mistyped, or its session deleted
REFRESH_SESSION_ENDED = "session_ended"  # unused, but its session ended or its user is deactivated
REFRESH_CONCURRENT_REUSE = "concurrent_reuse"  # used within the grace window (two tabs); session kept
REFRESH_REPLAYED_INTO_ENDED = "token_reused"  # used before the grace window, its session already ended


@dataclass(frozen=True)
class RefreshFailure:
    """Answers a refused refresh (ASVS 16.3.2): records why and refuses. The record is committed, because
    the error response that follows rolls the request back, as a failed login's is. Each refusal costs
    one request of the client's per-IP token limit (RATE_LIMIT_TOKEN), which bounds the rows a flood
    of made-up tokens can write."""

    db: AsyncSession
    ctx: RequestContext

    async def refuse(
        self,
        reason: str,
        *,
        user_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        error: InvalidGrant | None = None,
    ) -> NoReturn:
        await record(
            self.db,
            AuditEvent.REFRESH_FAILED,
            ctx=self.ctx,
            user_id=user_id,
            session_id=session_id,
            reason=reason,
        )
        await commit_before_refusing(self.db)
        log.info("refresh refused: %s session=%s", reason, session_id or "-")
        raise error or InvalidGrant()


async def _refuse_spent_token(
    db: AsyncSession, token_hash: bytes, *, settings: Settings, ctx: RequestContext
) -> NoReturn:
    """The token is unknown or already used. A recent use is a concurrent refresh; an older one is a
    replay, and the whole session is revoked. Every refusal leaves an audit row."""
    failure = RefreshFailure(db, ctx)
    token = await repository.find_refresh_token(db, token_hash)
    if token is None or token.used_at is None:
        metrics.count_refresh("invalid")
        await failure.refuse(REFRESH_UNKNOWN)
    auth_session = await db.get(AuthSession, token.session_id)
    user_id = auth_session.user_id if auth_session is not None else None
    if ctx.now - token.used_at <= timedelta(seconds=settings.REFRESH_REUSE_GRACE_SECONDS):
        metrics.count_refresh("concurrent_reuse")
        await failure.refuse(
            REFRESH_CONCURRENT_REUSE,
            user_id=user_id,
            session_id=token.session_id,
            error=RefreshTokenAlreadyUsed(),
        )
    metrics.count_refresh("reuse_detected")
    if auth_session is not None and auth_session.revoked_at is None:
        await end_sessions(
            db,
            SessionEndReason.REFRESH_TOKEN_REUSE,
            user_id=auth_session.user_id,
            session_id=auth_session.id,
            ctx=ctx,
        )
        log.warning("refresh token reuse detected: session=%s revoked", auth_session.id)
        # The revocation must outlive the error response that follows, which rolls the request back.
        await commit_before_refusing(db)
        raise InvalidGrant()
    # A replay into a session that had already ended (by an earlier replay, a logout, a reset): nothing
    # left to revoke, but still someone presenting a spent token.
    await failure.refuse(REFRESH_REPLAYED_INTO_ENDED, user_id=user_id, session_id=token.session_id)
