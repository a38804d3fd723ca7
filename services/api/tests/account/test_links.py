"""Mailed links never act on GET (a mail scanner's prefetch spends nothing): GET shows a page whose button
POSTs the token. A refused link is rolled back, so it stays unspent, and its refusal is audited and kept.
The email-change link's page, its two 409 branches and its expiry."""

import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.core.clock import ManualClock
from app.users.models import User
from tests.account.helpers import last_mail_to
from tests.auth.helpers import PASSWORD, Tokens, password_grant, register, signed_up, unique_email


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


async def ask_for_email_change(client: httpx.AsyncClient, tokens: Tokens, new_email: str) -> None:
    response = await client.post(
        "/users/me/email", json={"new_email": new_email, "current_password": PASSWORD}, headers=tokens.bearer
    )
    assert response.status_code == 202, response.text


async def me(client: httpx.AsyncClient, tokens: Tokens) -> dict[str, object]:
    body: dict[str, object] = (await client.get("/users/me", headers=tokens.bearer)).json()
    return body


def assert_is_a_button_page(page: httpx.Response, action: str, token: str) -> None:
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text.lower()
    assert f'<form method=post action="{action}">' in page.text
    assert f'name=token value="{token}"' in page.text
    assert "<button type=submit>" in page.text


async def test_a_prefetched_verification_link_spends_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, tokens = await signed_up(client)
    mail = await last_mail_to(db_session, email, "verify_email")
    for _ in range(3):  # a scanner, a preview, the user
        assert_is_a_button_page(await client.get(path_of(mail.link)), "/auth/verify/form", mail.token)
    assert (await me(client, tokens))["is_verified"] is False
    done = await client.post("/auth/verify/form", data={"token": mail.token})
    assert done.status_code == 200
    assert "Email verified" in done.text
    assert (await me(client, tokens))["is_verified"] is True
    spent = await client.get(path_of(mail.link))
    assert spent.status_code == 400
    assert "already used" in spent.text
    assert "<form" not in spent.text


async def test_a_prefetched_email_change_link_changes_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """GET /auth/email/confirm is a page: it shows the button and changes nothing; the button does."""
    old, tokens = await signed_up(client)
    new = unique_email("moved")
    await ask_for_email_change(client, tokens, new)
    mail = await last_mail_to(db_session, new, "confirm_email_change")
    for _ in range(3):
        assert_is_a_button_page(await client.get(path_of(mail.link)), "/auth/email/confirm/form", mail.token)
    assert (await me(client, tokens))["email"] == old
    done = await client.post("/auth/email/confirm/form", data={"token": mail.token})
    assert done.status_code == 200
    assert f"now {new}" in done.text
    assert (await me(client, tokens))["email"] == new


async def test_a_prefetched_cancel_link_cancels_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    old, tokens = await signed_up(client)
    new = unique_email("moved")
    await ask_for_email_change(client, tokens, new)
    warning = await last_mail_to(db_session, old, "email_change_requested")
    for _ in range(3):
        assert_is_a_button_page(
            await client.get(path_of(warning.link)), "/auth/email/cancel/form", warning.token
        )
    change = (await last_mail_to(db_session, new, "confirm_email_change")).token
    assert (await client.post("/auth/email/confirm", json={"token": change})).status_code == 200


async def test_an_expired_email_change_link_is_refused_on_the_page_and_the_post(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    _, tokens = await signed_up(client)
    new = unique_email("moved")
    await ask_for_email_change(client, tokens, new)
    mail = await last_mail_to(db_session, new, "confirm_email_change")
    clock.advance(timedelta(hours=24, seconds=1))
    page = await client.get(path_of(mail.link))
    assert page.status_code == 400
    assert "expired" in page.text
    assert "<form" not in page.text
    refused = await client.post("/auth/email/confirm", json={"token": mail.token})
    assert refused.status_code == 400
    assert refused.json()["error"] == "token_expired"
    form = await client.post("/auth/email/confirm/form", data={"token": mail.token})
    assert form.status_code == 400


async def test_a_refused_email_change_link_stays_unspent(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """The first 409 branch: the address was registered after the request. The refusal rolls back, so
    once the address is free again the same link works."""
    _, tokens = await signed_up(client)
    new = unique_email("moved")
    await ask_for_email_change(client, tokens, new)
    token = (await last_mail_to(db_session, new, "confirm_email_change")).token
    await register(client, new)

    refused = await client.post("/auth/email/confirm", json={"token": token})
    assert refused.status_code == 409
    assert refused.json()["error"] == "email_already_registered"
    page = await client.post("/auth/email/confirm/form", data={"token": token})
    assert page.status_code == 409

    await db_session.execute(delete(User).where(User.email == new))
    await db_session.commit()
    confirmed = await client.post("/auth/email/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == new


async def test_a_refused_reset_link_stays_unspent(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, _ = await signed_up(client)
    await client.post("/auth/password/forgot", json={"email": email})
    token = (await last_mail_to(db_session, email, "reset_password")).token
    weak = await client.post("/auth/password/reset/form", data={"token": token, "new_password": "short"})
    assert weak.status_code == 422
    new_password = "quiet-meadow-compass-77"
    assert (
        await client.post("/auth/password/reset", json={"token": token, "new_password": new_password})
    ).status_code == 204
    assert (await password_grant(client, email, new_password)).status_code == 200


async def refusals_of(db: AsyncSession, user_id: uuid.UUID | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.event == "account.link_refused")
    query = (
        query.where(AuditEntry.user_id == user_id) if user_id else query.where(AuditEntry.user_id.is_(None))
    )
    return list(await db.scalars(query.order_by(AuditEntry.id)))


async def test_refused_links_are_audited_although_their_requests_roll_back(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """ASVS 16.3: each refusal leaves an `account.link_refused` row with the reason code, committed on
    its own after the rollback that keeps the link unspent."""
    email, tokens = await signed_up(client)
    user_id = uuid.UUID(str((await me(client, tokens))["id"]))
    verify = (await last_mail_to(db_session, email, "verify_email")).token
    assert (await client.post("/auth/verify/confirm", json={"token": verify})).status_code == 200
    assert (await client.post("/auth/verify/confirm", json={"token": verify})).status_code == 400
    assert (await client.post("/auth/verify/form", data={"token": verify})).status_code == 400
    await client.post("/auth/password/forgot", json={"email": email})
    reset = (await last_mail_to(db_session, email, "reset_password")).token
    clock.advance(timedelta(minutes=31))
    assert (await client.get(f"/auth/verify?token={verify}")).status_code == 400
    expired = await client.post("/auth/password/reset", json={"token": reset, "new_password": "x" * 20})
    assert expired.json()["error"] == "token_expired"

    rows = await refusals_of(db_session, user_id)
    assert [(r.reason, r.details) for r in rows] == [
        ("token_used", {"purpose": "verify_email"}),
        ("token_used", {"purpose": "verify_email"}),
        ("token_used", {"purpose": "verify_email"}),
        ("token_expired", {"purpose": "reset_password"}),
    ]
    assert all(r.ip_address == "127.0.0.1" for r in rows)

    unknown = "u" * 43
    before = len(await refusals_of(db_session))
    assert (await client.post("/auth/email/confirm", json={"token": unknown})).json()[
        "error"
    ] == "token_invalid"
    after = await refusals_of(db_session)
    assert len(after) == before + 1
    assert after[-1].reason == "token_invalid"
    assert unknown not in str(after[-1].details)
