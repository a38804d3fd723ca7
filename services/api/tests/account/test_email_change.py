"""Email change: the current password is required, the new address must confirm, the old one is told."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.account.helpers import last_mail_to
from tests.auth.helpers import PASSWORD, Tokens, password_grant, register, signed_up, unique_email


async def change(
    client: httpx.AsyncClient, tokens: Tokens, new_email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/users/me/email", json={"new_email": new_email, "current_password": password}, headers=tokens.bearer
    )


async def test_the_change_takes_effect_only_after_the_new_address_confirms(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    old, tokens = await signed_up(client)
    new = unique_email("moved")
    assert (await change(client, tokens, new)).status_code == 202
    assert "requested" in (await last_mail_to(db_session, old, "email_change_requested")).subject
    assert (await client.get("/users/me", headers=tokens.bearer)).json()["email"] == old
    assert (await password_grant(client, old)).status_code == 200

    token = (await last_mail_to(db_session, new, "confirm_email_change")).token
    confirmed = await client.post("/auth/email/confirm", json={"token": token})
    assert confirmed.status_code == 200
    assert confirmed.json()["email"] == new
    assert confirmed.json()["is_verified"] is True
    assert (await password_grant(client, new)).status_code == 200
    assert (await password_grant(client, old)).status_code == 400
    assert "was changed" in (await last_mail_to(db_session, old, "email_changed")).subject
    assert (await client.post("/auth/email/confirm", json={"token": token})).json()["error"] == "token_used"


async def test_the_current_password_is_required(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    _, tokens = await signed_up(client)
    response = await change(client, tokens, unique_email(), "not-the-current-password")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_current_password"


async def test_a_taken_address_is_refused(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    taken = unique_email()
    await register(client, taken)
    response = await change(client, tokens, taken.upper())
    assert response.status_code == 409
    assert response.json()["error"] == "email_already_registered"


async def test_links_sent_to_the_old_address_stop_working(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    old, tokens = await signed_up(client)
    verification = (await last_mail_to(db_session, old, "verify_email")).token
    new = unique_email("moved")
    await change(client, tokens, new)
    await client.post(
        "/auth/email/confirm",
        json={"token": (await last_mail_to(db_session, new, "confirm_email_change")).token},
    )
    response = await client.post("/auth/verify/confirm", json={"token": verification})
    assert response.status_code == 400
