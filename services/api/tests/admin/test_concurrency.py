"""Admin changes against real commits: two admins removing each other's role at the same moment must
not leave the service without an admin."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin.repository import ADMIN_ROSTER_LOCK_ID
from app.users.models import ADMIN_ROLE, USER_ROLE, User
from tests.admin.helpers import Account, user_account
from tests.auth.helpers import live_email
from tests.conftest import delete_live_accounts


@pytest.fixture
async def admins_pair(
    live_client: httpx.AsyncClient, engine: AsyncEngine, admin_engine: AsyncEngine
) -> AsyncIterator[tuple[Account, Account]]:
    first = await user_account(live_client, live_email("admin-a"))
    second = await user_account(live_client, live_email("admin-b"))
    async with engine.begin() as connection:
        await connection.execute(
            update(User).where(User.id.in_([first.id, second.id])).values(roles=[USER_ROLE, ADMIN_ROLE])
        )
    yield first, second
    # Before live_app's own cleanup: audit rows are not deleted with their users.
    await delete_live_accounts(admin_engine)


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    live_client: httpx.AsyncClient, engine: AsyncEngine, admins_pair: tuple[Account, Account]
) -> None:
    """Both requests are let through authentication together: the roster lock is held here until both
    wait on it, so neither can finish before the other has started."""
    first, second = admins_pair
    async with engine.connect() as holder:
        await holder.execute(select(func.pg_advisory_lock(ADMIN_ROSTER_LOCK_ID)))
        await holder.commit()
        requests = [
            asyncio.create_task(
                live_client.put(f"/admin/users/{b.id}/roles", json={"roles": ["user"]}, headers=a.bearer)
            )
            for a, b in ((first, second), (second, first))
        ]
        waiting = 0
        for _ in range(100):
            waiting = await holder.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
            await holder.commit()
            if waiting == 2 or all(request.done() for request in requests):
                break
            await asyncio.sleep(0.05)
        await holder.execute(select(func.pg_advisory_unlock(ADMIN_ROSTER_LOCK_ID)))
        await holder.commit()
        responses = await asyncio.gather(*requests)

    assert waiting == 2, "both requests queued on the roster lock"
    assert sorted(r.status_code for r in responses) == [200, 403], [r.text for r in responses]
    async with engine.connect() as connection:
        roles = list(await connection.scalars(select(User.roles).where(User.id.in_([first.id, second.id]))))
    assert sorted(roles) == [["user"], ["user", "admin"]]
