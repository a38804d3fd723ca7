"""FIRST_ADMIN_EMAIL / FIRST_ADMIN_PASSWORD: create the first administrator at startup, once.

Applied only while no admin exists; from the moment one does (made here, by the CLI, or in any other
way) it does nothing, so the settings may stay set, though removing the password after the first start
is better. Every API worker runs it at startup: the admin-roster advisory lock makes them take turns,
and only the first finds no admin and acts.

If an account with that email already exists, it is promoted only when FIRST_ADMIN_PASSWORD is its
password: registration is open, and whoever registered the address first must not become admin
through the operator's setting. Otherwise nothing is granted and an error is logged.
"""

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin import service
from app.admin.first_admin import UserVanished, create_or_promote
from app.core.clock import Clock
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import PyauthError
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import check_new_password
from app.users.emails import canonicalize_email
from app.users.models import User

log = logging.getLogger("pyauth.admin")

SOURCE = "first_admin_setting"


class FirstAdminMisconfigured(RuntimeError):
    """FIRST_ADMIN_EMAIL or FIRST_ADMIN_PASSWORD cannot be applied as set; startup stops."""


async def ensure_first_admin(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    hasher: PasswordHasher,
    clock: Clock,
) -> None:
    configured = _configured(settings)
    if configured is None:
        return
    async with sessionmaker() as db:
        if await service.any_admin_exists(db):
            return
    email, password = await _validated(*configured, settings=settings)
    # Hashed before the lock is taken, so that starting workers do not queue behind a hash.
    password_hash = await hasher.hash(password)
    async with sessionmaker() as db, db.begin():
        await service.lock_admin_roster(db)  # taken again by create_or_promote: the same transaction's lock
        if not await service.any_admin_exists(db):  # else another worker was first
            await _create_or_promote(db, email, password, password_hash, hasher=hasher, clock=clock)


def _configured(settings: Settings) -> tuple[str, str] | None:
    """The email and password, or None when the bootstrap is not (or no longer) configured."""
    email = (settings.FIRST_ADMIN_EMAIL or "").strip()
    password = settings.FIRST_ADMIN_PASSWORD.get_secret_value() if settings.FIRST_ADMIN_PASSWORD else ""
    if password and not email:
        log.warning("FIRST_ADMIN_PASSWORD is set without FIRST_ADMIN_EMAIL: no admin created")
    return (email, password) if email and password else None


async def _validated(raw_email: str, password: str, *, settings: Settings) -> tuple[str, str]:
    """The canonical email and the NFC password. An invalid setting is the operator's mistake and stops
    startup: the first admin they asked for would otherwise silently not exist. Only the code of the
    refusal is reported, never the value."""
    try:
        email = canonicalize_email(raw_email)
        return email, await check_new_password(password, settings=settings, email=email)
    except PyauthError as exc:
        setting = "FIRST_ADMIN_EMAIL" if exc.code == "invalid_email" else "FIRST_ADMIN_PASSWORD"
        message = f"{setting} refused ({exc.code}): {exc.detail}"
        log.error("first admin not created: %s", message)
        raise FirstAdminMisconfigured(message) from None


async def _create_or_promote(
    db: AsyncSession, email: str, password: str, password_hash: str, *, hasher: PasswordHasher, clock: Clock
) -> None:
    async def vet(user: User) -> bool:
        if await hasher.verify(user.password_hash, password):
            return True  # knowing the account's password proves it is the operator's, verified or not
        # Not a hint to promote it: this is how an address squatter's account looks.
        log.error(
            "first admin not created: an account with FIRST_ADMIN_EMAIL already exists (user=%s, created %s, "
            "email %s) and FIRST_ADMIN_PASSWORD is not its password, so it may have been registered by "
            "someone else. Do not grant it the admin role unless you know it is yours; otherwise delete "
            "it, or choose another FIRST_ADMIN_EMAIL",
            user.id,
            user.created_at.isoformat(timespec="seconds"),
            "verified" if user.is_verified else "NOT verified",
        )
        return False

    try:
        outcome = await create_or_promote(
            db,
            email,
            password_hash=password_hash,
            ctx=RequestContext.background(clock.now()),
            source=SOURCE,
            vet=vet,
            require_verified=False,
        )
    except UserVanished:
        return
    if outcome.result == "created":
        log.info("first admin created from FIRST_ADMIN_EMAIL: user=%s", outcome.user.id)
    elif outcome.result == "promoted":
        log.info("first admin: the existing account of FIRST_ADMIN_EMAIL promoted: user=%s", outcome.user.id)
