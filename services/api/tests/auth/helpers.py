"""Small client-side steps the auth tests share: register, log in, refresh, call as a user."""

import secrets
import uuid
from dataclasses import dataclass

import httpx

from tests.conftest import LIVE_EMAIL_DOMAIN, AppClient
from tests.factories import create_user

# Passes the whole policy at its defaults (zxcvbn scores it 4; in no shipped list).
PASSWORD = "violet-harbor-lantern-42"


def fresh_password() -> str:
    """A new password that passes the whole policy at its defaults: 80 random bits, so zxcvbn scores it 4,
    and no two tests share one. Use it wherever a test needs a second, new password."""
    return f"new-{secrets.token_hex(10)}-pass"


def unique_email(prefix: str = "user", domain: str = "example.org") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@{domain}"


def live_email(prefix: str = "user") -> str:
    """An email for `live_client` tests, whose users are deleted after the test."""
    return unique_email(prefix, LIVE_EMAIL_DOMAIN)


@dataclass
class Tokens:
    access: str
    refresh: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def register(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/auth/register", json={"email": email, "password": password})


async def password_grant(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(
        "/auth/token", data={"grant_type": "password", "username": email, "password": password}
    )


async def refresh_grant(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def tokens_of(response: httpx.Response) -> Tokens:
    assert response.status_code == 200, response.text
    body = response.json()
    return Tokens(access=body["access_token"], refresh=body["refresh_token"])


async def signed_up(client: httpx.AsyncClient, email: str | None = None) -> tuple[str, Tokens]:
    """A registered, logged-in user: their email and tokens. Inserted by the user factory (no policy
    check, no hash) when the client is the fixtures' `AppClient`; registered over HTTP otherwise."""
    email = email or unique_email()
    if isinstance(client, AppClient):
        await create_user(client.app, email, PASSWORD)
    else:
        created = await register(client, email)
        assert created.status_code == 201, created.text
    return email, tokens_of(await password_grant(client, email))
