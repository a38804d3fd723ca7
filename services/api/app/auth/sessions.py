"""Sessions begin and end here: a session starts from a finished login (`Authentication`) and ends
through `end_sessions`, whatever the cause, with a typed `SessionEndReason`.

Every end of a session, from a logout to an administrator's action, goes through `end_sessions`: the
reason is stored on the session (`revoked_reason`) and, when the ending is the whole of what happened
(a logout, a revocation, a detected replay), recorded as its own audit event. When it is one effect of a
larger action (a password change, a reset, a deactivation), that action's own audit row carries the
count instead.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import audit_row, record
from app.auth import repository
from app.auth.models import AuthSession
from app.clients.models import BUILTIN_CLIENT_ID
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import CteWrite
from app.core.opaque_tokens import digest
from app.metrics import instruments as metrics
from app.sso import service as browser_sessions
from app.users.models import User

log = logging.getLogger("pyauth.auth")


class SessionEndReason(StrEnum):
    """Why a session ended, as stored in `auth_sessions.revoked_reason` (at most 40 characters).
    Names, not secrets: hence the S105 exemptions."""

    LOGOUT = "logout"
    LOGOUT_ALL = "logout_all"
    REVOKED_BY_USER = "revoked_by_user"  # DELETE /auth/sessions/{id}
    TOKEN_REVOKED = "revoked"  # noqa: S105 - RFC 7009 revocation of one of its refresh tokens
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - every session but the one that changed it
    PASSWORD_RESET = "password_reset"  # noqa: S105
    DEACTIVATED = "deactivated"  # by an administrator
    REVOKED_BY_ADMIN = "revoked_by_admin"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"  # noqa: S105 - a spent refresh token replayed: theft
    APP_GRANT_REVOKED = "app_grant_revoked"  # the user revoked the client's grant (/users/me/grants)
    AUTHORIZATION_CODE_REUSE = "authorization_code_reuse"  # a spent code replayed (RFC 6749 §4.1.2)
    # RP-initiated logout ended the browser session that the client's tokens were issued through.
    RP_INITIATED_LOGOUT = "rp_initiated_logout"


# The reasons whose ending is the event itself. The others are recorded by the action that caused them.
OWN_EVENT: Final[dict[SessionEndReason, AuditEvent]] = {
    SessionEndReason.LOGOUT: AuditEvent.LOGOUT,
    SessionEndReason.LOGOUT_ALL: AuditEvent.LOGOUT_ALL,
    SessionEndReason.REVOKED_BY_USER: AuditEvent.SESSION_REVOKED,
    SessionEndReason.TOKEN_REVOKED: AuditEvent.TOKEN_REVOKED,
    SessionEndReason.REFRESH_TOKEN_REUSE: AuditEvent.REFRESH_REUSE_DETECTED,
}


@dataclass(frozen=True)
class Authentication:
    """A finished login: who, by which methods (RFC 8176 `amr` values, in the order they ran) and when
    (OIDC Core `auth_time`). What issues tokens or a browser session starts from this."""

    user: User
    amr: tuple[str, ...]
    auth_time: datetime
    known_device: bool = False  # the attempt counted on a recognised device's counter
    device_token: str | None = None  # the client's new device token, when the login issued one
    # The login's writes not sent yet (`LoginFlow.defer_writes`): `start_session` sends them.
    writes: tuple[CteWrite, ...] = ()


@dataclass(frozen=True)
class Authenticated:
    """Who calls with a live access token: the user and the session the token belongs to, and the
    token's RFC 8176 `amr` when it was read from one (empty otherwise)."""

    user: User
    session: AuthSession
    amr: tuple[str, ...] = ()

    @property
    def auth_time(self) -> datetime:
        """When the user authenticated (OIDC Core `auth_time`): the session began at its login, and its
        tokens carry this time (`session_authentication`)."""
        return self.session.created_at


def session_authentication(auth_session: AuthSession, user: User) -> Authentication:
    """The authentication a session began with, for tokens issued by refreshing it: `auth_time` stays
    the time of the login (the session's `created_at`, when the password was checked), not the refresh,
    and `amr` the methods that login used (stored on the session)."""
    return Authentication(user=user, amr=tuple(auth_session.amr), auth_time=auth_session.created_at)


def idle_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.SESSION_IDLE_TTL_SECONDS)


def session_is_live(auth_session: AuthSession, user: User, *, now: datetime, settings: Settings) -> bool:
    return (
        auth_session.revoked_at is None
        and auth_session.expires_at > now
        and auth_session.last_used_at + idle_ttl(settings) > now
        and user.is_active
    )


