"""Every security event of the account and token flows leaves its audit row, written with the event
(failures too, although their requests answer with an error), and none holds a secret."""

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.core.clock import ManualClock
from tests.account.helpers import last_mail_to
from tests.auth.helpers import PASSWORD, password_grant, refresh_grant, register, tokens_of, unique_email


async def events_of(db: AsyncSession, user_id: uuid.UUID) -> list[AuditEntry]:
    rows = await db.scalars(select(AuditEntry).where(AuditEntry.user_id == user_id).order_by(AuditEntry.id))
    return list(rows)


async def test_the_account_and_token_flows_are_audited(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email = unique_email()
    user_id = uuid.UUID((await register(client, email)).json()["id"])
    await client.post(
        "/auth/verify/confirm", json={"token": (await last_mail_to(db_session, email, "verify_email")).token}
    )
    assert (await password_grant(client, email, "not-the-password-at-all")).status_code == 400
    first = tokens_of(await password_grant(client, email))
    clock.advance(timedelta(seconds=1))
    second = tokens_of(await refresh_grant(client, first.refresh))
    clock.advance(timedelta(seconds=30))
    assert (await refresh_grant(client, first.refresh)).status_code == 400  # reuse: the session is revoked
    third = tokens_of(await password_grant(client, email))
    new_password = "another-long-passphrase-8"
    await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=third.bearer,
    )
    await client.post("/auth/logout", headers=third.bearer)
    await client.post("/auth/password/forgot", json={"email": email})
    token = (await last_mail_to(db_session, email, "reset_password")).token
    await client.post(
        "/auth/password/reset", json={"token": token, "new_password": "a-third-long-passphrase-9"}
    )
    del second

    events = await events_of(db_session, user_id)
    names = [e.event for e in events]
    for expected in (
        "user.registered",
        "email.verified",
        "login.failed",
        "login.succeeded",
        "token.refreshed",
        "refresh.reuse_detected",
        "password.changed",
        "session.logout",
        "password.reset_requested",
        "password.reset",
    ):
        assert expected in names, f"{expected} missing from {names}"
    failed = next(e for e in events if e.event == "login.failed")
    assert failed.reason == "wrong_password"
    assert failed.ip_address == "127.0.0.1"
    for event in events:
        text = f"{event.reason} {event.details} {event.user_agent}"
        for secret in (PASSWORD, new_password, first.refresh, token):
            assert secret not in text


async def test_a_failed_login_for_an_unknown_account_is_audited_without_the_typed_name(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    typed = unique_email("nobody")
    assert (await password_grant(client, typed, "whatever-they-typed-here")).status_code == 400
    rows = list(
        await db_session.scalars(
            select(AuditEntry).where(
                AuditEntry.event == "login.failed", AuditEntry.reason == "unknown_account"
            )
        )
    )
    assert rows
    assert all(typed not in f"{row.details}" for row in rows)
