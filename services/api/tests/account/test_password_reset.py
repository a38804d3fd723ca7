"""Forgot / reset: enumeration-safe requests, single-use short-lived tokens, the full policy, and every
session ended."""

import statistics
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.core.config import Settings
from app.users.models import User
from tests.account.helpers import last_mail_to, mails_to
from tests.auth.helpers import PASSWORD, password_grant, signed_up, unique_email

NEW_PASSWORD = "quiet-meadow-compass-77"


async def forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/auth/password/forgot", json={"email": email})


async def reset(client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await client.post("/auth/password/reset", json={"token": token, "new_password": password})


async def test_forgot_answers_the_same_whether_or_not_the_account_exists(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, _ = await signed_up(client)
    inactive, _ = await signed_up(client)
    await db_session.execute(update(User).where(User.email == inactive).values(is_active=False))
    answers = [await forgot(client, address) for address in (email, unique_email(), inactive, "not-an-email")]
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    assert await mails_to(db_session, email, "reset_password")
    assert not await mails_to(db_session, inactive, "reset_password")


async def test_forgot_timing_is_alike_for_known_and_unknown_accounts(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # The floor under test at its shipped value (make_settings turns it off for the rest of the suite).
    floor = Settings.model_fields["ENUMERATION_SAFE_RESPONSE_SECONDS"].default
    app.state.settings = app.state.settings.model_copy(update={"ENUMERATION_SAFE_RESPONSE_SECONDS": floor})
    email, _ = await signed_up(client)

    async def timed(address: str) -> float:
        started = time.perf_counter()
        assert (await forgot(client, address)).status_code == 202
        return time.perf_counter() - started

    known, unknown = [], []
    for _ in range(10):
        known.append(await timed(email))
        unknown.append(await timed(unique_email()))
    ratio = statistics.median(known) / statistics.median(unknown)
    print(f"\nforgot-password timing: known/unknown median ratio = {ratio:.3f}")
    assert 0.8 <= ratio <= 1.2


async def test_reset_sets_the_password_ends_sessions_and_tells_the_user(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, tokens = await signed_up(client)
    await forgot(client, email)
    token = (await last_mail_to(db_session, email, "reset_password")).token
    assert (await reset(client, token)).status_code == 204
    assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 401
    assert (await password_grant(client, email, PASSWORD)).status_code == 400
    assert (await password_grant(client, email, NEW_PASSWORD)).status_code == 200
    assert "password was changed" in (await last_mail_to(db_session, email, "password_changed")).subject


async def test_a_reset_token_works_once(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    email, _ = await signed_up(client)
    await forgot(client, email)
    token = (await last_mail_to(db_session, email, "reset_password")).token
    assert (await reset(client, token)).status_code == 204
    again = await reset(client, token, "yet-another-long-passphrase")
    assert again.status_code == 400
    assert again.json()["error"] == "token_used"


async def test_a_reset_token_expires_after_thirty_minutes(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email, _ = await signed_up(client)
    await forgot(client, email)
    token = (await last_mail_to(db_session, email, "reset_password")).token
    clock.advance(timedelta(minutes=30, seconds=1))
    response = await reset(client, token)
    assert response.status_code == 400
    assert response.json()["error"] == "token_expired"


async def test_a_verification_token_is_not_a_reset_token(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, _ = await signed_up(client)
    verification = (await last_mail_to(db_session, email, "verify_email")).token
    response = await reset(client, verification)
    assert response.status_code == 400
    assert response.json()["error"] == "token_invalid"


async def test_a_weak_new_password_is_refused_and_the_token_stays_usable(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, _ = await signed_up(client)
    await forgot(client, email)
    token = (await last_mail_to(db_session, email, "reset_password")).token
    weak = await reset(client, token, "short")
    assert weak.status_code == 422
    assert weak.json()["error"] == "password_too_short"
    assert (await reset(client, token)).status_code == 204


async def test_a_repeated_forgot_request_within_the_cooldown_mails_nothing_and_cancels_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """Issue 9 item 13: nobody can flood the owner's inbox, nor keep cancelling the link the owner holds
    by asking again; the answer does not tell."""
    email, _ = await signed_up(client)
    first = await forgot(client, email)
    link = (await last_mail_to(db_session, email, "reset_password")).token
    for _ in range(5):
        clock.advance(timedelta(seconds=30))
        again = await forgot(client, email)
        assert (again.status_code, again.text) == (first.status_code, first.text)
    assert len(await mails_to(db_session, email, "reset_password")) == 1
    assert (await reset(client, link)).status_code == 204


async def test_after_the_cooldown_a_new_reset_link_leaves_the_older_one_valid(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email, _ = await signed_up(client)
    await forgot(client, email)
    older = (await last_mail_to(db_session, email, "reset_password")).token
    clock.advance(timedelta(minutes=5))
    await forgot(client, email)
    mails = await mails_to(db_session, email, "reset_password")
    assert len(mails) == 2
    newer = mails[-1].token
    assert newer != older
    assert (await reset(client, older)).status_code == 204
    assert (await reset(client, newer)).json()["error"] == "token_used", "a reset ends the other links"


async def test_the_mailed_link_opens_a_form_that_resets(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, _ = await signed_up(client)
    await forgot(client, email)
    mail = await last_mail_to(db_session, email, "reset_password")
    link = urlsplit(mail.link)
    form_page = await client.get(f"{link.path}?{link.query}")
    assert form_page.status_code == 200
    assert 'name="token"' in form_page.text or "name=token" in form_page.text
    done = await client.post(
        "/auth/password/reset/form", data={"token": mail.token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200
    assert "Password changed" in done.text
    assert (await password_grant(client, email, NEW_PASSWORD)).status_code == 200