async def start_session(
    db: AsyncSession,
    authentication: Authentication,
    *,
    settings: Settings,
    ctx: RequestContext,
    refresh_token_hash: bytes,
    oauth_client_id: str = BUILTIN_CLIENT_ID,
    scopes: Sequence[str] = (),
    absolute_ttl_seconds: int | None = None,
) -> uuid.UUID:
    """A new session of the OAuth client `oauth_client_id` for a finished login, with its first refresh
    token (stored by its digest) and its audit record, in one statement; the session's id. Its
    `created_at` is the login's `auth_time` and its last use is now (for a login completed later, by an
    authorization code, the idle clock starts at the code's redemption); it grants `scopes`, and lives
    `absolute_ttl_seconds` (the client's refresh-token lifetime; None: SESSION_ABSOLUTE_TTL_SECONDS)."""
    user, now = authentication.user, ctx.now
    ttl = absolute_ttl_seconds or settings.SESSION_ABSOLUTE_TTL_SECONDS
    details = {"known_device": True} if authentication.known_device else None
    session_id = await repository.start_session(
        db,
        repository.SessionStart(
            user_id=user.id,
            created_at=authentication.auth_time,
            now=now,
            expires_at=authentication.auth_time + timedelta(seconds=ttl),
            user_agent=ctx.user_agent,
            ip_address=ctx.ip_address,
            client_id=oauth_client_id,
            scopes=scopes,
            amr=authentication.amr,
            refresh_token_hash=refresh_token_hash,
        ),
        audit_row(AuditEvent.LOGIN_SUCCEEDED, ctx, details),
        authentication.writes,
    )
    metrics.count_login("succeeded")
    log.info("login succeeded user=%s session=%s", user.id, session_id)
    return session_id


async def end_sessions(
    db: AsyncSession,
    reason: SessionEndReason,
    *,
    user_id: uuid.UUID,
    ctx: RequestContext,
    session_id: uuid.UUID | None = None,
    except_session_id: uuid.UUID | None = None,
) -> int:
    """End one session of the user (`session_id`), or all of them but `except_session_id`; returns how
    many were live. Records the reason's own audit event, if it has one and a session ended.

    Ending all of them (no `session_id`) also ends every browser SSO session of the user (`app.sso`):
    logout-all, a password change or reset, a deactivation or an administrator's revocation signs the
    browser out as well. The browser session of the hosted pages is not one of the API sessions, so none
    is kept as `except_session_id` keeps the caller's API session."""
    if session_id is None:
        await browser_sessions.end_all(db, user_id=user_id, reason=reason.value, now=ctx.now)
    ended = await repository.revoke_sessions(
        db,
        user_id=user_id,
        now=ctx.now,
        reason=reason,
        session_id=session_id,
        except_session_id=except_session_id,
    )
    event = OWN_EVENT.get(reason)
    if ended and event is not None:
        await record(
            db,
            event,
            ctx=ctx,
            user_id=user_id,
            session_id=session_id,
            details={"ended": ended},
        )
    return ended


async def find_live_session(
    db: AsyncSession, session_id: uuid.UUID, *, now: datetime, settings: Settings
) -> Authenticated | None:
    """The session and its user, if the session is live (not ended, not expired, its user active)."""
    found = await repository.session_with_user(db, session_id)
    if found is None or not session_is_live(found.session, found.user, now=now, settings=settings):
        return None
    return Authenticated(user=found.user, session=found.session)


async def find_session_of_refresh_token(
    db: AsyncSession, refresh_token: str, *, now: datetime, settings: Settings, live_only: bool
) -> Authenticated | None:
    """The session a refresh token belongs to. `live_only`: only for the session's one unused token,
    while the session is live (what introspection calls active); else for any of its tokens, used or
    not, in any state (what revocation ends)."""
    token = await repository.find_refresh_token(db, digest(refresh_token))
    if token is None or (live_only and token.used_at is not None):
        return None
    if live_only:
        return await find_live_session(db, token.session_id, now=now, settings=settings)
    found = await repository.session_with_user(db, token.session_id)
    return Authenticated(user=found.user, session=found.session) if found is not None else None


async def end_client_sessions(
    db: AsyncSession, reason: SessionEndReason, *, user_id: uuid.UUID, client_id: str, ctx: RequestContext
) -> int:
    """End every live session of the user with the OAuth client `client_id`; returns how many."""
    sessions = await repository.live_sessions(
        db, user_id, now=ctx.now, idle_since=datetime.min.replace(tzinfo=UTC)
    )
    ended = 0
    for auth_session in sessions:
        if auth_session.client_id == client_id:
            ended += await end_sessions(db, reason, user_id=user_id, session_id=auth_session.id, ctx=ctx)
    return ended
