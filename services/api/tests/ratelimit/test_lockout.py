"""Issue 9, item 2: nobody can lock anybody out. An attempt is reserved before its password is checked, so
parallel guesses get no more checks than sequential ones; and a device token from an earlier successful
login (OWASP "Slow Down Online Guessing Attacks with Device Cookies") keeps its holder on a counter of its
own, which failures from elsewhere never touch and the account lock does not stop."""

import asyncio
import hashlib
import uuid
from collections import Counter
from datetime import timedelta
from http.cookies import SimpleCookie

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.audit.models import AuditEntry
from app.core.clock import ManualClock
from app.core.opaque_tokens import digest
from app.ratelimit.models import LoginDevice, LoginThrottle
from tests.auth.helpers import PASSWORD, live_email, register, unique_email
from tests.statements import statements_on

WRONG = "not-the-password-at-all"


async def login(
    client: httpx.AsyncClient,
    email: str,
    password: str = PASSWORD,
    *,
    device: str | None = None,
    ip: str | None = None,
) -> httpx.Response:
    form = {"grant_type": "password", "username": email, "password": password}
    if device:
        form["device_token"] = device
    return await client.post("/auth/token", data=form, headers={"X-Forwarded-For": ip} if ip else None)


async def device_of(client: httpx.AsyncClient, email: str) -> str:
    """Sign in with the right password and return the device token; the client then forgets its cookie, so
    that its later requests come from an untrusted client unless they present the token."""
    response = await login(client, email)
    assert response.status_code == 200, response.text
    token = response.json()["device_token"]
    assert isinstance(token, str)
    client.cookies.clear()
    return token


def address(i: int) -> str:
    return f"10.{i // 62500 % 250}.{i // 250 % 250}.{i % 250 + 1}"


async def failures_of(engine_or_session: AsyncSession, email: str) -> int | None:
    return await engine_or_session.scalar(
        select(LoginThrottle.failures).where(LoginThrottle.email == email, LoginThrottle.kind == "login")
    )


async def checks_audited(engine: AsyncEngine, email: str) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            text(
                "SELECT count(*) FROM audit_events WHERE event = 'login.failed'"
                " AND user_id = (SELECT id FROM users WHERE email = :email)"
            ),
            {"email": email},
        )
    return int(count or 0)


