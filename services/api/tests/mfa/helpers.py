"""Client-side steps the MFA tests share: enrol TOTP, answer mfa_required, complete with the mfa grant."""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jwt
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.mfa import totp
from tests.auth.helpers import PASSWORD, Tokens, password_grant, signed_up

MFA_GRANT = "urn:pyauth:params:oauth:grant-type:mfa"
STEP = timedelta(seconds=30)


@dataclass
class Enrolled:
    email: str
    tokens: Tokens  # of the sign-in that enrolled
    secret: str
    recovery_codes: list[str]

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(claims_of(self.tokens.access)["sub"])


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def enrolled(client: httpx.AsyncClient, clock: ManualClock, email: str | None = None) -> Enrolled:
    """A signed-in user with a confirmed TOTP authenticator; the clock is moved past the step its
    confirmation code spent, so the next login needs a fresh code."""
    email, tokens = await signed_up(client, email)
    started = await client.post("/users/me/mfa/totp", headers=tokens.bearer)
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": totp.code_at(secret, clock.now())}, headers=tokens.bearer
    )
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(STEP)
    return Enrolled(email, tokens, secret, confirmed.json()["recovery_codes"])


async def mfa_token_of(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    answer = await password_grant(client, email, password)
    assert answer.status_code == 403, answer.text
    token: str = answer.json()["mfa_token"]
    return token


async def mfa_grant(client: httpx.AsyncClient, mfa_token: str, **fields: str) -> httpx.Response:
    return await client.post("/auth/token", data={"grant_type": MFA_GRANT, "mfa_token": mfa_token, **fields})


async def audit_of(db: AsyncSession, user_id: uuid.UUID, event: str) -> list[tuple[str | None, Any]]:
    rows = await db.execute(
        text("SELECT reason, details FROM audit_events WHERE user_id = :u AND event = :e ORDER BY id"),
        {"u": user_id, "e": event},
    )
    return [(reason, details) for reason, details in rows.all()]
