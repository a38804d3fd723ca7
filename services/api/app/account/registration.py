"""Registration: a new account under the password policy, its first verification link, its audit row."""

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.account.service import EmailAlreadyRegistered, send_verification
from app.audit.events import AuditEvent
from app.audit.service import record
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.templating import DEFAULT_LOCALE
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import check_new_password, refuse_oversized
from app.users import repository as user_repository
from app.users.emails import canonicalize_email
from app.users.models import User

log = logging.getLogger("pyauth.account")


async def register(
    db: AsyncSession,
    *,
    email: str,
    password: str,
    hasher: PasswordHasher,
    settings: Settings,
    ctx: RequestContext,
    locale: str = DEFAULT_LOCALE,
) -> User:
    """A new account, mailed its verification link; `locale` is the language of its mails (from
    Accept-Language at registration)."""
    refuse_oversized(password, settings)
    canonical = canonicalize_email(email)
    password = await check_new_password(password, settings=settings, email=canonical)
    # Hash before touching the database: no pooled connection is held while the hash runs, and a taken
    # email answers no faster than a free one. The unique index decides, also under a race.
    password_hash = await hasher.hash(password)
    user = await user_repository.insert_if_absent(db, canonical, password_hash, locale)
    if user is None:
        raise EmailAlreadyRegistered()
    log.info("registered user=%s", user.id)
    await send_verification(db, user, settings=settings, ctx=ctx)
    await record(db, AuditEvent.USER_REGISTERED, ctx=ctx, user_id=user.id)
    return user
