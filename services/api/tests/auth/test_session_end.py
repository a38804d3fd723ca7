"""Sessions end one way: `app.auth.sessions.end_sessions`, with a typed `SessionEndReason` stored on the
session, whichever action ends it."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import AuthSession
from app.auth.sessions import SessionEndReason
from app.core.clock import ManualClock
from tests.auth.helpers import (
    PASSWORD,
    Tokens,
    fresh_password,
    password_grant,
    refresh_grant,
    signed_up,
    tokens_of,
)

APP = Path(__file__).resolve().parents[2] / "app"


def session_id(tokens: Tokens) -> uuid.UUID:
    return uuid.UUID(jwt.decode(tokens.access, options={"verify_signature": False})["sid"])


async def revoked_reason(db: AsyncSession, tokens: Tokens) -> str | None:
    return await db.scalar(select(AuthSession.revoked_reason).where(AuthSession.id == session_id(tokens)))


Ending = Callable[[httpx.AsyncClient, Tokens, Tokens, ManualClock], Awaitable[object]]


async def _logout(client: httpx.AsyncClient, ended: Tokens, other: Tokens, clock: ManualClock) -> object:
    return await client.post("/auth/logout", headers=ended.bearer)


async def _logout_all(client: httpx.AsyncClient, ended: Tokens, other: Tokens, clock: ManualClock) -> object:
    return await client.post("/auth/logout-all", headers=other.bearer)


async def _delete_session(
    client: httpx.AsyncClient, ended: Tokens, other: Tokens, clock: ManualClock
) -> object:
    return await client.delete(f"/auth/sessions/{session_id(ended)}", headers=other.bearer)


async def _rfc7009_revoke(
    client: httpx.AsyncClient, ended: Tokens, other: Tokens, clock: ManualClock
) -> object:
    return await client.post("/auth/revoke", data={"token": ended.refresh})


async def _password_change(
    client: httpx.AsyncClient, ended: Tokens, other: Tokens, clock: ManualClock
) -> object:
    body = {"current_password": PASSWORD, "new_password": fresh_password()}
    return await client.post("/users/me/password", json=body, headers=other.bearer)


async def _refresh_token_replay(
    client: httpx.AsyncClient, ended: Tokens, other: Tokens, clock: ManualClock
) -> object:
    tokens_of(await refresh_grant(client, ended.refresh))
    clock.advance(timedelta(minutes=1))  # past the grace window of concurrent refreshes
    return await refresh_grant(client, ended.refresh)


@pytest.mark.parametrize(
    ("ending", "reason"),
    [
        (_logout, SessionEndReason.LOGOUT),
        (_logout_all, SessionEndReason.LOGOUT_ALL),
        (_delete_session, SessionEndReason.REVOKED_BY_USER),
        (_rfc7009_revoke, SessionEndReason.TOKEN_REVOKED),
        (_password_change, SessionEndReason.PASSWORD_CHANGED),
        (_refresh_token_replay, SessionEndReason.REFRESH_TOKEN_REUSE),
    ],
)
async def test_every_way_of_ending_a_session_stores_its_typed_reason(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    clock: ManualClock,
    ending: Ending,
    reason: SessionEndReason,
) -> None:
    email, ended = await signed_up(client)
    other = tokens_of(await password_grant(client, email))
    await ending(client, ended, other, clock)
    assert await revoked_reason(db_session, ended) == reason
    assert (await client.get("/users/me", headers=ended.bearer)).status_code == 401


def test_sessions_end_only_through_end_sessions() -> None:
    """No service revokes sessions by hand next to `end_sessions` (the reset, deactivation and admin
    paths included): the repository's revocation has exactly one caller."""
    callers = sorted(
        str(path.relative_to(APP))
        for path in APP.rglob("*.py")
        if "revoke_sessions(" in path.read_text() and path.name != "repository.py"
    )
    assert callers == ["auth/sessions.py"]
