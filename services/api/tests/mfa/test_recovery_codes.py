"""Recovery codes: ten, single-use, stored hashed; using one signs in (`amr` `["pwd", "mfa"]`: RFC 8176
has no value for a backup code and it is no RFC 6238 `otp`), is audited and mailed."""

import hashlib

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.mfa import recovery_codes
from tests.account.helpers import mails_to
from tests.mfa.helpers import audit_of, claims_of, enrolled, mfa_grant, mfa_token_of


async def test_ten_recovery_codes_are_stored_only_as_digests(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    assert len(user.recovery_codes) == 10 == len(set(user.recovery_codes))
    stored = set(
        await db_session.scalars(
            text("SELECT code_hash FROM mfa_recovery_codes WHERE user_id = :u"), {"u": user.user_id}
        )
    )
    assert stored == {recovery_codes.digest(code) for code in user.recovery_codes}
    assert not any(code.encode() in digest for code in user.recovery_codes for digest in stored)
    assert (
        recovery_codes.digest(user.recovery_codes[0])
        == hashlib.sha256(recovery_codes.normalize(user.recovery_codes[0]).encode()).digest()
    )


async def test_a_recovery_code_signs_in_once_and_is_audited_and_mailed(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    code = user.recovery_codes[3]
    answer = await mfa_grant(client, await mfa_token_of(client, user.email), recovery_code=code.upper())
    assert answer.status_code == 200, answer.text
    claims = claims_of(answer.json()["access_token"])
    assert claims["amr"] == ["pwd", "mfa"] and claims["acr"] == "urn:pyauth:acr:mfa"
    used = await audit_of(db_session, user.user_id, "mfa.recovery_code_used")
    assert [details for _, details in used] == [{"remaining": 9}]
    mails = await mails_to(db_session, user.email, "recovery_code_used")
    assert len(mails) == 1 and "9" in mails[0].body
    again = await mfa_grant(client, await mfa_token_of(client, user.email), recovery_code=code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    listed = (await client.get("/users/me/mfa", headers=user.tokens.bearer)).json()
    assert listed["recovery_codes_remaining"] == 9


async def test_regenerated_recovery_codes_replace_the_old_ones(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(client, clock)
    regenerated = await client.post("/users/me/mfa/recovery-codes", headers=user.tokens.bearer)
    assert regenerated.status_code == 200, regenerated.text
    assert regenerated.headers["cache-control"] == "no-store"
    fresh = regenerated.json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(user.recovery_codes)
    old = await mfa_grant(
        client, await mfa_token_of(client, user.email), recovery_code=user.recovery_codes[0]
    )
    assert old.status_code == 400
    new = await mfa_grant(client, await mfa_token_of(client, user.email), recovery_code=fresh[0])
    assert new.status_code == 200, new.text
