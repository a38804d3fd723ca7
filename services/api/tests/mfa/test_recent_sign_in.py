"""Issue 12: one "recent sign-in" rule (`app.auth.recent_sign_in`) for every change to how an account
signs in: the time of the last authentication within MFA_REAUTH_SECONDS, inclusive. The API's TOTP and
passkey endpoints apply it to the access token's session (the token's `auth_time`), so they agree to the
microsecond, and a refreshed token keeps the sign-in's time."""

from datetime import UTC, datetime, timedelta

import httpx

from app.auth.errors import ReauthenticationRequired
from app.auth.recent_sign_in import is_recent, require_recent_sign_in
from app.core.clock import ManualClock
from app.core.config import Settings
from tests.auth.helpers import refresh_grant, signed_up, tokens_of


def test_a_sign_in_exactly_mfa_reauth_seconds_old_is_recent_and_a_microsecond_later_is_not(
    settings: Settings,
) -> None:
    signed_in_at = datetime(2026, 12, 2, 12, 0, 0, 500000, tzinfo=UTC)
    limit = signed_in_at + timedelta(seconds=settings.MFA_REAUTH_SECONDS)
    assert is_recent(signed_in_at, settings=settings, now=limit)
    require_recent_sign_in(signed_in_at, settings=settings, now=limit)
    later = limit + timedelta(microseconds=1)
    assert not is_recent(signed_in_at, settings=settings, now=later)
    try:
        require_recent_sign_in(signed_in_at, settings=settings, now=later)
    except ReauthenticationRequired as refused:
        assert refused.status_code == 403 and refused.code == "reauthentication_required"
    else:
        raise AssertionError("a sign-in older than MFA_REAUTH_SECONDS was taken as recent")


async def test_the_totp_and_passkey_endpoints_draw_the_line_at_the_same_moment(
    client: httpx.AsyncClient, clock: ManualClock, settings: Settings
) -> None:
    _, tokens = await signed_up(client)
    clock.advance(timedelta(seconds=settings.MFA_REAUTH_SECONDS))  # exactly as old as allowed
    fresh = tokens_of(await refresh_grant(client, tokens.refresh))  # a new token, the same sign-in
    for bearer in (tokens.bearer, fresh.bearer):
        assert (
            await client.post("/users/me/passkeys/registration/options", headers=bearer)
        ).status_code == 200
        assert (await client.post("/users/me/mfa/totp", headers=bearer)).status_code == 201

    clock.advance(timedelta(microseconds=1))
    for bearer in (tokens.bearer, fresh.bearer):
        for path in ("/users/me/passkeys/registration/options", "/users/me/mfa/totp"):
            refused = await client.post(path, headers=bearer)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["error"] == "reauthentication_required"
