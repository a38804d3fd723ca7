"""Login and refresh outcomes, counted where the service decides them, through real grants."""

from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.metrics.instruments import LOGIN_OUTCOMES, REFRESH_OUTCOMES
from app.users.models import User
from tests.auth.helpers import (
    PASSWORD,
    password_grant,
    refresh_grant,
    register,
    signed_up,
    tokens_of,
    unique_email,
)
from tests.metrics.helpers import outcome, scrape

WRONG = "not-the-right-password-at-all"


async def login_counts(client: httpx.AsyncClient) -> dict[str, float]:
    exposition = await scrape(client)
    return {name: outcome(exposition, "pyauth_login_attempts_total", name) for name in LOGIN_OUTCOMES}


async def refresh_counts(client: httpx.AsyncClient) -> dict[str, float]:
    exposition = await scrape(client)
    return {name: outcome(exposition, "pyauth_refresh_attempts_total", name) for name in REFRESH_OUTCOMES}


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


async def test_every_outcome_is_exposed_from_the_start(client: httpx.AsyncClient) -> None:
    assert set(await login_counts(client)) == set(LOGIN_OUTCOMES)
    assert set(await refresh_counts(client)) == set(REFRESH_OUTCOMES)


async def test_unknown_accounts_wrong_passwords_and_deactivated_accounts_count_as_one_outcome(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """ASVS 6.3.8: the three get one answer, and the metrics must not tell them apart either. A
    deactivated account is refused after its password was checked: its own label would confirm a guess."""
    email, inactive = unique_email(), unique_email()
    await register(client, email)
    await register(client, inactive)
    await db_session.execute(update(User).where(User.email == inactive).values(is_active=False))
    before = await login_counts(client)

    assert (await password_grant(client, email)).status_code == 200
    assert (await password_grant(client, email, WRONG)).status_code == 400
    assert (await password_grant(client, unique_email())).status_code == 400
    assert (await password_grant(client, inactive)).status_code == 400

    after = await scrape(client)
    assert moved(before, await login_counts(client)) == {"succeeded": 1, "invalid_credentials": 3}
    for told_apart in ("unknown_account", "wrong_password", "inactive"):
        assert f'outcome="{told_apart}"' not in after


async def test_unverified_logins_are_counted_when_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    app.state.settings = app.state.settings.model_copy(update={"ALLOW_UNVERIFIED_LOGIN": False})
    email = unique_email()
    await register(client, email)
    before = await login_counts(client)

    assert (await password_grant(client, email)).status_code == 400

    assert moved(before, await login_counts(client)) == {"unverified": 1}


async def test_throttled_logins_are_counted_without_a_password_check(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"LOGIN_FREE_ATTEMPTS": 1})
    email = unique_email()
    await register(client, email)
    before = await login_counts(client)

    assert (await password_grant(client, email, WRONG)).status_code == 400
    assert (await password_grant(client, email, PASSWORD)).status_code == 429

    assert moved(before, await login_counts(client)) == {"invalid_credentials": 1, "throttled": 1}


async def test_logins_past_the_failure_ceiling_count_as_reset_required(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"LOGIN_FREE_ATTEMPTS": 10, "LOGIN_MAX_FAILURES": 10}
    )
    email = unique_email()
    await register(client, email)
    before = await login_counts(client)

    for _ in range(10):
        assert (await password_grant(client, email, WRONG)).status_code == 400
    assert (await password_grant(client, email, PASSWORD)).status_code == 400

    assert moved(before, await login_counts(client)) == {"invalid_credentials": 10, "reset_required": 1}


async def test_refreshes_are_counted_by_outcome(client: httpx.AsyncClient, clock: ManualClock) -> None:
    _, first = await signed_up(client)
    before = await refresh_counts(client)

    second = tokens_of(await refresh_grant(client, first.refresh))
    concurrent = await refresh_grant(client, first.refresh)  # within the grace window: the session stays
    assert concurrent.status_code == 400
    clock.advance(timedelta(seconds=11))
    assert (await refresh_grant(client, first.refresh)).status_code == 400  # a replay: session revoked
    assert (await refresh_grant(client, second.refresh)).status_code == 400  # its session has ended
    assert (await refresh_grant(client, "not-a-refresh-token-" + "x" * 30)).status_code == 400

    assert moved(before, await refresh_counts(client)) == {
        "rotated": 1,
        "concurrent_reuse": 1,
        "reuse_detected": 1,
        "invalid": 2,
    }
