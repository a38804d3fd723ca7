"""Errors that come from below the application still get a clear answer: a character Postgres cannot
store is a 422, a method the path does not take lists every method it does."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.admin.helpers import make_admin
from tests.auth.helpers import signed_up


async def test_a_nul_character_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    login = await client.post(
        "/auth/token", data={"grant_type": "password", "username": "\x00a", "password": "x"}
    )
    assert login.status_code == 422
    assert login.json()["error"] == "invalid_character"
    _, tokens = await signed_up(client)
    patch = await client.patch("/users/me", json={"display_name": "a\u0000b"}, headers=tokens.bearer)
    assert patch.status_code == 422
    assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 200, "the session survives"


async def test_405_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.request("PUT", "/users/me")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PATCH"


async def test_audit_times_must_be_date_times_not_numbers(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, tokens = await signed_up(client)
    await make_admin(db_session, email)
    numeric = await client.get("/admin/audit", params={"until": "0.5"}, headers=tokens.bearer)
    assert numeric.status_code == 422
    dated = await client.get("/admin/audit", params={"until": "2030-01-01T00:00:00Z"}, headers=tokens.bearer)
    assert dated.status_code == 200
