"""Pending account tokens end with the account changes meant to lock an attacker out (ASVS 7.4.3): a
password change or reset, logout-all, deactivation and an administrator's reset of the sessions. A token
created before the last password change is refused, and the old address can cancel an email change."""

import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.users.models import User
from tests.account.helpers import last_mail_to, mails_to
from tests.admin.helpers import admin_account, audit_rows, user_account
from tests.auth.helpers import PASSWORD, Tokens, password_grant, signed_up, unique_email

NEW_PASSWORD = "quiet-meadow-compass-77"
ATTACKER_PASSWORD = "attacker-chosen-passphrase-1"


async def ask_for_email_change(client: httpx.AsyncClient, tokens: Tokens, new_email: str) -> None:
    response = await client.post(
        "/users/me/email", json={"new_email": new_email, "current_password": PASSWORD}, headers=tokens.bearer
    )
    assert response.status_code == 202, response.text


async def confirm_change(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/email/confirm", json={"token": token})


async def pending_links(client: httpx.AsyncClient, db: AsyncSession, tokens: Tokens, email: str) -> list[str]:
    """A verification link, a reset link and an email-change link, all pending for `email`'s account."""
    await client.post("/auth/password/forgot", json={"email": email})
    moved = unique_email("moved")
    await ask_for_email_change(client, tokens, moved)
    return [
        (await last_mail_to(db, email, "verify_email")).token,
        (await last_mail_to(db, email, "reset_password")).token,
        (await last_mail_to(db, moved, "confirm_email_change")).token,
    ]


async def refusals(client: httpx.AsyncClient, links: list[str]) -> list[str]:
    verify, reset, change = links
    answers = [
        await client.post("/auth/verify/confirm", json={"token": verify}),
        await client.post("/auth/password/reset", json={"token": reset, "new_password": ATTACKER_PASSWORD}),
        await confirm_change(client, change),
    ]
    assert {a.status_code for a in answers} == {400}, [a.text for a in answers]
    return [a.json()["error"] for a in answers]


async def test_password_reset_ends_a_pending_email_change(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """The takeover of issue 9 item 1: the attacker, knowing the password, moves the address to theirs;
    the warned owner resets the password; the attacker's link must no longer confirm."""
    owner, attacker_tokens = await signed_up(client)
    attacker = unique_email("attacker")
    await ask_for_email_change(client, attacker_tokens, attacker)
    attacker_link = (await last_mail_to(db_session, attacker, "confirm_email_change")).token

    clock.advance(timedelta(minutes=1))
    await client.post("/auth/password/forgot", json={"email": owner})
    reset = (await last_mail_to(db_session, owner, "reset_password")).token
    answer = await client.post("/auth/password/reset", json={"token": reset, "new_password": NEW_PASSWORD})
    assert answer.status_code == 204

    refused = await confirm_change(client, attacker_link)
    assert refused.status_code == 400
    assert refused.json()["error"] == "token_used"
    assert (await password_grant(client, owner, NEW_PASSWORD)).status_code == 200
    assert (await password_grant(client, attacker, NEW_PASSWORD)).status_code == 400


async def test_password_change_ends_pending_verification_reset_and_email_change_links(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email, tokens = await signed_up(client)
    links = await pending_links(client, db_session, tokens, email)
    clock.advance(timedelta(seconds=1))
    changed = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=tokens.bearer,
    )
    assert changed.status_code == 204, changed.text
    assert await refusals(client, links) == ["token_used"] * 3


async def test_logout_all_ends_pending_account_tokens(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, tokens = await signed_up(client)
    links = await pending_links(client, db_session, tokens, email)
    assert (await client.post("/auth/logout-all", headers=tokens.bearer)).status_code == 204
    assert await refusals(client, links) == ["token_used"] * 3


async def test_deactivation_ends_pending_account_tokens(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    links = await pending_links(client, db_session, user.tokens, user.email)
    assert (await client.post(f"/admin/users/{user.id}/deactivate", headers=admin.bearer)).status_code == 200
    assert (await client.post(f"/admin/users/{user.id}/activate", headers=admin.bearer)).status_code == 200
    assert await refusals(client, links) == ["token_used"] * 3
    (row,) = await audit_rows(db_session, user.id, "admin.user_deactivated")
    assert row.details is not None
    assert row.details["pending_links_ended"] == 3


async def test_an_admin_ending_the_sessions_ends_pending_account_tokens(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    links = await pending_links(client, db_session, user.tokens, user.email)
    revoked = await client.post(f"/admin/users/{user.id}/sessions/revoke", headers=admin.bearer)
    assert revoked.status_code == 200, revoked.text
    assert await refusals(client, links) == ["token_used"] * 3


async def test_a_token_created_before_the_last_password_change_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """As if the transaction that issued the links committed after a password change had ended the
    pending ones: the links stay unused, yet predate the change."""
    email, tokens = await signed_up(client)
    links = await pending_links(client, db_session, tokens, email)
    clock.advance(timedelta(seconds=1))
    await db_session.execute(update(User).where(User.email == email).values(password_changed_at=clock.now()))
    await db_session.commit()
    assert await refusals(client, links) == ["token_superseded"] * 3


async def test_links_issued_after_a_password_change_work(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    email, tokens = await signed_up(client)
    await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=tokens.bearer,
    )
    clock.advance(timedelta(minutes=10))
    await client.post("/auth/verify/request", json={"email": email})
    verify = (await last_mail_to(db_session, email, "verify_email")).token
    assert (await client.post("/auth/verify/confirm", json={"token": verify})).status_code == 200


async def test_the_old_address_can_cancel_a_pending_email_change(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    old, tokens = await signed_up(client)
    user_id = uuid.UUID((await client.get("/users/me", headers=tokens.bearer)).json()["id"])
    new = unique_email("moved")
    await ask_for_email_change(client, tokens, new)
    warning = await last_mail_to(db_session, old, "email_change_requested")
    assert "/auth/email/cancel?token=" in warning.link
    change_link = (await last_mail_to(db_session, new, "confirm_email_change")).token

    link = urlsplit(warning.link)
    page = await client.get(f"{link.path}?{link.query}")
    assert page.status_code == 200
    assert 'action="/auth/email/cancel/form"' in page.text
    done = await client.post("/auth/email/cancel/form", data={"token": warning.token})
    assert done.status_code == 200
    assert "change it now" in done.text

    refused = await confirm_change(client, change_link)
    assert refused.status_code == 400
    assert refused.json()["error"] == "token_used"
    assert (await client.get("/users/me", headers=tokens.bearer)).json()["email"] == old
    (row,) = await audit_rows(db_session, user_id, "email.change_cancelled")
    assert row.details == {"pending_changes_cancelled": 1}


async def test_any_warning_link_cancels_every_pending_change(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """A newer request does not retire the cancel link of an older one: the attacker cannot take the
    owner's way out by asking again."""
    old, tokens = await signed_up(client)
    await ask_for_email_change(client, tokens, unique_email("first"))
    first_warning = (await last_mail_to(db_session, old, "email_change_requested")).token
    clock.advance(timedelta(seconds=1))
    second = unique_email("second")
    await ask_for_email_change(client, tokens, second)
    assert len(await mails_to(db_session, old, "email_change_requested")) == 2
    cancelled = await client.post("/auth/email/cancel", json={"token": first_warning})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["pending_changes_cancelled"] == 1  # the first was retired by the second
    change_link = (await last_mail_to(db_session, second, "confirm_email_change")).token
    assert (await confirm_change(client, change_link)).json()["error"] == "token_used"
    again = await client.post("/auth/email/cancel", json={"token": first_warning})
    assert again.json()["error"] == "token_used"


async def test_a_cancel_link_works_after_the_owner_reset_the_password(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """The owner may reset first and cancel after: the cancel link only takes power away, so a password
    change does not end it."""
    old, tokens = await signed_up(client)
    await ask_for_email_change(client, tokens, unique_email("moved"))
    cancel = (await last_mail_to(db_session, old, "email_change_requested")).token
    await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=tokens.bearer,
    )
    cancelled = await client.post("/auth/email/cancel", json={"token": cancel})
    assert cancelled.status_code == 200
    assert cancelled.json()["pending_changes_cancelled"] == 0
