"""The rules of authentication: password login, refresh-token rotation with reuse detection, and
ending sessions.

A session is a family of refresh tokens. Each refresh marks the presented token used and issues its
successor in the same session. A used token presented again is theft unless it comes within
REFRESH_REUSE_GRACE_SECONDS of its rotation (two tabs refreshing at once): theft revokes the session.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.models import AuthSession
from app.core.config import Settings
from app.core.dependencies import ClientInfo
from app.core.errors import OAuthError
from app.core.opaque_tokens import digest, new_token
from app.keys.service import KeyRing
from app.keys.tokens import issue_access_token
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import normalize_password, refuse_oversized
from app.users import repository as user_repository
from app.users.emails import InvalidEmail, canonicalize_email
from app.users.models import User

log = logging.getLogger("pyauth.auth")


class InvalidGrant(OAuthError):
    code = "invalid_grant"
    message = "The grant is invalid, expired or revoked."


class InvalidCredentials(InvalidGrant):
    # One message for unknown email, wrong password and inactive account: nothing to enumerate.
    message = "Invalid email or password."


class RefreshTokenAlreadyUsed(InvalidGrant):
    message = "The refresh token was already used. Use the token issued with it; the session is kept."


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: uuid.UUID


def idle_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.SESSION_IDLE_TTL_SECONDS)


def session_is_live(auth_session: AuthSession, user: User, *, now: datetime, settings: Settings) -> bool:
    return (
        auth_session.revoked_at is None
        and auth_session.expires_at > now
        and auth_session.last_used_at + idle_ttl(settings) > now
        and user.is_active
    )


async def login_with_password(
    db: AsyncSession,
    *,
    username: str,
    password: str,
    hasher: PasswordHasher,
    keyring: KeyRing,
    settings: Settings,
    now: datetime,
    client: ClientInfo,
) -> IssuedTokens:
    refuse_oversized(password, settings)
    password = normalize_password(password)
    try:
        user = await user_repository.get_by_email(db, canonicalize_email(username))
    except InvalidEmail:
        user = None
    # Nothing is written yet: end the read so the pooled connection is not held while the hash runs.
    await db.commit()
    if user is None:
        await hasher.verify_dummy(password)
        log.info("login failed: unknown account")
        raise InvalidCredentials()
    if not await hasher.verify(user.password_hash, password):
        log.info("login failed: wrong password user=%s", user.id)
        raise InvalidCredentials()
    if not user.is_active:
        log.info("login failed: inactive account user=%s", user.id)
        raise InvalidCredentials()
    if hasher.needs_rehash(user.password_hash):
        await user_repository.set_password_hash(db, user.id, await hasher.hash(password))
    auth_session = await repository.create_session(
        db,
        user_id=user.id,
        now=now,
        expires_at=now + timedelta(seconds=settings.SESSION_ABSOLUTE_TTL_SECONDS),
        user_agent=client.user_agent,
        ip_address=client.ip_address,
    )
    log.info("login succeeded user=%s session=%s", user.id, auth_session.id)
    return await _issue(db, user, auth_session.id, keyring=keyring, settings=settings, now=now)


async def refresh(
    db: AsyncSession, *, refresh_token: str, keyring: KeyRing, settings: Settings, now: datetime
) -> IssuedTokens:
    token_hash = digest(refresh_token)
    session_id = await repository.mark_refresh_token_used(db, token_hash, now)
    if session_id is None:
        await _refuse_spent_token(db, token_hash, settings=settings, now=now)
    found = await repository.session_with_user(db, session_id) if session_id else None
    if found is None or not session_is_live(found.session, found.user, now=now, settings=settings):
        raise InvalidGrant()
    await repository.touch_session(db, found.session.id, now)
    log.info("refresh rotated session=%s", found.session.id)
    return await _issue(db, found.user, found.session.id, keyring=keyring, settings=settings, now=now)


async def _refuse_spent_token(
    db: AsyncSession, token_hash: bytes, *, settings: Settings, now: datetime
) -> NoReturn:
    """The token is unknown or already used. A recent use is a concurrent refresh; an older one is a
    replay, and the whole session is revoked."""
    token = await repository.find_refresh_token(db, token_hash)
    if token is None or token.used_at is None:
        raise InvalidGrant()
    if now - token.used_at <= timedelta(seconds=settings.REFRESH_REUSE_GRACE_SECONDS):
        raise RefreshTokenAlreadyUsed()
    auth_session = await db.get(AuthSession, token.session_id)
    if auth_session is not None and auth_session.revoked_at is None:
        await repository.revoke_sessions(
            db,
            user_id=auth_session.user_id,
            session_id=auth_session.id,
            now=now,
            reason="refresh_token_reuse",
        )
        log.warning("refresh token reuse detected: session=%s revoked", auth_session.id)
        # The revocation must outlive the error response that follows, which rolls the request back.
        await db.commit()
    raise InvalidGrant()


async def revoke_refresh_token(db: AsyncSession, *, token: str, now: datetime) -> None:
    """RFC 7009: end the session the token belongs to; unknown tokens are silently accepted."""
    found = await repository.find_refresh_token(db, digest(token))
    if found is None:
        return
    auth_session = await db.get(AuthSession, found.session_id)
    if auth_session is not None:
        await repository.revoke_sessions(
            db, user_id=auth_session.user_id, session_id=auth_session.id, now=now, reason="revoked"
        )


async def _issue(
    db: AsyncSession,
    user: User,
    session_id: uuid.UUID,
    *,
    keyring: KeyRing,
    settings: Settings,
    now: datetime,
) -> IssuedTokens:
    refresh_token, refresh_hash = new_token()
    await repository.add_refresh_token(db, session_id=session_id, token_hash=refresh_hash, now=now)
    access_token, expires_in = issue_access_token(
        keyring,
        settings,
        subject=str(user.id),
        session_id=str(session_id),
        now=now,
        extra_claims={"email_verified": user.is_verified, "roles": list(user.roles)},
    )
    return IssuedTokens(access_token, expires_in, refresh_token, session_id)
