"""TOTP (RFC 6238) as a second factor, on the injected clock: enrolment, the drift window, no replay, the
secret encrypted at rest, wrong codes counted and throttled on their own counter."""

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.core.config import Settings
from app.mfa import secret_box, totp
from tests.auth.helpers import password_grant, signed_up
from tests.mfa.helpers import STEP, audit_of, claims_of, enrolled, mfa_grant, mfa_token_of


async def test_rfc6238_enrolment_answers_a_secret_and_an_otpauth_uri_and_is_inactive_until_confirmed(
    client: httpx.AsyncClient,
) -> None:
    email, tokens = await signed_up(client)
    started = await client.post("/users/me/mfa/totp", headers=tokens.bearer)
    assert started.status_code == 201, started.text
    assert started.headers["cache-control"] == "no-store"
    body = started.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    assert (body["digits"], body["period"], body["algorithm"]) == (6, 30, "SHA1")
    listed = (await client.get("/users/me/mfa", headers=tokens.bearer)).json()
    assert listed["factors"] == [] and listed["methods"] == []
    assert (await password_grant(client, email)).status_code == 200  # not a factor yet


async def test_rfc6238_a_wrong_code_does_not_confirm_the_enrolment(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    email, tokens = await signed_up(client)
    secret = (await client.post("/users/me/mfa/totp", headers=tokens.bearer)).json()["secret"]
    wrong = totp.code_at(secret, clock.now() + 3 * STEP)
    refused = await client.post("/users/me/mfa/totp/confirm", json={"code": wrong}, headers=tokens.bearer)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_otp"
    assert (await password_grant(client, email)).status_code == 200


async def test_rfc6238_the_secret_at_rest_is_encrypted_not_the_plaintext(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession, settings: Settings
) -> None:
    user = await enrolled(client, clock)
    stored = await db_session.scalar(
        text("SELECT secret_encrypted FROM mfa_totp WHERE user_id = :u"), {"u": user.user_id}
    )
    assert isinstance(stored, bytes)
    assert user.secret.encode() not in stored
    assert secret_box.open_sealed(stored, user_id=user.user_id, settings=settings) == user.secret


@pytest.mark.parametrize("drift", [-1, 0, 1])
async def test_rfc6238_a_code_one_step_off_is_accepted(
    client: httpx.AsyncClient, clock: ManualClock, drift: int
) -> None:
    user = await enrolled(client, clock)
    clock.advance(4 * STEP)
    token = await mfa_token_of(client, user.email)
    answer = await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now() + drift * STEP))
    assert answer.status_code == 200, answer.text
    assert claims_of(answer.json()["access_token"])["amr"] == ["pwd", "otp", "mfa"]


@pytest.mark.parametrize("drift", [-2, 2])
async def test_rfc6238_a_code_two_steps_off_is_refused(
    client: httpx.AsyncClient, clock: ManualClock, drift: int
) -> None:
    user = await enrolled(client, clock)
    clock.advance(4 * STEP)
    token = await mfa_token_of(client, user.email)
    answer = await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now() + drift * STEP))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert "access_token" not in answer.json()


async def test_rfc6238_a_code_is_accepted_once_only(client: httpx.AsyncClient, clock: ManualClock) -> None:
    user = await enrolled(client, clock)
    code = totp.code_at(user.secret, clock.now())
    first = await mfa_grant(client, await mfa_token_of(client, user.email), otp=code)
    assert first.status_code == 200, first.text
    replayed = await mfa_grant(client, await mfa_token_of(client, user.email), otp=code)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    # An earlier step of the window is refused too once a later one was used.
    earlier = totp.code_at(user.secret, clock.now() - STEP)
    assert (await mfa_grant(client, await mfa_token_of(client, user.email), otp=earlier)).status_code == 400


async def test_rfc6238_the_confirmation_code_cannot_sign_in(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(client, clock)
    clock.advance(-STEP)  # back in the step whose code confirmed the enrolment
    used = totp.code_at(user.secret, clock.now())
    answer = await mfa_grant(client, await mfa_token_of(client, user.email), otp=used)
    assert answer.status_code == 400


async def test_wrong_codes_are_audited_counted_and_throttled_on_their_own_counter(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession, settings: Settings
) -> None:
    user = await enrolled(client, clock)
    token = await mfa_token_of(client, user.email)
    wrong = totp.code_at(user.secret, clock.now() + 5 * STEP)
    for _ in range(settings.LOGIN_FREE_ATTEMPTS):
        answer = await mfa_grant(client, token, otp=wrong)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    right = totp.code_at(user.secret, clock.now())
    throttled = await mfa_grant(client, token, otp=right)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    failures = await audit_of(db_session, user.user_id, "login.mfa_failed")
    assert [reason for reason, _ in failures] == ["wrong_otp"] * settings.LOGIN_FREE_ATTEMPTS
    assert await audit_of(db_session, user.user_id, "login.mfa_throttled")
    kinds = await db_session.scalars(
        text("SELECT kind FROM login_throttles WHERE email = :e"), {"e": user.email}
    )
    assert list(kinds) == ["mfa"]  # the password's counter is untouched: counted apart
    clock.advance(STEP)
    answer = await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now()))
    assert answer.status_code == 200, answer.text
    assert not list(
        await db_session.scalars(text("SELECT kind FROM login_throttles WHERE email = :e"), {"e": user.email})
    )


async def test_rfc6238_enrolling_again_before_confirming_replaces_the_pending_secret(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    _, tokens = await signed_up(client)
    first = (await client.post("/users/me/mfa/totp", headers=tokens.bearer)).json()["secret"]
    second = (await client.post("/users/me/mfa/totp", headers=tokens.bearer)).json()["secret"]
    assert first != second
    stale = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": totp.code_at(first, clock.now())}, headers=tokens.bearer
    )
    assert stale.status_code == 400
    fresh = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": totp.code_at(second, clock.now())}, headers=tokens.bearer
    )
    assert fresh.status_code == 200, fresh.text
