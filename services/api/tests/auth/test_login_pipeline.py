"""The login pipeline: steps over one flow, ending in who authenticated, by which methods (RFC 8176
`amr`) and when (OIDC Core `auth_time`), which access tokens carry across refreshes of the session."""

from datetime import timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.auth.errors import InvalidCredentials
from app.auth.login.flow import LoginFlow, LoginRequest, LoginStep
from app.auth.login.pipeline import PASSWORD_LOGIN, authenticate
from app.core.clock import ManualClock
from app.core.config import Settings
from app.core.context import RequestContext
from tests.auth.helpers import PASSWORD, refresh_grant, register, signed_up, tokens_of, unique_email


def claims_of(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_access_tokens_carry_rfc8176_amr_and_an_auth_time_kept_across_refreshes(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    _, tokens = await signed_up(client)
    login = claims_of(tokens.access)
    assert login["amr"] == ["pwd"]
    assert login["auth_time"] == login["iat"]
    clock.advance(timedelta(minutes=5))
    refreshed = claims_of(tokens_of(await refresh_grant(client, tokens.refresh)).access)
    assert refreshed["amr"] == ["pwd"]
    # OIDC Core §2: the time the user authenticated, not the time the token was issued.
    assert refreshed["auth_time"] == login["auth_time"]
    assert isinstance(refreshed["iat"], int) and refreshed["iat"] >= int(str(login["iat"])) + 300


class OneTimeCode(LoginStep):
    """A made-up second factor, added to the pipeline without touching the password step."""

    def __init__(self, *, accept: bool) -> None:
        self.accept = accept

    async def run(self, flow: LoginFlow) -> None:
        if not self.accept:
            await flow.refuse("second_factor_failed")
        flow.amr.append("otp")


async def _flow(client: httpx.AsyncClient, app: FastAPI, db: AsyncSession, settings: Settings) -> LoginFlow:
    email = unique_email()
    assert (await register(client, email)).status_code == 201
    request = LoginRequest(email=email, password=PASSWORD)
    clock: ManualClock = app.state.clock
    ctx = RequestContext(now=clock.now(), ip_address="192.0.2.1", user_agent="pipeline-test")
    return LoginFlow(db, request, hasher=app.state.hasher, settings=settings, ctx=ctx)


async def test_a_later_login_step_adds_its_method_to_amr(
    client: httpx.AsyncClient, app: FastAPI, db_session: AsyncSession, settings: Settings
) -> None:
    flow = await _flow(client, app, db_session, settings)
    authentication = await authenticate(flow, (*PASSWORD_LOGIN, OneTimeCode(accept=True)))
    assert authentication.amr == ("pwd", "otp")
    assert authentication.auth_time == flow.ctx.now
    assert authentication.user.email == flow.request.email
    assert authentication.device_token  # the throttle step's success effect ran


async def test_a_refusing_later_step_is_a_failed_login_without_success_effects(
    client: httpx.AsyncClient, app: FastAPI, db_session: AsyncSession, settings: Settings
) -> None:
    flow = await _flow(client, app, db_session, settings)
    with pytest.raises(InvalidCredentials):
        await authenticate(flow, (*PASSWORD_LOGIN, OneTimeCode(accept=False)))
    assert flow.amr == ["pwd"]
    assert flow.device_token is None
    assert flow.user is not None
    failed = await db_session.scalar(
        select(AuditEntry).where(AuditEntry.user_id == flow.user.id, AuditEntry.event == "login.failed")
    )
    assert failed is not None and failed.reason == "second_factor_failed"
    assert failed.details == {"consecutive_failures": 1}
