"""Per-client-IP limits and per-account login throttling, counted in Postgres."""

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.audit.models import AuditEntry
from app.auth.models import RefreshToken
from app.core.clock import ManualClock
from app.core.dependencies import trusted_networks
from app.core.opaque_tokens import digest
from app.ratelimit import repository
from app.ratelimit.models import LoginThrottle
from tests.account.helpers import last_mail_to
from tests.auth.helpers import PASSWORD, live_email, password_grant, register, signed_up, unique_email
from tests.statements import statements_on

WRONG = "not-the-password-at-all"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def limited(app: FastAPI, clock: ManualClock) -> FastAPI:
    """Limits on, localhost trusted as a proxy (so each test can speak from its own address), and the clock
    moved to a window no earlier test has used."""
    app.state.settings = app.state.settings.model_copy(
        update={"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_REGISTER": 3, "RATE_LIMIT_TOKEN": 4}
    )
    app.state.trusted_proxies = trusted_networks(["127.0.0.1/32"])
    clock.advance(timedelta(days=uuid.uuid4().int % 100_000))
    return app


def from_ip(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def new_ip() -> str:
    value = uuid.uuid4().int
    return f"10.{value % 250}.{value // 250 % 250}.{value // 62500 % 250 + 1}"


async def test_a_client_over_its_limit_gets_429_with_retry_after(
    limited: FastAPI, client: httpx.AsyncClient
) -> None:
    ip = new_ip()
    statuses = [
        (
            await client.post(
                "/auth/register", json={"email": unique_email(), "password": PASSWORD}, headers=from_ip(ip)
            )
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [201, 201, 201]
    refused = await client.post(
        "/auth/register", json={"email": unique_email(), "password": PASSWORD}, headers=from_ip(ip)
    )
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    other = await client.post(
        "/auth/register", json={"email": unique_email(), "password": PASSWORD}, headers=from_ip(new_ip())
    )
    assert other.status_code == 201


async def test_the_token_endpoint_limit_answers_in_the_oauth_shape(
    limited: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    ip = new_ip()
    form = {"grant_type": "refresh_token", "refresh_token": "x" * 43}
    for _ in range(4):
        assert (await client.post("/auth/token", data=form, headers=from_ip(ip))).status_code == 400
    refused = await client.post("/auth/token", data=form, headers=from_ip(ip))
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_requests"
    assert "error_description" in refused.json()
    clock.advance(timedelta(seconds=61))
    assert (await client.post("/auth/token", data=form, headers=from_ip(ip))).status_code == 400


async def test_forwarded_for_is_ignored_from_untrusted_peers(app: FastAPI, client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": email, "password": PASSWORD},
        headers=from_ip("203.0.113.9"),
    )
    tokens = response.json()
    sessions = await client.get(
        "/auth/sessions", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert sessions.json()[0]["ip_address"] == "127.0.0.1"


async def test_behind_a_trusted_proxy_the_client_is_the_last_untrusted_hop(
    limited: FastAPI, client: httpx.AsyncClient
) -> None:
    email = unique_email()
    await register(client, email, PASSWORD)
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": email, "password": PASSWORD},
        headers=from_ip("198.51.100.1, 203.0.113.7, 127.0.0.1"),
    )
    tokens = response.json()
    sessions = await client.get(
        "/auth/sessions", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert sessions.json()[0]["ip_address"] == "203.0.113.7"


async def test_failed_logins_bring_increasing_delays_not_a_lockout(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    email, _ = await signed_up(client)
    for _ in range(5):
        assert (await password_grant(client, email, WRONG)).status_code == 400
    throttled = await password_grant(client, email, PASSWORD)
    assert throttled.status_code == 429, "even the right password waits: it is not checked during the delay"
    assert throttled.headers["retry-after"] == "1"
    clock.advance(timedelta(seconds=1))
    assert (await password_grant(client, email, WRONG)).status_code == 400
    second = await password_grant(client, email, PASSWORD)
    assert second.status_code == 429
    assert second.headers["retry-after"] == "2", "the delay doubles"
    clock.advance(timedelta(seconds=2))
    assert (await password_grant(client, email, PASSWORD)).status_code == 200
    assert (await password_grant(client, email, WRONG)).status_code == 400, "a success reset the count"
    assert (await password_grant(client, email, PASSWORD)).status_code == 200


async def test_a_token_request_refused_for_its_form_is_counted_and_past_the_limit_answered_429(
    limited: FastAPI, client: httpx.AsyncClient
) -> None:
    """The token endpoint reads its form before it counts the hit (which also reads the form's client), but
    a form it refuses is counted all the same, before the refusal: past the limit, 429 comes first."""
    ip = new_ip()
    too_long = {"grant_type": "g" * 65}
    repeated = [("grant_type", "refresh_token"), ("grant_type", "password")]
    assert (await client.post("/auth/token", data=too_long, headers=from_ip(ip))).status_code == 422
    for _ in range(3):
        refused = await client.post(
            "/auth/token", content=urlencode(repeated), headers={**FORM, **from_ip(ip)}
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_request", refused.text
    for _ in range(2):
        assert (await client.post("/auth/token", data=too_long, headers=from_ip(ip))).status_code == 429
    valid = {"grant_type": "refresh_token", "refresh_token": "x" * 43}
    assert (await client.post("/auth/token", data=valid, headers=from_ip(ip))).status_code == 429


async def test_with_limits_on_a_refresh_is_one_round_trip_with_its_hit_and_its_client(
    limited: FastAPI, client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    """A plain refresh by a client that sends no secret is one statement: the hit, the client's read and
    the rotation (`service.RotationAhead`). A password grant's hit still reads the client alone."""
    email, tokens = await signed_up(client)
    driver = (await connection.get_raw_connection()).driver_connection
    tables = ("rate_limit_hits", "oauth_clients", "refresh_tokens")
    with statements_on(*tables, driver=driver) as statements:
        response = await client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": tokens.refresh}
        )
        assert response.status_code == 200, response.text
    assert len(statements) == 1, statements
    assert statements[0].startswith("WITH hit AS ( INSERT INTO rate_limit_hits"), statements
    assert "FROM oauth_clients WHERE client_id = $3" in statements[0], statements
    assert "UPDATE refresh_tokens" in statements[0], statements
    with statements_on(*tables, driver=driver) as statements:
        assert (await password_grant(client, email)).status_code == 200
    assert statements[0].startswith("WITH hit AS ( INSERT INTO rate_limit_hits"), statements
    assert "UPDATE refresh_tokens" not in statements[0], statements


async def test_a_refresh_past_the_limit_is_refused_and_its_token_stays_unspent(
    limited: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """The rotation sent with the hit runs only within the limit: the fifth refresh from one address (the
    limit is 4) is 429 and spends nothing; from another address the same token then rotates."""
    _, tokens = await signed_up(client)
    ip = new_ip()
    unknown = {"grant_type": "refresh_token", "refresh_token": "x" * 43}
    for _ in range(4):
        assert (await client.post("/auth/token", data=unknown, headers=from_ip(ip))).status_code == 400
    presented = {"grant_type": "refresh_token", "refresh_token": tokens.refresh}
    refused = await client.post("/auth/token", data=presented, headers=from_ip(ip))
    assert refused.status_code == 429, refused.text
    stored = await db_session.get(RefreshToken, digest(tokens.refresh))
    assert stored is not None and stored.used_at is None
    rotated = await client.post("/auth/token", data=presented, headers=from_ip(new_ip()))
    assert rotated.status_code == 200, rotated.text


class _Read:
    """A read to send with a hit: two parameters of its own, a row only when the second is positive."""

    sql = "SELECT $1::text AS word, $2::int AS number WHERE $2 > 0"

    def __init__(self, word: str, number: int) -> None:
        self.parameters: tuple[object, ...] = (word, number)
        self.taken: list[Mapping[str, Any] | None] = []

    def take(self, row: Mapping[str, Any] | None) -> None:
        self.taken.append(row)


async def test_a_hit_and_a_read_go_in_one_statement(connection: AsyncConnection) -> None:
    """`count_hit_and_read` counts the hit and gives the read its row, or None when it found none; the read's
    own parameters follow the hit's."""
    driver = (await connection.get_raw_connection()).driver_connection
    key, window = f"test:{uuid.uuid4()}", datetime(2001, 2, 3, 4, 5, tzinfo=UTC)
    found, missed = _Read("first", 7), _Read("second", 0)
    assert await repository.count_hit_and_read(driver, key, window, found) == 1
    assert await repository.count_hit_and_read(driver, key, window, missed) == 2
    assert found.taken == [{"word": "first", "number": 7}]
    assert missed.taken == [None]
    assert await repository.count_hit(driver, key, window) == 3


async def test_each_attempt_is_counted_or_refused_in_one_statement(
    client: httpx.AsyncClient, clock: ManualClock, connection: AsyncConnection
) -> None:
    """The reservation before a password check is one round trip whether it inserts the account's first
    count, adds to it or refuses; only a success clears the count, in the statement of its session."""
    email, _ = await signed_up(client)
    client.cookies.clear()  # an untrusted client: the account's own counter, not the device's
    driver = (await connection.get_raw_connection()).driver_connection

    def throttle_statements(response: httpx.Response, status: int) -> list[str]:
        assert response.status_code == status, response.text
        taken = statements.copy()
        statements.clear()
        return taken

    with statements_on("login_throttles", driver=driver) as statements:
        first = throttle_statements(await password_grant(client, email, WRONG), 400)
        assert len(first) == 1 and first[0].startswith("WITH counted AS (UPDATE login_throttles"), first
        for _ in range(4):
            assert len(throttle_statements(await password_grant(client, email, WRONG), 400)) == 1
        refused = throttle_statements(await password_grant(client, email, PASSWORD), 429)
        assert len(refused) == 1, refused
        clock.advance(timedelta(seconds=1))
        success = throttle_statements(await password_grant(client, email, PASSWORD), 200)
        assert len(success) == 2 and "DELETE FROM login_throttles" in success[1], success
        assert "INSERT INTO auth_sessions" in success[1], success


async def test_unknown_emails_are_throttled_alike(client: httpx.AsyncClient) -> None:
    known, _ = await signed_up(client)
    unknown = unique_email()
    statuses = {}
    for email in (known, unknown):
        statuses[email] = [(await password_grant(client, email, WRONG)).status_code for _ in range(7)]
    assert statuses[known] == statuses[unknown] == [400, 400, 400, 400, 400, 429, 429]


async def test_after_the_maximum_of_failures_the_password_must_be_reset(
    client: httpx.AsyncClient, clock: ManualClock, app: FastAPI, db_session: AsyncSession
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"LOGIN_MAX_FAILURES": 12})
    email, _ = await signed_up(client)
    client.cookies.clear()  # from here on an untrusted client: without the device token of the sign-up
    for _ in range(12):
        clock.advance(timedelta(hours=1))
        assert (await password_grant(client, email, WRONG)).status_code == 400
    clock.advance(timedelta(hours=1))
    refused = await password_grant(client, email, PASSWORD)
    assert refused.status_code == 400
    assert "reset the password" in refused.json()["error_description"]
    await client.post("/auth/password/forgot", json={"email": email})
    token = (await last_mail_to(db_session, email, "reset_password")).token
    new_password = "a-fresh-long-passphrase-3"
    assert (
        await client.post("/auth/password/reset", json={"token": token, "new_password": new_password})
    ).status_code == 204
    assert (await password_grant(client, email, new_password)).status_code == 200


async def test_parallel_failures_are_each_counted(
    flood_app: FastAPI, flood_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    flood_app.state.settings = flood_app.state.settings.model_copy(update={"LOGIN_FREE_ATTEMPTS": 100})
    email = live_email("parallel")
    await register(flood_client, email)
    responses = await asyncio.gather(*(password_grant(flood_client, email, WRONG) for _ in range(100)))
    statuses = [r.status_code for r in responses]
    # Past PASSWORD_HASH_QUEUE_MAX waiting checks an attempt is refused unchecked (503), and not counted.
    assert statuses.count(400) + statuses.count(503) == 100
    assert statuses.count(400) >= flood_app.state.settings.PASSWORD_HASH_QUEUE_MAX
    async with engine.connect() as connection:
        failures = await connection.scalar(select(LoginThrottle.failures).where(LoginThrottle.email == email))
        await connection.execute(delete(LoginThrottle).where(LoginThrottle.email == email))
        await connection.commit()
    assert failures == statuses.count(400)


async def test_the_first_refused_request_of_a_window_is_audited_once_and_the_count_stands(
    limited: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """Over the token endpoint's limit (4 here), three refused requests leave one `rate_limit.exceeded`
    row, with the limit's name and the client's address; the next window starts counting from zero."""
    ip = new_ip()
    form = {"grant_type": "refresh_token", "refresh_token": "not-a-token"}
    statuses = [
        (await client.post("/auth/token", data=form, headers=from_ip(ip))).status_code for _ in range(7)
    ]
    assert statuses == [400] * 4 + [429] * 3
    rows = (
        await db_session.scalars(
            select(AuditEntry).where(AuditEntry.event == "rate_limit.exceeded", AuditEntry.ip_address == ip)
        )
    ).all()
    assert [(row.reason, row.occurred_at) for row in rows] == [("token", clock.now())]
    clock.advance(timedelta(seconds=limited.state.settings.RATE_LIMIT_WINDOW_SECONDS))
    assert (await client.post("/auth/token", data=form, headers=from_ip(ip))).status_code == 400