async def test_100_parallel_wrong_passwords_from_100_addresses_run_at_most_the_free_checks(
    flood_app: FastAPI, flood_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    email = live_email("race")
    assert (await register(flood_client, email)).status_code == 201
    hasher = flood_app.state.hasher
    assert hasher.queue_depth == 0  # the lifespan waited for the start-up job: the count holds only the flood
    before = hasher.finished

    responses = await asyncio.gather(*(login(flood_client, email, WRONG, ip=address(i)) for i in range(100)))

    checks = hasher.finished - before
    free = flood_app.state.settings.LOGIN_FREE_ATTEMPTS
    statuses = Counter(response.status_code for response in responses)
    assert checks == free, f"{checks} password checks ran for 100 parallel attempts"
    assert await checks_audited(engine, email) == free
    assert statuses == Counter({400: free, 429: 100 - free}), statuses
    refused = next(response for response in responses if response.status_code == 429)
    assert refused.json()["error"] == "too_many_requests"
    assert int(refused.headers["retry-after"]) >= 1


async def test_after_100_parallel_wrong_passwords_the_owner_with_a_device_token_signs_in_at_once(
    flood_app: FastAPI, flood_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """The acceptance scenario of issue 9: the flood runs at most LOGIN_FREE_ATTEMPTS hashes before the
    delay, and the owner's known device is not delayed by it."""
    email = live_email("owner")
    assert (await register(flood_client, email)).status_code == 201
    device = await device_of(flood_client, email)
    hasher = flood_app.state.hasher
    before = hasher.finished

    flood = await asyncio.gather(*(login(flood_client, email, WRONG, ip=address(i)) for i in range(100)))
    checks = hasher.finished - before
    stranger = await login(flood_client, email, ip="192.0.2.11")
    owner = await login(flood_client, email, device=device, ip="192.0.2.10")

    free = flood_app.state.settings.LOGIN_FREE_ATTEMPTS
    assert checks <= free
    assert Counter(r.status_code for r in flood)[400] <= free
    assert owner.status_code == 200, owner.text
    assert owner.json()["access_token"]
    assert stranger.status_code == 429, "an untrusted client with the right password still waits"


async def test_a_known_device_is_throttled_on_its_own_counter(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email = unique_email()
    await register(client, email)
    device = await device_of(client, email)
    for _ in range(5):
        assert (await login(client, email, WRONG)).status_code == 400
    assert (await login(client, email, WRONG)).status_code == 429, "the account's delay for strangers"

    device_answers = [(await login(client, email, WRONG, device=device)).status_code for _ in range(5)]
    assert device_answers == [400] * 5, "the device's own free attempts, untouched by the strangers"
    delayed = await login(client, email, device=device)
    assert delayed.status_code == 429, "the device's own failures delay it"
    assert delayed.headers["retry-after"] == "1"
    assert await failures_of(db_session, email) == 5, "device failures do not count on the account"
    clock.advance(timedelta(seconds=1))
    assert (await login(client, email, device=device)).status_code == 200


async def test_a_known_devices_attempt_is_counted_or_refused_in_one_statement(
    client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    """A login presenting a known device reads the device (one query) and counts the attempt on its counter
    in one statement; a refusal reads the counter as it stands for its Retry-After (one query more). All
    three go to the driver."""
    email = unique_email()
    await register(client, email)
    device = await device_of(client, email)
    driver = (await connection.get_raw_connection()).driver_connection

    with statements_on("login_devices", driver=driver) as statements:
        assert (await login(client, email, WRONG, device=device)).status_code == 400
    assert len(statements) == 2, statements
    assert statements[0].startswith("SELECT login_devices.token_hash"), statements
    assert statements[1].startswith("UPDATE login_devices SET failures=(login_devices.failures +"), statements
    for _ in range(4):
        assert (await login(client, email, WRONG, device=device)).status_code == 400
    with statements_on("login_devices", driver=driver) as statements:
        refused = await login(client, email, device=device)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert len(statements) == 3 and statements[2].startswith("SELECT login_devices.failures"), statements


async def test_a_known_device_is_not_refused_by_the_account_lock_and_its_login_lifts_it(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"LOGIN_MAX_FAILURES": 10})
    email = unique_email()
    await register(client, email)
    device = await device_of(client, email)
    for _ in range(10):
        clock.advance(timedelta(hours=1))
        assert (await login(client, email, WRONG)).status_code == 400
    clock.advance(timedelta(hours=1))
    locked = await login(client, email)
    assert locked.status_code == 400
    assert "reset the password" in locked.json()["error_description"]

    assert (await login(client, email, device=device)).status_code == 200
    assert await failures_of(db_session, email) is None, "the lock is lifted"
    client.cookies.clear()
    assert (await login(client, email)).status_code == 200, "so strangers with the password get in again"


async def test_a_device_token_of_another_account_or_a_made_up_one_is_untrusted(
    client: httpx.AsyncClient,
) -> None:
    victim, other = unique_email("victim"), unique_email("other")
    await register(client, victim)
    await register(client, other)
    others_device = await device_of(client, other)
    for _ in range(5):
        assert (await login(client, victim, WRONG)).status_code == 400
    for token in (others_device, "x" * 43):
        assert (await login(client, victim, device=token)).status_code == 429
    for token in (others_device, "x" * 43, "y" * 600):
        client.cookies.set("pyauth_device", token, path="/auth/token")
        assert (await login(client, victim)).status_code == 429
        client.cookies.clear()


async def test_an_expired_device_token_is_untrusted(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"DEVICE_TOKEN_TTL_SECONDS": 3600})
    email = unique_email()
    await register(client, email)
    device = await device_of(client, email)
    clock.advance(timedelta(seconds=3601))
    for _ in range(5):
        assert (await login(client, email, WRONG)).status_code == 400
    assert (await login(client, email, device=device)).status_code == 429


async def test_a_device_at_the_maximum_of_failures_is_no_longer_trusted(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """A stolen device token buys no more guesses than LOGIN_MAX_FAILURES; then its holder counts on the
    account, like anyone else."""
    app.state.settings = app.state.settings.model_copy(update={"LOGIN_MAX_FAILURES": 10})
    email = unique_email()
    await register(client, email)
    device = await device_of(client, email)
    for _ in range(10):
        clock.advance(timedelta(hours=1))
        assert (await login(client, email, WRONG, device=device)).status_code == 400
    assert await failures_of(db_session, email) is None
    clock.advance(timedelta(hours=1))
    assert (await login(client, email, WRONG, device=device)).status_code == 400
    assert await failures_of(db_session, email) == 1


async def test_the_device_token_is_a_strict_httponly_cookie_scoped_to_the_token_endpoint(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    response = await login(client, email)
    cookie = SimpleCookie(response.headers["set-cookie"])["pyauth_device"]
    assert cookie.value == response.json()["device_token"]
    assert len(cookie.value) >= 43, "at least 256 random bits, base64url"
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/auth/token"
    assert cookie["secure"] == "", "http://localhost: a browser would drop a Secure cookie"
    assert int(cookie["max-age"]) == 90 * 86400

    bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
    me = await client.get("/users/me", headers=bearer)
    assert "cookie" not in me.request.headers, "no other path carries the device token"
    again = await login(client, email, WRONG)
    assert again.request.headers["cookie"] == f"pyauth_device={cookie.value}"
    failed = await db_session.scalar(
        select(AuditEntry).where(AuditEntry.event == "login.failed").order_by(AuditEntry.id.desc()).limit(1)
    )
    assert failed is not None
    assert failed.details == {"consecutive_failures": 1, "known_device": True}, "the cookie was recognised"


async def test_the_device_cookie_is_secure_unless_the_public_url_is_plain_http_loopback(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    email = unique_email()
    await register(client, email)
    expectations = {
        "https://auth.example.com/id/": ("/id/auth/token", True),
        "http://127.0.0.1:8000": ("/auth/token", False),
        "http://[::1]:8000": ("/auth/token", False),
        "http://auth.example.com": ("/auth/token", True),
    }
    for base, (path, secure) in expectations.items():
        app.state.settings = app.state.settings.model_copy(update={"PUBLIC_BASE_URL": base})
        response = await login(client, email)
        assert response.status_code == 200, response.text
        cookie = SimpleCookie(response.headers["set-cookie"])["pyauth_device"]
        assert cookie["path"] == path, base
        assert bool(cookie["secure"]) is secure, base
        client.cookies.clear()


async def test_device_tokens_are_stored_as_digests_and_replaced_at_each_login(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    user_id = uuid.UUID((await register(client, email)).json()["id"])
    first = await device_of(client, email)
    second = (await login(client, email, device=first)).json()["device_token"]
    assert second != first
    stored = set(
        await db_session.scalars(select(LoginDevice.token_hash).where(LoginDevice.user_id == user_id))
    )
    assert stored == {hashlib.sha256(second.encode()).digest()}, "the presented token was spent"
    client.cookies.clear()
    for _ in range(5):
        assert (await login(client, email, WRONG)).status_code == 400
    assert (await login(client, email, device=first)).status_code == 429, "a replaced token is untrusted"
    assert (await login(client, email, device=second)).status_code == 200


async def test_a_user_keeps_at_most_20_device_tokens(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    user_id = uuid.UUID((await register(client, email)).json()["id"])
    for _ in range(22):
        client.cookies.clear()
        assert (await login(client, email)).status_code == 200
    count = await db_session.scalar(
        select(func.count()).select_from(LoginDevice).where(LoginDevice.user_id == user_id)
    )
    assert count == 20


async def test_at_the_cap_a_login_with_a_known_device_spends_its_token_and_keeps_the_19_newest_others(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """20 devices, the newest presented again: its token is spent, the new one stored, and the 19 newest
    of the others stay (the spent one does not take a place among them), so the user still has 20."""
    email = unique_email()
    user_id = uuid.UUID((await register(client, email)).json()["id"])
    tokens = []
    for _ in range(20):
        clock.advance(timedelta(seconds=1))
        tokens.append(await device_of(client, email))
    clock.advance(timedelta(seconds=1))
    response = await login(client, email, device=tokens[-1])
    assert response.status_code == 200, response.text
    stored = set(
        await db_session.scalars(select(LoginDevice.token_hash).where(LoginDevice.user_id == user_id))
    )
    assert digest(response.json()["device_token"]) in stored
    assert digest(tokens[-1]) not in stored
    assert {digest(token) for token in tokens[:-1]} <= stored
    assert len(stored) == 20
