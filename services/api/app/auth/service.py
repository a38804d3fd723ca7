"""The rules of authentication: password login, refresh-token rotation with reuse detection, and
ending sessions.

A session is a family of refresh tokens. Each refresh marks the presented token used and issues its
successor in the same session. A used token presented again is theft unless it comes within
REFRESH_REUSE_GRACE_SECONDS of its rotation (two tabs refreshing at once): theft revokes the session.
"""

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth import repository
from app.auth.models import AuthSession
from app.core.config import Settings
from app.core.dependencies import ClientInfo
from app.core.errors import OAuthError
from app.core.opaque_tokens import digest, new_token
from app.keys.service import KeyRing
from app.keys.tokens import issue_access_token
from app.metrics import instruments as metrics
from app.passwords.hashing import HashQueueFull, PasswordHasher
from app.passwords.policy import normalize_password, refuse_oversized
from app.ratelimit import devices
from app.ratelimit import service as ratelimit
from app.ratelimit.models import LoginDevice
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


class EmailNotVerified(InvalidGrant):
    message = "The email address is not verified yet. Use the link that was mailed to it."


class RefreshTokenAlreadyUsed(InvalidGrant):
    message = "The refresh token was already used. Use the token issued with it; the session is kept."


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: uuid.UUID
    device_token: str | None = None  # after a password login: the client's new device token


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
    device_token: str | None = None,
) -> IssuedTokens:
    """Check the password, once an attempt is reserved on the device's counter (a valid device token for
    this account) or else on the account's; a refused reservation is answered without hashing."""
    refuse_oversized(password, settings)
    password = normalize_password(password)
    try:
        email = canonicalize_email(username)
    except InvalidEmail:
        email = username.strip().lower()  # still throttled, like any address
    hasher.refuse_when_full()  # before anything is counted
    device = await devices.recognise(db, device_token, email, settings=settings, now=now)
    attempt = LoginAttempt(db, email, device, now, client)
    await attempt.reserve(settings)
    user = await user_repository.get_by_email(db, email)
    # The reservation is committed, and the pooled connection not held while the hash runs.
    await db.commit()
    try:
        if user is None:
            await hasher.verify_dummy(password)
            matched = False
        else:
            matched = await hasher.verify(user.password_hash, password)
    except HashQueueFull:
        await attempt.release()
        raise
    if user is None:
        await attempt.refuse(None, "unknown_account")
    elif not matched:
        await attempt.refuse(user, "wrong_password")
    elif not user.is_active:
        await attempt.refuse(user, "inactive")
    elif not user.is_verified and not settings.ALLOW_UNVERIFIED_LOGIN:
        await attempt.release()
        await attempt.refuse(user, "unverified", counts=False, error=EmailNotVerified())
    # A success from anywhere clears the account's count, which also lifts its lock.
    await ratelimit.clear_failures(db, email, kind=ratelimit.AttemptKind.LOGIN)
    new_device_token = await devices.issue(db, user.id, settings=settings, now=now, replaces=device)
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
    await record(
        db,
        AuditEvent.LOGIN_SUCCEEDED,
        now=now,
        user_id=user.id,
        session_id=auth_session.id,
        client=client,
        details={"known_device": True} if device else None,
    )
    metrics.count_login("succeeded")
    log.info("login succeeded user=%s session=%s", user.id, auth_session.id)
    issued = await _issue(db, user, auth_session.id, keyring=keyring, settings=settings, now=now)
    return replace(issued, device_token=new_device_token)


@dataclass
class LoginAttempt:
    """One password login's place in the throttle: reserved on the known device's counter or else on the
    account's, and given back when its check did not fail. Its refusals are committed, because the error
    response that follows rolls the request back."""

    db: AsyncSession
    email: str
    device: LoginDevice | None
    now: datetime
    client: ClientInfo
    reservation: ratelimit.Reservation | None = None

    async def reserve(self, settings: Settings) -> None:
        db, now = self.db, self.now
        if self.device is not None:
            reservation = await devices.reserve_attempt(db, self.device, settings=settings, now=now)
        else:
            reservation = await ratelimit.reserve_attempt(db, self.email, settings=settings, now=now)
        if reservation.granted:
            self.reservation = reservation
            return
        reason = "reset_required" if reservation.locked else "throttled"
        metrics.count_login(reason)
        await record(
            self.db,
            AuditEvent.LOGIN_THROTTLED,
            now=self.now,
            client=self.client,
            reason=reason,
            details={"known_device": True} if self.device else None,
        )
        await self.db.commit()
        if reservation.locked:
            raise ratelimit.PasswordResetRequired()
        raise ratelimit.LoginThrottled(headers=reservation.retry_after_header)

    async def release(self) -> None:
        if self.device is not None:
            await devices.release_attempt(self.db, self.device)
        else:
            await ratelimit.release_attempt(self.db, self.email)
        await self.db.commit()

    async def refuse(
        self, user: User | None, reason: str, *, counts: bool = True, error: InvalidGrant | None = None
    ) -> NoReturn:
        details: dict[str, object] = {}
        if counts and self.reservation is not None:
            details["consecutive_failures"] = self.reservation.failures
        if self.device is not None:
            details["known_device"] = True
        await record(
            self.db,
            AuditEvent.LOGIN_FAILED,
            now=self.now,
            user_id=user.id if user else None,
            client=self.client,
            reason=reason,
            details=details or None,
        )
        await self.db.commit()
        metrics.count_login(reason)
        log.info("login failed: %s user=%s", reason, user.id if user else "-")
        raise error or InvalidCredentials()


