"""Fixtures of the OAuth endpoint tests: an administrator who registers clients, and steps that give a
client a user's tokens."""

from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.admin.helpers import Account, admin_account
from tests.auth.helpers import register, unique_email
from tests.clients.helpers import basic, password_grant_as, register_client


@pytest.fixture
async def admin(client: httpx.AsyncClient, db_session: AsyncSession) -> Account:
    return await admin_account(client, db_session)


@dataclass
class App:
    """A registered client and how it authenticates."""

    client_id: str
    secret: str | None

    @property
    def auth(self) -> dict[str, str]:
        return basic(self.client_id, self.secret) if self.secret else {}

    def form(self) -> dict[str, str]:
        return {} if self.secret else {"client_id": self.client_id}


async def new_app(client: httpx.AsyncClient, admin: Account, **fields: Any) -> App:
    fields.setdefault("grant_types", ["password", "refresh_token"])
    registered = await register_client(client, admin, **fields)
    return App(registered["client_id"], registered.get("client_secret"))


async def user_tokens(client: httpx.AsyncClient, app: App, **form: str) -> dict[str, Any]:
    """A new user's tokens from `app`'s password grant."""
    email = unique_email()
    assert (await register(client, email)).status_code == 201
    response = await password_grant_as(client, email, headers=app.auth, **app.form(), **form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def payload(token: str) -> dict[str, Any]:
    """The claims of a token, unverified (the tests read what pyauth wrote)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
