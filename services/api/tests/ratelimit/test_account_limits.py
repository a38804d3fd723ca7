"""The per-client-IP limits of the account endpoints: forgot-password, verification (requests, links and
their pages), reset, revocation and email change. Each answers 429 with `Retry-After` past its limit, for
that address only."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from app.core.clock import ManualClock
from app.core.dependencies import trusted_networks
from tests.auth.helpers import PASSWORD, signed_up, unique_email

LIMIT = 3
FAKE_TOKEN = "x" * 43

Send = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]]


@pytest.fixture
def limited(app: FastAPI, clock: ManualClock) -> FastAPI:
    """Limits on at LIMIT per window for the account endpoints, localhost trusted as a proxy (each test
    speaks from its own address), and the clock moved to a window no earlier test has used."""
    app.state.settings = app.state.settings.model_copy(
        update={
            "RATE_LIMITS_ENABLED": True,
            "RATE_LIMIT_FORGOT_PASSWORD": LIMIT,
            "RATE_LIMIT_VERIFICATION": LIMIT,
            "RATE_LIMIT_RESET_PASSWORD": LIMIT,
            "RATE_LIMIT_REVOKE": LIMIT,
            "ENUMERATION_SAFE_RESPONSE_SECONDS": 0,
        }
    )
    app.state.trusted_proxies = trusted_networks(["127.0.0.1/32"])
    clock.advance(timedelta(days=uuid.uuid4().int % 100_000))
    return app


def new_ip() -> str:
    value = uuid.uuid4().int
    return f"10.{value % 250}.{value // 250 % 250}.{value // 62500 % 250 + 1}"


async def forgot(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/auth/password/forgot", json={"email": unique_email()}, headers=headers)


async def verification_request(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/auth/verify/request", json={"email": unique_email()}, headers=headers)


async def verification_confirm(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/auth/verify/confirm", json={"token": FAKE_TOKEN}, headers=headers)


async def verification_page(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get(f"/auth/verify?token={FAKE_TOKEN}", headers=headers)


async def reset(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    body = {"token": FAKE_TOKEN, "new_password": "quiet-meadow-compass-77"}
    return await client.post("/auth/password/reset", json=body, headers=headers)


async def reset_form(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    body = {"token": FAKE_TOKEN, "new_password": "quiet-meadow-compass-77"}
    return await client.post("/auth/password/reset/form", data=body, headers=headers)


async def revoke(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/auth/revoke", data={"token": FAKE_TOKEN}, headers=headers)


async def email_confirm(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/auth/email/confirm", json={"token": FAKE_TOKEN}, headers=headers)


async def email_cancel(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/auth/email/cancel", json={"token": FAKE_TOKEN}, headers=headers)


@pytest.mark.parametrize(
    "send",
    [
        forgot,
        verification_request,
        verification_confirm,
        verification_page,
        reset,
        reset_form,
        revoke,
        email_confirm,
        email_cancel,
    ],
)
async def test_account_endpoints_are_limited_per_client_address(
    limited: FastAPI, client: httpx.AsyncClient, send: Send
) -> None:
    ip = new_ip()
    for _ in range(LIMIT):
        assert (await send(client, {"X-Forwarded-For": ip})).status_code != 429
    refused = await send(client, {"X-Forwarded-For": ip})
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (await send(client, {"X-Forwarded-For": new_ip()})).status_code != 429


async def test_email_change_requests_are_limited_per_client_address(
    limited: FastAPI, client: httpx.AsyncClient
) -> None:
    _, tokens = await signed_up(client)
    ip = new_ip()

    async def change(address: str) -> httpx.Response:
        return await client.post(
            "/users/me/email",
            json={"new_email": unique_email(), "current_password": PASSWORD},
            headers={**tokens.bearer, "X-Forwarded-For": address},
        )

    assert [(await change(ip)).status_code for _ in range(LIMIT)] == [202] * LIMIT
    refused = await change(ip)
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert (await change(new_ip())).status_code == 202
