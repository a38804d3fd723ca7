"""Account tokens under concurrency, against the live app (each request commits for real): a link
redeemed by many requests at once works exactly once, and two accounts confirming the same new address
at once leave one owner (the second 409 branch: the unique index refuses the loser at its flush)."""

import asyncio
from collections import Counter

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.users.models import User
from tests.account.helpers import last_mail_to, mails_to
from tests.auth.helpers import PASSWORD, live_email, register, signed_up


async def mailed_token(engine: AsyncEngine, address: str, kind: str) -> str:
    async with AsyncSession(engine) as db:
        return (await last_mail_to(db, address, kind)).token


async def test_a_verification_link_redeemed_concurrently_works_once(
    live_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    email = live_email("verify-race")
    assert (await register(live_client, email)).status_code == 201
    token = await mailed_token(engine, email, "verify_email")
    answers = await asyncio.gather(
        *(live_client.post("/auth/verify/confirm", json={"token": token}) for _ in range(20))
    )
    outcomes = Counter(a.json().get("error", a.status_code) for a in answers)
    assert outcomes == {200: 1, "token_used": 19}


async def test_a_reset_link_redeemed_concurrently_works_once(
    live_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    email = live_email("reset-race")
    assert (await register(live_client, email)).status_code == 201
    await live_client.post("/auth/password/forgot", json={"email": email})
    token = await mailed_token(engine, email, "reset_password")
    answers = await asyncio.gather(
        *(
            live_client.post(
                "/auth/password/reset", json={"token": token, "new_password": f"racing-new-passphrase-{i}"}
            )
            for i in range(8)
        )
    )
    outcomes = Counter(a.status_code if a.status_code == 204 else a.json()["error"] for a in answers)
    assert outcomes == {204: 1, "token_used": 7}


async def test_concurrent_confirmations_of_one_address_leave_one_owner(
    live_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    wanted = live_email("wanted")
    for i in range(6):
        _, tokens = await signed_up(live_client, live_email(f"mover{i}"))
        asked = await live_client.post(
            "/users/me/email", json={"new_email": wanted, "current_password": PASSWORD}, headers=tokens.bearer
        )
        assert asked.status_code == 202, asked.text
    async with AsyncSession(engine) as db:
        links = [mail.token for mail in await mails_to(db, wanted, "confirm_email_change")]
    assert len(links) == 6
    answers = await asyncio.gather(
        *(live_client.post("/auth/email/confirm", json={"token": token}) for token in links)
    )
    outcomes = Counter(a.status_code for a in answers)
    assert outcomes == {200: 1, 409: 5}, [a.text for a in answers]
    async with engine.connect() as connection:
        owners = await connection.scalar(select(func.count()).select_from(User).where(User.email == wanted))
    assert owners == 1
