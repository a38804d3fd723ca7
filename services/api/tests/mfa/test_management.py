"""Managing one's factors: enrolling, removing and regenerating need a recent sign-in
(MFA_REAUTH_SECONDS, against the access token's `auth_time`), are mailed, and the list shows no secret."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.core.config import Settings
from app.mfa import totp
from tests.account.helpers import mails_to
from tests.auth.helpers import password_grant, tokens_of
from tests.mfa.helpers import audit_of, claims_of, enrolled, mfa_grant, mfa_token_of

CHANGES = [
    ("POST", "/users/me/mfa/totp", None),
    ("POST", "/users/me/mfa/totp/confirm", {"code": "123456"}),
    ("DELETE", "/users/me/mfa/totp", None),
    ("POST", "/users/me/mfa/recovery-codes", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
async def test_changing_factors_needs_a_sign_in_within_mfa_reauth_seconds(
    client: httpx.AsyncClient,
    clock: ManualClock,
    settings: Settings,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    user = await enrolled(client, clock)
    clock.advance(timedelta(seconds=settings.MFA_REAUTH_SECONDS))  # the sign-in is now too old
    refresh = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": user.tokens.refresh}
    )
    bearer = {"Authorization": f"Bearer {tokens_of(refresh).access}"}  # a live token, an old auth_time
    answer = await client.request(method, path, json=body, headers=bearer)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "reauthentication_required"


async def test_enabling_and_removing_totp_is_audited_and_mailed_and_the_password_alone_signs_in_again(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    assert await audit_of(db_session, user.user_id, "mfa.totp_enabled")
    # A fresh sign-in (with the second factor) to be allowed the removal.
    token = await mfa_token_of(client, user.email)
    fresh = tokens_of(await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now())))
    removed = await client.delete("/users/me/mfa/totp", headers=fresh.bearer)
    assert removed.status_code == 204, removed.text
    assert await audit_of(db_session, user.user_id, "mfa.totp_removed")
    notices = await mails_to(db_session, user.email, "mfa_changed")
    assert len(notices) == 2
    assert "turned on" in notices[0].subject and "turned off" in notices[1].subject
    assert (await password_grant(client, user.email)).status_code == 200
    listed = (await client.get("/users/me/mfa", headers=fresh.bearer)).json()
    assert listed == {"factors": [], "recovery_codes_remaining": 0, "methods": []}
    again = await client.delete("/users/me/mfa/totp", headers=fresh.bearer)
    assert again.status_code == 404 and again.json()["error"] == "mfa_not_enabled"


async def test_the_factor_list_shows_what_is_active_and_no_secret(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(client, clock)
    answer = await client.get("/users/me/mfa", headers=user.tokens.bearer)
    assert answer.status_code == 200
    body = answer.json()
    assert [factor["type"] for factor in body["factors"]] == ["totp"]
    assert body["recovery_codes_remaining"] == 10
    assert body["methods"] == ["otp", "recovery_code"]
    assert user.secret not in answer.text
    assert not any(code in answer.text for code in user.recovery_codes)


async def test_a_second_enrolment_while_one_is_active_is_409(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(client, clock)
    again = await client.post("/users/me/mfa/totp", headers=user.tokens.bearer)
    assert again.status_code == 409 and again.json()["error"] == "totp_already_enabled"
    assert claims_of(user.tokens.access)["amr"] == ["pwd"]
