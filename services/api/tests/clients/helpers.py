"""Client-side steps the client tests share: register a client through the admin API, and ask for tokens
with each way of authenticating a client."""

import base64
from typing import Any
from urllib.parse import quote

import httpx

from tests.admin.helpers import Account
from tests.auth.helpers import PASSWORD


async def register_client(client: httpx.AsyncClient, admin: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "Example app", "type": "confidential", **fields}
    response = await client.post("/admin/clients", json=body, headers=admin.bearer)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: each part form-urlencoded, then `id:secret` in base64."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}


async def password_grant_as(
    client: httpx.AsyncClient,
    email: str,
    *,
    headers: dict[str, str] | None = None,
    **form: str,
) -> httpx.Response:
    data = {"grant_type": "password", "username": email, "password": PASSWORD, **form}
    return await client.post("/auth/token", data=data, headers=headers)


async def refresh_grant_as(
    client: httpx.AsyncClient, refresh_token: str, *, headers: dict[str, str] | None = None, **form: str
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
    return await client.post("/auth/token", data=data, headers=headers)
