"""Consent: what a user allowed a third-party client, remembered per user and client (`app_grants`).

First-party clients need none. A grant covers a request when it holds every scope asked for; asking for
more, or `prompt=consent`, shows the consent page again, and allowing it replaces the grant with the union.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.templating import N_
from app.oidc import repository

# The consent page's words for each scope; a scope without words is shown by its name.
SCOPE_WORDS: Final = {
    "openid": N_("Know who you are (your account's identifier)"),
    "email": N_("See your email address"),
    "profile": N_("See your name"),
    "offline_access": N_("Stay connected while you are away"),
}


@dataclass(frozen=True)
class AppGrantRead:
    client_id: str
    client_name: str
    scopes: list[str]
    granted_at: datetime


async def covers(db: AsyncSession, user_id: uuid.UUID, client_id: str, scopes: Sequence[str]) -> bool:
    grant = await repository.grant_of(db, user_id, client_id)
    return grant is not None and set(scopes) <= set(grant.scopes)


async def remember(
    db: AsyncSession, user_id: uuid.UUID, client_id: str, scopes: Sequence[str], *, now: datetime
) -> None:
    grant = await repository.grant_of(db, user_id, client_id)
    merged = list(dict.fromkeys([*(grant.scopes if grant else []), *scopes]))
    await repository.save_grant(db, user_id, client_id, merged, now)


async def grants_of(db: AsyncSession, user_id: uuid.UUID) -> list[AppGrantRead]:
    return [
        AppGrantRead(grant.client_id, name, list(grant.scopes), grant.granted_at)
        for grant, name in await repository.grants_of(db, user_id)
    ]


async def revoke(db: AsyncSession, user_id: uuid.UUID, client_id: str) -> bool:
    return await repository.delete_grant(db, user_id, client_id)
