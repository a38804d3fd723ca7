"""Issue 9, items 3 and 14: the current-password check of password and email change is no unthrottled
hashing oracle. It is reserved before the hash on a per-account counter with the login schedule, limited
per client IP, and each failure is audited (committed, although the request answers with an error)."""

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.core.clock import ManualClock
from app.core.dependencies import trusted_networks
from tests.auth.helpers import PASSWORD, Tokens, live_email, password_grant, register, signed_up, tokens_of

WRONG = "not-my-password-at-all"
NEW_PASSWORD = "a-brand-new-passphrase-9"


async def change_password(client: httpx.AsyncClient, tokens: Tokens, current: str) -> httpx.Response:
    return await client.post(
        "/users/me/password",
        json={"current_password": current, "new_password": NEW_PASSWORD},
        headers=tokens.bearer,
    )


async def change_email(client: httpx.AsyncClient, tokens: Tokens, current: str) -> httpx.Response:
    return await client.post(
        "/users/me/email",
        json={"new_email": f"new-{uuid.uuid4().hex[:8]}@example.org", "current_password": current},
        headers=tokens.bearer,
    )


async def events_of(db: AsyncSession, user_id: str, *names: str) -> list[AuditEntry]:
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.user_id == uuid.UUID(user_id), AuditEntry.event.in_(names))
        .order_by(AuditEntry.id)
    )
    return list(rows)


async def test_wrong_current_passwords_are_throttled_per_account_like_logins(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    _, tokens = await signed_up(client)
    for _ in range(5):
        wrong = await change_password(client, tokens, WRONG)
        assert wrong.status_code == 400
        assert wrong.json()["error"] == "invalid_current_password"
    throttled = await change_password(client, tokens, PASSWORD)
    assert throttled.status_code == 429, "even the right password waits: it is not checked during the delay"
    assert throttled.json()["error"] == "too_many_requests"
    assert throttled.headers["retry-after"] == "1"
    clock.advance(timedelta(seconds=1))
    assert (await change_password(client, tokens, WRONG)).status_code == 400
    doubled = await change_password(client, tokens, PASSWORD)
    assert doubled.headers["retry-after"] == "2", "the delay doubles"
    clock.advance(timedelta(seconds=2))
    assert (await change_password(client, tokens, PASSWORD)).status_code == 204


async def test_email_change_shares_the_current_password_throttle(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    for _ in range(3):
        assert (await change_password(client, tokens, WRONG)).status_code == 400
    for _ in range(2):
        assert (await change_email(client, tokens, WRONG)).status_code == 400
    throttled = await change_email(client, tokens, PASSWORD)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"


async def test_each_failed_current_password_check_is_audited_although_the_request_fails(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = f"audited-{uuid.uuid4().hex[:8]}@example.org"
    user_id = (await register(client, email)).json()["id"]
    tokens = tokens_of(await password_grant(client, email))
    assert (await change_password(client, tokens, WRONG)).status_code == 400
    assert (await change_email(client, tokens, WRONG)).status_code == 400
    for _ in range(3):
        await change_password(client, tokens, WRONG)
    assert (await change_password(client, tokens, WRONG)).status_code == 429

    failed = await events_of(db_session, user_id, "password.current_check_failed")
    assert [(e.reason, e.details) for e in failed[:2]] == [
        ("wrong_password", {"purpose": "password_change", "consecutive_failures": 1}),
        ("wrong_password", {"purpose": "email_change", "consecutive_failures": 2}),
    ]
    assert len(failed) == 5
    assert all(e.ip_address == "127.0.0.1" for e in failed)
    throttled = await events_of(db_session, user_id, "password.current_check_throttled")
    assert [(e.reason, e.details) for e in throttled] == [("throttled", {"purpose": "password_change"})]
    for event in failed + throttled:
        assert WRONG not in f"{event.details} {event.reason}"


async def test_anonymous_login_failures_do_not_lock_the_owner_out_of_a_password_change(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    # Ten hours pass: the access token of the start must last them.
    app.state.settings = app.state.settings.model_copy(
        update={"LOGIN_MAX_FAILURES": 10, "ACCESS_TOKEN_TTL_SECONDS": 86400}
    )
    email, tokens = await signed_up(client)
    client.cookies.clear()
    for _ in range(10):
        clock.advance(timedelta(hours=1))
        assert (await password_grant(client, email, WRONG)).status_code == 400
    assert (await password_grant(client, email)).status_code == 400, "sign-ins from strangers are locked"
    assert (await change_password(client, tokens, PASSWORD)).status_code == 204


async def test_after_the_maximum_of_wrong_current_passwords_a_reset_is_required(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    # Ten hours pass: the access token of the start must last them.
    app.state.settings = app.state.settings.model_copy(
        update={"LOGIN_MAX_FAILURES": 10, "ACCESS_TOKEN_TTL_SECONDS": 86400}
    )
    _, tokens = await signed_up(client)
    for _ in range(10):
        clock.advance(timedelta(hours=1))
        assert (await change_password(client, tokens, WRONG)).status_code == 400
    clock.advance(timedelta(hours=1))
    locked = await change_password(client, tokens, PASSWORD)
    assert locked.status_code == 403
    assert locked.json()["error"] == "password_reset_required"


async def test_current_password_checks_have_a_per_ip_limit(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance(timedelta(days=uuid.uuid4().int % 100_000))  # a window no earlier test used
    _, tokens = await signed_up(client)
    app.state.settings = app.state.settings.model_copy(
        update={"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_CURRENT_PASSWORD": 2}
    )
    app.state.trusted_proxies = trusted_networks(["127.0.0.1/32"])
    ip = {"X-Forwarded-For": f"10.77.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"}
    headers = {**tokens.bearer, **ip}
    password_change = {"current_password": WRONG, "new_password": NEW_PASSWORD}
    email_change = {"current_password": WRONG, "new_email": "x-limit@example.org"}
    assert (await client.post("/users/me/password", json=password_change, headers=headers)).status_code == 400
    assert (await client.post("/users/me/email", json=email_change, headers=headers)).status_code == 400
    limited = await client.post("/users/me/password", json=password_change, headers=headers)
    assert limited.status_code == 429, "one budget per address for both kinds of check"
    assert limited.json()["error"] == "too_many_requests"
    assert 1 <= int(limited.headers["retry-after"]) <= 60


async def test_parallel_wrong_current_passwords_run_at_most_the_free_checks(
    flood_app: FastAPI, flood_client: httpx.AsyncClient
) -> None:
    email = live_email("reauth")
    await register(flood_client, email)
    tokens = tokens_of(await password_grant(flood_client, email))
    hasher = flood_app.state.hasher
    before = hasher.finished
    responses = await asyncio.gather(*(change_password(flood_client, tokens, WRONG) for _ in range(30)))
    free = flood_app.state.settings.LOGIN_FREE_ATTEMPTS
    assert hasher.finished - before == free
    assert Counter(r.status_code for r in responses) == Counter({400: free, 429: 30 - free})
