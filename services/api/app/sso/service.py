"""Browser SSO sessions begin, are found and end here.

`start` hands back the cookie's token once (only its digest is stored); `find_live` answers the session a
cookie names while it is open, unexpired and not idle for longer than SSO_SESSION_IDLE_TTL_SECONDS, and
keeps it alive; `end` ends one, `end_all` every one of a user. `app.auth.sessions.end_sessions` calls
`end_all` whenever it ends all of a user's API sessions (logout-all, password change or reset,
deactivation, an administrator's revocation), so the browser is signed out with them.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.context import RequestContext
from app.core.opaque_tokens import digest, new_token
from app.sso import repository
from app.sso.models import BrowserSession

# A browser sends a cookie it was given; anything longer is not one of them and is not hashed.
MAX_TOKEN_LENGTH = 128
# Why a browser session ended, besides the API sessions' reasons that `end_all` is given.
SIGNED_OUT = "signed_out"
REPLACED = "replaced"  # the browser signed in again


async def start(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    amr: Sequence[str],
    auth_time: datetime,
    settings: Settings,
    ctx: RequestContext,
) -> tuple[BrowserSession, str]:
    """A new browser session for a finished sign-in, and the token for its cookie."""
    token, token_hash = new_token()
    now = ctx.now
    browser_session = await repository.add(
        db,
        BrowserSession(
            user_id=user_id,
            token_hash=token_hash,
            created_at=now,
            auth_time=auth_time,
            amr=list(amr),
            last_seen_at=now,
            expires_at=now + timedelta(seconds=settings.SSO_SESSION_ABSOLUTE_TTL_SECONDS),
            ip_address=ctx.ip_address,
            user_agent=ctx.user_agent,
        ),
    )
    return browser_session, token


async def find_live(
    db: AsyncSession, token: str | None, *, settings: Settings, now: datetime
) -> BrowserSession | None:
    """The open session `token` names, its last-seen time moved to `now`; None for anything else."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    idle_since = now - timedelta(seconds=settings.SSO_SESSION_IDLE_TTL_SECONDS)
    found = await repository.find_live(db, digest(token), now=now, idle_since=idle_since)
    if found is not None:
        await repository.touch(db, found.id, now)
    return found


async def end(db: AsyncSession, browser_session: BrowserSession, *, reason: str, now: datetime) -> bool:
    ended = await repository.end(
        db, user_id=browser_session.user_id, session_id=browser_session.id, now=now, reason=reason
    )
    return ended > 0


async def end_all(db: AsyncSession, *, user_id: uuid.UUID, reason: str, now: datetime) -> int:
    return await repository.end(db, user_id=user_id, now=now, reason=reason)
