"""Registration: a new account under the password policy, its first verification link, its audit row."""

import logging
import uuid
from datetime import timedelta

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import mails, repository
from app.account.service import EmailAlreadyRegistered
from app.audit.events import AuditEvent
from app.audit.service import audit_row
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.opaque_tokens import new_token
from app.core.templating import DEFAULT_LOCALE
from app.mail.outbox import check_outgoing
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import check_new_password, refuse_oversized
from app.users.emails import canonicalize_email

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
) -> asyncpg.Record:
    """A new account, mailed its verification link; `locale` is the language of its mails (from
    Accept-Language at registration). Its columns, never the password hash."""
    refuse_oversized(password, settings)
    canonical = canonicalize_email(email)
    password = await check_new_password(password, settings=settings, email=canonical)
    # Hash before touching the database: no pooled connection is held while the hash runs, and a taken
    # email answers no faster than a free one (its link's mail is made too, then not written). The unique
    # index decides, also under a race.
    password_hash = await hasher.hash(password)
    user = await create_account(
        db, email=canonical, password_hash=password_hash, settings=settings, ctx=ctx, locale=locale
    )
    if user is None:
        raise EmailAlreadyRegistered()
    log.info("registered user=%s", user["id"])
    return user


async def create_account(
    db: AsyncSession, *, email: str, password_hash: str, settings: Settings, ctx: RequestContext, locale: str
) -> asyncpg.Record | None:
    """The account of a canonical `email` with its first verification link, the link's mail and the audit
    row, in one statement (`repository.register`): its columns, or None when the email is taken and
    nothing was written."""
    token, token_hash = new_token()
    mail = mails.verify_email(settings, token, locale)
    check_outgoing(to=email, subject=mail.subject, now=ctx.now, kind=mail.kind)
    return await repository.register(
        db,
        repository.NewAccount(
            user_id=uuid.uuid4(),
            email=email,
            password_hash=password_hash,
            locale=locale,
            link_hash=token_hash,
            link_expires_at=ctx.now + timedelta(seconds=settings.VERIFICATION_TOKEN_TTL_SECONDS),
            mail_id=uuid.uuid4(),
            mail=mail,
            audit=audit_row(AuditEvent.USER_REGISTERED, ctx),
            now=ctx.now,
        ),
    )
