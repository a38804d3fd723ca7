"""A signed-in user's change of their own password: the current password first, then the new one; every
other session and every pending account token ends."""

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.account.current_password import confirm_current_password
from app.account.pending import end_pending_tokens
from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.sessions import SessionEndReason, end_sessions
from app.core.config import Settings
from app.core.context import RequestContext
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import check_new_password
from app.users import repository as user_repository
from app.users.models import User

log = logging.getLogger("pyauth.account")


async def change_password(
    db: AsyncSession,
    *,
    user: User,
    current_session_id: uuid.UUID,
    current_password: str,
    new_password: str,
    hasher: PasswordHasher,
    settings: Settings,
    ctx: RequestContext,
) -> int:
    """Returns how many other sessions were ended."""
    await confirm_current_password(
        db, user, current_password, hasher=hasher, settings=settings, ctx=ctx, purpose="password_change"
    )
    password = await check_new_password(new_password, settings=settings, email=user.email)
    await user_repository.set_password_hash(db, user.id, await hasher.hash(password))
    await end_pending_tokens(db, user.id, now=ctx.now, password_changed=True)
    ended = await end_sessions(
        db, SessionEndReason.PASSWORD_CHANGED, user_id=user.id, ctx=ctx, except_session_id=current_session_id
    )
    await record(
        db,
        AuditEvent.PASSWORD_CHANGED,
        ctx=ctx,
        user_id=user.id,
        session_id=current_session_id,
        details={"sessions_ended": ended},
    )
    log.info("password changed user=%s other_sessions_ended=%d", user.id, ended)
    return ended
