"""A passkey challenge is answered once across replicas: the same assertion verified at once by two
requests (two API processes, or an attacker racing the user) passes exactly once. Committed for real
(`live_client`): one rolled-back connection cannot show two transactions racing."""

import asyncio

import httpx
from fastapi import FastAPI

from app.core.config import Settings
from app.core.context import RequestContext
from app.passkeys import service
from app.passkeys.errors import PasskeyRefused
from app.users import repository as user_repository
from tests.auth.helpers import live_email, signed_up
from tests.passkeys.authenticator import SoftAuthenticator
from tests.passkeys.test_passkeys import enrol


async def test_two_concurrent_answers_to_one_challenge_pass_once_7_2_step_12(
    live_app: FastAPI, live_client: httpx.AsyncClient
) -> None:
    settings: Settings = live_app.state.settings
    email, tokens = await signed_up(live_client, live_email("passkey"))
    # Counter 0 (a synced passkey): only the challenge can stop the second answer.
    authenticator = SoftAuthenticator(
        origin=settings.webauthn_origins[0], rp_id=settings.webauthn_rp_id, counting=False
    )
    await enrol(live_client, tokens, authenticator)
    ctx = RequestContext(now=live_app.state.clock.now())
    async with live_app.state.sessionmaker() as db:
        user = await user_repository.get_by_email(db, email)
        assert user is not None
        options = await service.authentication_options(db, user, settings=settings, ctx=ctx)
        await db.commit()
    assertion = authenticator.get(options)

    async def answer() -> str:
        async with live_app.state.sessionmaker() as db:
            owner = await user_repository.get_by_email(db, email)
            try:
                await service.verify_assertion(db, assertion, user=owner, settings=settings, ctx=ctx)
            except PasskeyRefused as refusal:
                await db.rollback()
                return refusal.reason
            await db.commit()
            return "verified"

    outcomes = await asyncio.gather(*(answer() for _ in range(4)))
    assert sorted(outcomes) == ["challenge", "challenge", "challenge", "verified"]