async def refresh(
    db: AsyncSession,
    *,
    refresh_token: str,
    keyring: KeyRing,
    settings: Settings,
    now: datetime,
    client: ClientInfo,
) -> IssuedTokens:
    token_hash = digest(refresh_token)
    session_id = await repository.mark_refresh_token_used(db, token_hash, now)
    if session_id is None:
        await _refuse_spent_token(db, token_hash, settings=settings, now=now, client=client)
    found = await repository.session_with_user(db, session_id) if session_id else None
    if found is None or not session_is_live(found.session, found.user, now=now, settings=settings):
        metrics.count_refresh("invalid")
        user_id, dead_session_id = (found.user.id, found.session.id) if found else (None, session_id)
        # Undo the claim first: a token of an ended session stays unspent, so presenting it again is
        # refused the same way instead of looking like a replay.
        await db.rollback()
        await RefreshFailure(db, now, client).refuse(
            REFRESH_SESSION_ENDED, user_id=user_id, session_id=dead_session_id
        )
    await repository.touch_session(db, found.session.id, now)
    await record(
        db,
        AuditEvent.TOKEN_REFRESHED,
        now=now,
        user_id=found.user.id,
        session_id=found.session.id,
        client=client,
    )
    metrics.count_refresh("rotated")
    log.info("refresh rotated session=%s", found.session.id)
    return await _issue(db, found.user, found.session.id, keyring=keyring, settings=settings, now=now)


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
    now: datetime
    client: ClientInfo

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
            now=self.now,
            user_id=user_id,
            session_id=session_id,
            client=self.client,
            reason=reason,
        )
        await self.db.commit()
        log.info("refresh refused: %s session=%s", reason, session_id or "-")
        raise error or InvalidGrant()


async def _refuse_spent_token(
    db: AsyncSession, token_hash: bytes, *, settings: Settings, now: datetime, client: ClientInfo
) -> NoReturn:
    """The token is unknown or already used. A recent use is a concurrent refresh; an older one is a
    replay, and the whole session is revoked. Every refusal leaves an audit row."""
    failure = RefreshFailure(db, now, client)
    token = await repository.find_refresh_token(db, token_hash)
    if token is None or token.used_at is None:
        metrics.count_refresh("invalid")
        await failure.refuse(REFRESH_UNKNOWN)
    auth_session = await db.get(AuthSession, token.session_id)
    user_id = auth_session.user_id if auth_session is not None else None
    if now - token.used_at <= timedelta(seconds=settings.REFRESH_REUSE_GRACE_SECONDS):
        metrics.count_refresh("concurrent_reuse")
        await failure.refuse(
            REFRESH_CONCURRENT_REUSE,
            user_id=user_id,
            session_id=token.session_id,
            error=RefreshTokenAlreadyUsed(),
        )
    metrics.count_refresh("reuse_detected")
    if auth_session is not None and auth_session.revoked_at is None:
        await repository.revoke_sessions(
            db,
            user_id=auth_session.user_id,
            session_id=auth_session.id,
            now=now,
            reason="refresh_token_reuse",
        )
        await record(
            db,
            AuditEvent.REFRESH_REUSE_DETECTED,
            now=now,
            user_id=auth_session.user_id,
            session_id=auth_session.id,
            client=client,
        )
        log.warning("refresh token reuse detected: session=%s revoked", auth_session.id)
        # The revocation must outlive the error response that follows, which rolls the request back.
        await db.commit()
        raise InvalidGrant()
    # A replay into a session that had already ended (by an earlier replay, a logout, a reset): nothing
    # left to revoke, but still someone presenting a spent token.
    await failure.refuse(REFRESH_REPLAYED_INTO_ENDED, user_id=user_id, session_id=token.session_id)


async def revoke_refresh_token(db: AsyncSession, *, token: str, now: datetime, client: ClientInfo) -> None:
    """RFC 7009: end the session the token belongs to; unknown tokens are silently accepted."""
    found = await repository.find_refresh_token(db, digest(token))
    if found is None:
        return
    auth_session = await db.get(AuthSession, found.session_id)
    if auth_session is not None:
        await end_sessions(
            db,
            user_id=auth_session.user_id,
            session_id=auth_session.id,
            now=now,
            client=client,
            reason="revoked",
            event=AuditEvent.TOKEN_REVOKED,
        )


async def end_sessions(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    now: datetime,
    client: ClientInfo,
    reason: str,
    event: AuditEvent,
    session_id: uuid.UUID | None = None,
    except_session_id: uuid.UUID | None = None,
) -> int:
    """Revoke one session or all of a user's (but one), with its audit record. Returns how many ended."""
    ended = await repository.revoke_sessions(
        db,
        user_id=user_id,
        now=now,
        reason=reason,
        session_id=session_id,
        except_session_id=except_session_id,
    )
    if ended:
        await record(
            db,
            event,
            now=now,
            user_id=user_id,
            session_id=session_id,
            client=client,
            details={"ended": ended},
        )
    return ended


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
