"""Accounts for the admin and audit tests: a signed-up user, and one made admin in the test's
transaction."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.users.models import ADMIN_ROLE, USER_ROLE, User
from tests.auth.helpers import Tokens, signed_up


@dataclass
class Account:
    email: str
    id: uuid.UUID
    tokens: Tokens

    @property
    def bearer(self) -> dict[str, str]:
        return self.tokens.bearer


async def user_account(client: httpx.AsyncClient, email: str | None = None) -> Account:
    """A signed-up, signed-in user; their id is the access token's `sub` (a request less than asking
    /users/me, for each of the ~300 accounts the suite makes)."""
    email, tokens = await signed_up(client, email)
    return Account(email=email, id=uuid.UUID(claims_of(tokens.access)["sub"]), tokens=tokens)


async def make_admin(db_session: AsyncSession, email: str) -> None:
    """Grant the role directly in the test's transaction (the access token still says `user`)."""
    await db_session.execute(update(User).where(User.email == email).values(roles=[USER_ROLE, ADMIN_ROLE]))
    # Only releases a savepoint: kept when a later request fails and rolls its own work back, and still
    # rolled back with the test's transaction.
    await db_session.commit()


async def admin_account(client: httpx.AsyncClient, db_session: AsyncSession) -> Account:
    account = await user_account(client)
    await make_admin(db_session, account.email)
    return account


async def audit_rows(
    db_session: AsyncSession, user_id: uuid.UUID, event: str | None = None
) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.user_id == user_id)
    if event is not None:
        query = query.where(AuditEntry.event == event)
    return list(await db_session.scalars(query.order_by(AuditEntry.id)))


def claims_of(access_token: str) -> dict[str, Any]:
    """The claims, unverified: the token came from the app under test in this very test."""
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims
