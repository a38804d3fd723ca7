"""Issue 12: MFA_REQUIRED_FOR_ADMINS (admin routes need a token whose `amr` has `mfa`) and an admin's
reset of a user's factors."""

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.mfa import totp
from tests.account.helpers import mails_to
from tests.admin.helpers import admin_account, audit_rows, make_admin, user_account
from tests.auth.helpers import password_grant, signed_up
from tests.conftest import make_settings
from tests.mfa.helpers import STEP, claims_of, enrolled, mfa_grant, mfa_token_of
from tests.passkeys.test_passkeys import authenticator_for, enrol


def require_mfa_for_admins(app: FastAPI, on: bool = True) -> None:
    app.state.settings = app.state.settings.model_copy(update={"MFA_REQUIRED_FOR_ADMINS": on})


async def test_admin_routes_refuse_an_access_token_without_mfa_in_amr_when_mfa_required_for_admins(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    require_mfa_for_admins(app)
    email, tokens = await signed_up(client)
    await make_admin(db_session, email)
    assert "mfa" not in claims_of(tokens.access)["amr"]
    for path in ("/admin/users", "/admin/clients", "/admin/audit"):
        refused = await client.get(path, headers=tokens.bearer)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"] == "mfa_required_for_admins"

    # The admin can still enrol a factor (their own routes are not admin routes), then sign in with it.
    started = await client.post("/users/me/mfa/totp", headers=tokens.bearer)
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": totp.code_at(secret, clock.now())}, headers=tokens.bearer
    )
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(STEP)
    completed = await mfa_grant(
        client, await mfa_token_of(client, email), otp=totp.code_at(secret, clock.now())
    )
    assert completed.status_code == 200, completed.text
    with_mfa = {"Authorization": f"Bearer {completed.json()['access_token']}"}
    assert (await client.get("/admin/users", headers=with_mfa)).status_code == 200


async def test_without_mfa_required_for_admins_a_password_only_admin_token_is_accepted(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    require_mfa_for_admins(app, on=False)
    email, tokens = await signed_up(client)
    await make_admin(db_session, email)
    assert (await client.get("/admin/users", headers=tokens.bearer)).status_code == 200


def test_mfa_required_for_admins_defaults_on_in_production_only() -> None:
    settings = make_settings()
    assert settings.MFA_REQUIRED_FOR_ADMINS is None and not settings.mfa_required_for_admins
    production = settings.model_copy(update={"ENVIRONMENT": "production"})
    assert production.mfa_required_for_admins
    assert not production.model_copy(update={"MFA_REQUIRED_FOR_ADMINS": False}).mfa_required_for_admins


async def test_an_admin_reset_removes_totp_recovery_codes_and_passkeys_audited_and_mailed(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    await enrol(client, user.tokens, authenticator_for(client))
    assert (await password_grant(client, user.email)).status_code == 403  # mfa_required
    admin = await admin_account(client, db_session)

    reset = await client.delete(f"/admin/users/{user.user_id}/mfa", headers=admin.bearer)
    assert reset.status_code == 204, reset.text

    factors = await client.get("/users/me/mfa", headers=user.tokens.bearer)
    assert factors.json() == {"factors": [], "recovery_codes_remaining": 0, "methods": []}
    assert (await client.get("/users/me/passkeys", headers=user.tokens.bearer)).json() == []
    signed_in = await password_grant(client, user.email)
    assert signed_in.status_code == 200, signed_in.text  # the password alone signs in again
    (row,) = await audit_rows(db_session, user.user_id, "admin.mfa_reset")
    assert row.actor_id == admin.id
    assert row.details == {"totp": True, "recovery_codes": 10, "passkeys": 1}
    mails = await mails_to(db_session, user.email, "mfa_changed")  # the enrolment's, then the reset's
    assert [m for m in mails if "An administrator reset two-step sign-in" in m.subject]
    assert [m for m in mails if "passkeys" in m.body]


async def test_resetting_factors_is_an_admin_route(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    other = await user_account(client)
    refused = await client.delete(f"/admin/users/{user.user_id}/mfa", headers=other.bearer)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "admin_required"
    admin = await admin_account(client, db_session)
    missing = await client.delete(f"/admin/users/{uuid.uuid4()}/mfa", headers=admin.bearer)
    assert missing.status_code == 404, missing.text
    factors = await client.get("/users/me/mfa", headers=user.tokens.bearer)
    assert factors.json()["methods"] == ["otp", "recovery_code"]
