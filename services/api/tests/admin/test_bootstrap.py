"""FIRST_ADMIN_EMAIL / FIRST_ADMIN_PASSWORD: the first admin is created at startup, once, only while no
admin exists, and several workers starting together create exactly one."""

import asyncio
import logging

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.admin.bootstrap import FirstAdminMisconfigured, ensure_first_admin
from app.audit.models import AuditEntry
from app.core.clock import ManualClock
from app.core.config import Settings
from app.core.database import build_sessionmaker
from app.main import create_app
from app.passwords.hashing import PasswordHasher
from app.users import repository as users_repository
from app.users.models import ADMIN_ROLE, User
from tests.auth.helpers import PASSWORD, live_email, unique_email
from tests.conftest import make_settings


@pytest.fixture
async def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions inside the test's rolled-back transaction, in which no user is an admin."""
    await connection.execute(update(User).where(User.roles.contains([ADMIN_ROLE])).values(roles=["user"]))
    return async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def _settings(email: str | None, password: str | None = PASSWORD) -> Settings:
    return make_settings(FIRST_ADMIN_EMAIL=email, FIRST_ADMIN_PASSWORD=password)


async def _admins(sessionmaker: async_sessionmaker[AsyncSession]) -> list[User]:
    async with sessionmaker() as db:
        return list(await db.scalars(select(User).where(User.roles.contains([ADMIN_ROLE]))))


async def _created_events(sessionmaker: async_sessionmaker[AsyncSession], user: User) -> list[AuditEntry]:
    async with sessionmaker() as db:
        query = select(AuditEntry).where(AuditEntry.user_id == user.id, AuditEntry.event == "admin.created")
        return list(await db.scalars(query))


async def test_the_first_admin_is_created_once(
    sessionmaker: async_sessionmaker[AsyncSession], hasher: PasswordHasher, clock: ManualClock
) -> None:
    email = unique_email("first-admin")
    settings = _settings(email.upper())
    await ensure_first_admin(sessionmaker, settings, hasher, clock)
    await ensure_first_admin(sessionmaker, settings, hasher, clock)

    [admin] = await _admins(sessionmaker)
    assert admin.email == email
    assert admin.roles == ["user", "admin"]
    assert await hasher.verify(admin.password_hash, PASSWORD)
    [event] = await _created_events(sessionmaker, admin)
    assert (event.reason, event.details, event.occurred_at) == (
        "first_admin_setting",
        {"promoted": False},
        clock.now(),
    )


async def test_nothing_happens_once_an_admin_exists(
    sessionmaker: async_sessionmaker[AsyncSession], hasher: PasswordHasher, clock: ManualClock
) -> None:
    earlier, later = unique_email("earlier"), unique_email("later")
    await ensure_first_admin(sessionmaker, _settings(earlier), hasher, clock)
    await ensure_first_admin(sessionmaker, _settings(later), hasher, clock)

    assert [admin.email for admin in await _admins(sessionmaker)] == [earlier]
    async with sessionmaker() as db:
        assert await users_repository.get_by_email(db, later) is None


async def test_an_existing_account_is_promoted_only_with_its_own_password(
    sessionmaker: async_sessionmaker[AsyncSession], hasher: PasswordHasher, clock: ManualClock
) -> None:
    """Registration is open: whoever registered the address first must not become admin through it."""
    email = unique_email("squatter")
    async with sessionmaker() as db, db.begin():
        await users_repository.insert_if_absent(db, email, await hasher.hash("someone-elses-passphrase-77"))

    await ensure_first_admin(sessionmaker, _settings(email), hasher, clock)
    assert await _admins(sessionmaker) == []

    async with sessionmaker() as db, db.begin():
        user = await users_repository.get_by_email(db, email)
        assert user is not None
        user.password_hash = await hasher.hash(PASSWORD)
    await ensure_first_admin(sessionmaker, _settings(email), hasher, clock)
    [admin] = await _admins(sessionmaker)
    assert admin.email == email
    [event] = await _created_events(sessionmaker, admin)
    # Its password proved it is the operator's; the audit row still says it was never verified.
    assert event.details == {"promoted": True, "before": ["user"], "unverified": True}


