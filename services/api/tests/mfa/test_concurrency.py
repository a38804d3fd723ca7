"""RFC 6238 §5.2, across replicas: the same code sent twice at the same moment (two requests, two
connections, committed for real) is accepted exactly once."""

import asyncio

import httpx

from app.core.clock import ManualClock
from app.mfa import totp
from tests.auth.helpers import live_email
from tests.mfa.helpers import enrolled, mfa_grant, mfa_token_of


async def test_rfc6238_the_same_code_sent_twice_at_once_is_accepted_once(
    live_client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(live_client, clock, live_email("mfa-race"))
    tokens = [await mfa_token_of(live_client, user.email) for _ in range(2)]
    code = totp.code_at(user.secret, clock.now())
    answers = await asyncio.gather(*(mfa_grant(live_client, token, otp=code) for token in tokens))
    assert sorted(answer.status_code for answer in answers) == [200, 400], [a.text for a in answers]


async def test_one_mfa_token_sent_twice_at_once_completes_one_login(
    live_client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(live_client, clock, live_email("mfa-race"))
    token = await mfa_token_of(live_client, user.email)
    answers = await asyncio.gather(
        mfa_grant(live_client, token, recovery_code=user.recovery_codes[0]),
        mfa_grant(live_client, token, recovery_code=user.recovery_codes[1]),
    )
    assert sorted(answer.status_code for answer in answers) == [200, 400], [a.text for a in answers]
