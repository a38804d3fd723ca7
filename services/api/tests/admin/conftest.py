"""Fixtures for tests that commit for real (the CLI subprocess, concurrent workers, the live app).

Audit rows outlive users by design, so `purge_live_accounts` deletes the audit rows of live users
before the users themselves. `committed_admins_set_aside` hides every committed admin for the test
(FIRST_ADMIN_* only acts while no admin exists) and gives their role back afterwards.
"""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.passwords.hashing import PasswordHasher
from app.users.models import ADMIN_ROLE, User
from tests.conftest import delete_live_accounts


@pytest.fixture
async def purge_live_accounts(admin_engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    await delete_live_accounts(admin_engine)


@pytest.fixture
async def committed_admins_set_aside(engine: AsyncEngine) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        hidden = list(
            await connection.scalars(
                update(User)
                .where(User.roles.contains([ADMIN_ROLE]))
                .values(roles=text("array_remove(roles, 'admin')"))
                .returning(User.id)
            )
        )
    try:
        yield
    finally:
        if hidden:
            async with engine.begin() as connection:
                await connection.execute(
                    update(User)
                    .where(User.id.in_(hidden), ~User.roles.contains([ADMIN_ROLE]))
                    .values(roles=text("array_append(roles, 'admin')"))
                )


@pytest.fixture
async def hasher(settings: Settings) -> AsyncIterator[PasswordHasher]:
    hasher = PasswordHasher(settings)
    yield hasher
    hasher.shutdown()
