"""The hot routes' exact-path dispatch (`app.core.exact_routes`): `GET /users/me`, `POST /auth/token` and
the JWKS answer the same through it as through FastAPI's router (HOT_PATHS_ENABLED=false), status, body
and headers, for every kind of answer; the requests are counted under their route, the metrics port still
serves nothing but /metrics, other methods still go to FastAPI, and a lost database connection is a 503."""

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker

from app.auth.issuing import issue_access_token
from app.core.clock import ManualClock
from app.core.config import Settings
from app.core.database import build_engine, driver_connection
from app.core.errors import ServiceUnavailable
from app.main import create_app
from tests.auth.helpers import PASSWORD, signed_up
from tests.conftest import AppClient, lent_to_the_test, make_settings, started_in_test_transaction
from tests.metrics.helpers import METRICS_PORT, requests_total, scrape

# Differ between any two answers, whichever way they were served.
PER_ANSWER_HEADERS = {"x-request-id", "date"}


@pytest.fixture
async def through_fastapi(
    connection: AsyncConnection, clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that sends every request through FastAPI's router, in the test's transaction."""
    application = create_app(make_settings(HOT_PATHS_ENABLED=False), clock=clock)
    async with started_in_test_transaction(application, connection) as started:
        with lent_to_the_test(started, clock):
            async with AppClient(started) as client:
                yield client


def answer(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted(
        (name, value) for name, value in response.headers.items() if name not in PER_ANSWER_HEADERS
    )
    return response.status_code, response.content, headers


async def test_users_me_answers_alike_through_the_dispatch_and_through_fastapi(
    client: httpx.AsyncClient, through_fastapi: httpx.AsyncClient, clock: ManualClock
) -> None:
    _, tokens = await signed_up(client)
    _, revoked = await signed_up(client)
    assert (await client.post("/auth/logout", headers=revoked.bearer)).status_code == 204
    requests: list[dict[str, str]] = [
        tokens.bearer,
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"bearer {tokens.access}"},
        {"Authorization": "Bearer not.a.token"},
        {"Authorization": f"Bearer {tokens.access[:-4]}AAAA"},
        revoked.bearer,
    ]
    for headers in requests:
        fast, routed = (
            await client.get("/users/me", headers=headers),
            await through_fastapi.get("/users/me", headers=headers),
        )
        assert answer(fast) == answer(routed), headers
    assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 200

    clock.advance(timedelta(days=400))  # the token and the session have expired
    fast, routed = (
        await client.get("/users/me", headers=tokens.bearer),
        await through_fastapi.get("/users/me", headers=tokens.bearer),
    )
    assert fast.status_code == 401
    assert answer(fast) == answer(routed)


async def test_the_jwks_answers_alike_through_the_dispatch_and_through_fastapi(
    client: httpx.AsyncClient, through_fastapi: httpx.AsyncClient
) -> None:
    first = await client.get("/.well-known/jwks.json")
    assert first.status_code == 200
    for headers in (
        {},
        {"If-None-Match": first.headers["etag"]},
        {"If-None-Match": '"other"'},
        {"If-None-Match": "*"},
    ):
        fast = await client.get("/.well-known/jwks.json", headers=headers)
        routed = await through_fastapi.get("/.well-known/jwks.json", headers=headers)
        assert answer(fast) == answer(routed), headers


async def test_the_token_endpoint_answers_alike_through_the_dispatch_and_through_fastapi(
    client: httpx.AsyncClient, through_fastapi: httpx.AsyncClient
) -> None:
    """Every refusal byte for byte; a grant's answers (new tokens each time) by status, header names,
    cookie attributes and body fields."""
    email, tokens = await signed_up(client)
    refusals: list[dict[str, Any]] = [
        {"data": {}},
        {"data": {"grant_type": "magic"}},
        {"data": {"grant_type": ""}},
        {"data": {"grant_type": "refresh_token"}},
        {"data": {"grant_type": "refresh_token", "refresh_token": "unknown"}},
        {"data": {"grant_type": "g" * 65, "scope": "s" * 1025}},
        {"content": b"grant_type=refresh_token&grant_type=refresh_token&refresh_token=x"},
        {"data": {"grant_type": "password", "username": email, "password": "wrong"}},
        {"data": {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}},
        {"json": {"grant_type": "refresh_token", "refresh_token": "x"}},
        {
            "data": {"grant_type": "refresh_token", "refresh_token": "x"},
            "headers": {"Authorization": "Basic"},
        },
    ]
    for request in refusals:
        if "content" in request:
            request["headers"] = {"Content-Type": "application/x-www-form-urlencoded"}
        fast = await client.post("/auth/token", **request)
        routed = await through_fastapi.post("/auth/token", **request)
        assert fast.status_code >= 400, (request, fast.text)
        assert answer(fast) == answer(routed), request

    def shape(response: httpx.Response) -> tuple[int, list[str], list[str], list[str]]:
        cookie = response.headers.get("set-cookie", "")
        cookies = [attribute.split("=")[0] for attribute in cookie.split("; ")]
        return response.status_code, sorted(response.headers), cookies[1:], sorted(response.json())

    login = {"grant_type": "password", "username": email, "password": PASSWORD}
    fast, routed = (
        await client.post("/auth/token", data=login),
        await through_fastapi.post("/auth/token", data=login),
    )
    assert fast.status_code == 200, fast.text
    assert shape(fast) == shape(routed)
    # Each refreshes a token of its own: a token presented twice would be a replay.
    fast_refresh = {"grant_type": "refresh_token", "refresh_token": tokens.refresh}
    routed_refresh = {"grant_type": "refresh_token", "refresh_token": fast.json()["refresh_token"]}
    fast = await client.post("/auth/token", data=fast_refresh)
    routed = await through_fastapi.post("/auth/token", data=routed_refresh)
    assert fast.status_code == 200, fast.text
    assert shape(fast) == shape(routed)


async def test_dispatched_requests_are_counted_under_their_route(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    before = await scrape(client)
    assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 200
    assert (await client.get("/users/me")).status_code == 401
    after = await scrape(client)
    assert (
        requests_total(after, "GET", "/users/me", 200) == requests_total(before, "GET", "/users/me", 200) + 1
    )
    assert (
        requests_total(after, "GET", "/users/me", 401) == requests_total(before, "GET", "/users/me", 401) + 1
    )


async def test_the_metrics_port_serves_no_hot_route(client: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/users/me"), ("GET", "/.well-known/jwks.json"), ("POST", "/auth/token")):
        response = await client.request(method, f"http://testserver:{METRICS_PORT}{path}")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


async def test_other_methods_on_a_hot_path_still_reach_fastapi(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    updated = await client.patch("/users/me", json={"display_name": "Ada"}, headers=tokens.bearer)
    assert updated.status_code == 200
    assert (await client.get("/users/me", headers=tokens.bearer)).json()["display_name"] == "Ada"
    not_allowed = await client.post("/.well-known/jwks.json")
    assert not_allowed.status_code == 405
    assert (await client.get("/users/me/", headers=tokens.bearer)).status_code != 200  # exact paths only


async def test_a_subject_not_in_its_canonical_form_is_refused_by_both_session_checks(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A validly signed token for the caller's own session whose `sub` spells the user id another way
    (upper case) names no user: 401 from `me`'s statement and from the ORM check (`authenticated`) alike."""
    _, tokens = await signed_up(client)
    claims = jwt.decode(tokens.access, options={"verify_signature": False})
    for subject, expected in ((claims["sub"].upper(), 401), (claims["sub"], 200)):
        token, _ = issue_access_token(
            app.state.keyring, app.state.settings, subject=subject, session_id=claims["sid"], now=clock.now()
        )
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/users/me", headers=bearer)).status_code == expected
        assert (await client.patch("/users/me", json={}, headers=bearer)).status_code == expected


async def test_a_lost_connection_under_a_hot_route_is_a_503(app: FastAPI) -> None:
    with pytest.raises(ServiceUnavailable):
        async with driver_connection(app.state.sessionmaker):
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    with pytest.raises(ServiceUnavailable):
        async with driver_connection(app.state.sessionmaker):
            raise asyncpg.AdminShutdownError("terminating connection due to administrator command")
    with pytest.raises(asyncpg.UndefinedTableError):  # a bug, not an outage: a 500
        async with driver_connection(app.state.sessionmaker) as connection:
            await connection.fetchval("SELECT 1 FROM no_such_table")


async def test_a_connection_lost_in_a_statement_on_the_engine_is_a_503(settings: Settings) -> None:
    """On the engine's own pool (the served app's, not a test's connection): a statement whose connection
    the server ends is a 503, the connection goes back to the pool, and the next statement gets another."""
    engine = build_engine(settings)
    sessionmaker = async_sessionmaker(bind=engine)
    try:
        with pytest.raises(ServiceUnavailable):
            async with driver_connection(sessionmaker) as connection:
                await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        with pytest.raises(asyncpg.UndefinedTableError):  # a bug, not an outage: a 500
            async with driver_connection(sessionmaker) as connection:
                await connection.fetchval("SELECT 1 FROM no_such_table")
        async with driver_connection(sessionmaker) as connection:
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await engine.dispose()


async def test_a_connection_the_pool_cannot_make_under_a_hot_route_is_raised_as_the_engine_raises_it(
    settings: Settings,
) -> None:
    """The hot routes check a connection out of the engine's pool directly: a database that refuses the
    connection is a 503, a refused login the DBAPIError `engine.connect()` raises (the app's handler for
    it answers)."""
    for url, expected in (
        (make_url(settings.DATABASE_URL).set(host="127.0.0.1", port=1), ServiceUnavailable),
        (make_url(settings.DATABASE_URL).set(password="wrong"), DBAPIError),
    ):
        engine = build_engine(make_settings(DATABASE_URL=url.render_as_string(hide_password=False)))
        try:
            with pytest.raises(expected):
                async with driver_connection(async_sessionmaker(bind=engine)) as connection:
                    await connection.fetchval("SELECT 1")
        finally:
            await engine.dispose()


async def test_the_account_is_compact_utf8_json_whatever_its_name_holds(client: httpx.AsyncClient) -> None:
    """`me` writes its body with orjson (`users.schemas.user_json`): the bytes Starlette's JSONResponse
    wrote (compact separators, UTF-8 rather than `\\u` escapes, control characters escaped), with the
    PATCH's answer for the same account as the reference."""
    _, tokens = await signed_up(client)
    name = 'Ada "Byron" \\ Lovelace, é ü ß 😀 \u2028'
    updated = await client.patch("/users/me", json={"display_name": name}, headers=tokens.bearer)
    assert updated.status_code == 200, updated.text
    read = await client.get("/users/me", headers=tokens.bearer)
    assert read.json() == updated.json()
    assert read.json()["display_name"] == name
    compact = json.dumps(read.json(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert read.content == compact.encode()
    assert read.headers["content-type"] == "application/json"
    assert read.headers["content-length"] == str(len(read.content))
