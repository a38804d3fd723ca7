"""Email verification: a single-use, expiring link mailed at registration, built from configuration."""

from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.core.config import Settings
from tests.account.helpers import last_mail_to, mails_to
from tests.auth.helpers import register, unique_email


async def test_registration_mails_a_verification_link_from_the_configured_base_url(
    client: httpx.AsyncClient, db_session: AsyncSession, settings: Settings
) -> None:
    email = unique_email()
    response = await client.post(
        "/auth/register",
        json={"email": email, "password": "violet-harbor-lantern-42"},
        headers={"Host": "attacker.example", "X-Forwarded-Host": "attacker.example"},
    )
    assert response.status_code == 201
    mail = await last_mail_to(db_session, email, "verify_email")
    assert "Confirm" in mail.subject
    assert mail.link.startswith(f"{settings.issuer}/auth/verify?token=")
    assert "attacker.example" not in mail.body
    assert len(mail.token) >= 43


async def test_confirming_verifies_the_account_once(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    token = (await last_mail_to(db_session, email, "verify_email")).token
    confirmed = await client.post("/auth/verify/confirm", json={"token": token})
    assert confirmed.status_code == 200
    assert confirmed.json()["is_verified"] is True
    again = await client.post("/auth/verify/confirm", json={"token": token})
    assert again.status_code == 400
    assert again.json()["error"] == "token_used"


async def test_the_mailed_link_itself_verifies(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    email = unique_email()
    await register(client, email)
    link = urlsplit((await last_mail_to(db_session, email, "verify_email")).link)
    page = await client.get(f"{link.path}?{link.query}")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "Email verified" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    spent = await client.get(f"{link.path}?{link.query}")
    assert spent.status_code == 400


async def test_an_expired_verification_link_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email = unique_email()
    await register(client, email)
    token = (await last_mail_to(db_session, email, "verify_email")).token
    clock.advance(timedelta(hours=24, seconds=1))
    response = await client.post("/auth/verify/confirm", json={"token": token})
    assert response.status_code == 400
    assert response.json()["error"] == "token_expired"


@pytest.mark.parametrize("token", ["not-a-token", "x" * 43])
async def test_unknown_verification_tokens_are_refused(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post("/auth/verify/confirm", json={"token": token})
    assert response.status_code == 400
    assert response.json()["error"] == "token_invalid"


async def test_a_new_link_replaces_the_old_one_and_the_answer_never_tells(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email = unique_email()
    await register(client, email)
    first = (await last_mail_to(db_session, email, "verify_email")).token
    clock.advance(timedelta(seconds=1))
    known = await client.post("/auth/verify/request", json={"email": email})
    unknown = await client.post("/auth/verify/request", json={"email": unique_email()})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(await mails_to(db_session, email)) == 2
    assert (await client.post("/auth/verify/confirm", json={"token": first})).json()["error"] == "token_used"
    second = (await last_mail_to(db_session, email, "verify_email")).token
    assert (await client.post("/auth/verify/confirm", json={"token": second})).status_code == 200


async def test_unverified_login_can_be_refused_by_setting(
    client: httpx.AsyncClient, db_session: AsyncSession, app: object
) -> None:
    email = unique_email()
    await register(client, email)
    app.state.settings = app.state.settings.model_copy(update={"ALLOW_UNVERIFIED_LOGIN": False})  # type: ignore[attr-defined]
    form = {"grant_type": "password", "username": email, "password": "violet-harbor-lantern-42"}
    refused = await client.post("/auth/token", data=form)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert "not verified" in refused.json()["error_description"]
    await client.post(
        "/auth/verify/confirm", json={"token": (await last_mail_to(db_session, email, "verify_email")).token}
    )
    assert (await client.post("/auth/token", data=form)).status_code == 200
