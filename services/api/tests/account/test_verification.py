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


async def test_the_mailed_link_opens_a_page_whose_button_verifies(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    mail = await last_mail_to(db_session, email, "verify_email")
    link = urlsplit(mail.link)
    page = await client.get(f"{link.path}?{link.query}")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert 'action="/auth/verify/form"' in page.text
    done = await client.post("/auth/verify/form", data={"token": mail.token})
    assert "Email verified" in done.text
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


async def test_a_repeated_verification_request_within_the_cooldown_mails_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """Issue 9 item 13: registration mailed a link; asking again within MAIL_RECIPIENT_COOLDOWN_SECONDS
    mails nothing and leaves that link valid; the answer is the one an unknown address gets."""
    email = unique_email()
    await register(client, email)
    first = (await last_mail_to(db_session, email, "verify_email")).token
    clock.advance(timedelta(seconds=299))
    known = await client.post("/auth/verify/request", json={"email": email})
    unknown = await client.post("/auth/verify/request", json={"email": unique_email()})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(await mails_to(db_session, email)) == 1
    assert (await client.post("/auth/verify/confirm", json={"token": first})).status_code == 200


async def test_after_the_cooldown_a_new_verification_link_leaves_the_older_one_valid(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email = unique_email()
    await register(client, email)
    first = (await last_mail_to(db_session, email, "verify_email")).token
    clock.advance(timedelta(seconds=300))
    assert (await client.post("/auth/verify/request", json={"email": email})).status_code == 202
    mails = await mails_to(db_session, email, "verify_email")
    assert len(mails) == 2
    assert (await client.post("/auth/verify/confirm", json={"token": first})).status_code == 200
    second = await client.post("/auth/verify/confirm", json={"token": mails[-1].token})
    assert second.json()["error"] == "token_used", "verifying ends the other verification links"


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