async def test_the_startup_log_does_not_invite_promoting_a_squatted_account(
    sessionmaker: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An account under FIRST_ADMIN_EMAIL whose password is not FIRST_ADMIN_PASSWORD is what an address
    squatter leaves: the error says so and shows the account, rather than suggesting `make admin`."""
    email = unique_email("squatted")
    async with sessionmaker() as db, db.begin():
        squatter = await users_repository.insert_if_absent(
            db, email, await hasher.hash("squatters-passphrase-77")
        )
        assert squatter is not None

    with caplog.at_level(logging.ERROR, logger="pyauth.admin"):
        await ensure_first_admin(sessionmaker, _settings(email), hasher, clock)

    assert await _admins(sessionmaker) == []
    [line] = [record.getMessage() for record in caplog.records if record.name == "pyauth.admin"]
    assert "make admin" not in line
    assert "grant it the role" not in line
    assert f"user={squatter.id}" in line
    assert "email NOT verified" in line
    assert "may have been registered by someone else" in line
    assert email not in line


async def test_a_password_the_policy_refuses_stops_startup(
    sessionmaker: async_sessionmaker[AsyncSession], hasher: PasswordHasher, clock: ManualClock
) -> None:
    with pytest.raises(
        FirstAdminMisconfigured, match=r"FIRST_ADMIN_PASSWORD refused \(password_too_short\)"
    ) as raised:
        await ensure_first_admin(sessionmaker, _settings(unique_email(), "short-pw"), hasher, clock)
    assert "short-pw" not in str(raised.value)
    with pytest.raises(FirstAdminMisconfigured, match="invalid_email"):
        await ensure_first_admin(sessionmaker, _settings("not-an-email"), hasher, clock)
    assert await _admins(sessionmaker) == []


async def test_nothing_happens_unless_both_settings_are_set(
    sessionmaker: async_sessionmaker[AsyncSession], hasher: PasswordHasher, clock: ManualClock
) -> None:
    email = unique_email("half")
    for settings in (_settings(None), _settings(email, None), _settings(email, ""), _settings("", PASSWORD)):
        await ensure_first_admin(sessionmaker, settings, hasher, clock)
    assert await _admins(sessionmaker) == []


async def test_a_refused_password_does_not_matter_once_an_admin_exists(
    sessionmaker: async_sessionmaker[AsyncSession], hasher: PasswordHasher, clock: ManualClock
) -> None:
    await ensure_first_admin(sessionmaker, _settings(unique_email()), hasher, clock)
    await ensure_first_admin(sessionmaker, _settings(unique_email(), "short-pw"), hasher, clock)
    assert len(await _admins(sessionmaker)) == 1


@pytest.mark.usefixtures("committed_admins_set_aside", "purge_live_accounts")
async def test_workers_starting_together_create_exactly_one_admin(
    engine: AsyncEngine, hasher: PasswordHasher, clock: ManualClock
) -> None:
    email = live_email("first-admin")
    settings = _settings(email)
    sessionmaker = build_sessionmaker(engine)
    await asyncio.gather(*(ensure_first_admin(sessionmaker, settings, hasher, clock) for _ in range(4)))

    async with sessionmaker() as db:
        admins = list(await db.scalars(select(User).where(User.roles.contains([ADMIN_ROLE]))))
        assert [admin.email for admin in admins] == [email]
        events = await db.scalar(
            select(func.count()).where(
                AuditEntry.user_id == admins[0].id, AuditEntry.event == "admin.created"
            )
        )
    assert events == 1


@pytest.mark.usefixtures("committed_admins_set_aside", "purge_live_accounts")
async def test_the_app_creates_the_first_admin_at_startup(engine: AsyncEngine, clock: ManualClock) -> None:
    email = live_email("startup-admin")
    app = create_app(_settings(email), clock=clock)
    async with app.router.lifespan_context(app):
        pass
    async with build_sessionmaker(engine)() as db:
        user = await users_repository.get_by_email(db, email)
    assert user is not None
    assert user.is_admin
