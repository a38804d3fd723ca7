"""Queries on clients and their secrets. Functions flush or execute; the request (or the CLI) commits."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.models import ClientSecret, OAuthClient
from app.core.database import statement_connection
from app.core.models import attribute_columns, read_only

# Every column of an enabled client, by its attribute's name. (The table and column names come from the
# model; the client id is a parameter.)
_CLIENT_ATTRIBUTES = {attribute: column.name for attribute, column in attribute_columns(OAuthClient)}
_ENABLED_CLIENT = (
    f"SELECT {', '.join(f'{column} AS {key}' for key, column in _CLIENT_ATTRIBUTES.items())}"  # noqa: S608
    f" FROM {OAuthClient.__tablename__} WHERE client_id = $1 AND NOT is_disabled"
)


async def get(db: AsyncSession, client_id: str) -> OAuthClient | None:
    return await db.get(OAuthClient, client_id)


async def enabled(db: AsyncSession, client_id: str) -> OAuthClient | None:
    """The client unless it is disabled, read-only (not in the session), in one statement sent to the
    driver (`statement_connection`): before the request's transaction has begun, on its own, so that a
    token request whose other statements go to the driver too needs no BEGIN and COMMIT."""
    async with statement_connection(db) as connection:
        row = await connection.fetchrow(_ENABLED_CLIENT, client_id)
    return read_only(OAuthClient, dict(row)) if row is not None else None


class EnabledClientRead:
    """`enabled(client_id)` as a read another statement carries (`app.ratelimit.repository.Read`): the
    token endpoint sends it with its rate-limit hit, so authenticating the client makes no round trip of
    its own. Once `taken`, `client` is what it found: the client, read-only, or None."""

    sql = _ENABLED_CLIENT
    columns = tuple(_CLIENT_ATTRIBUTES)  # the names of the read's columns: the client's attributes

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.parameters: tuple[object, ...] = (client_id,)
        self.taken = False
        self.client: OAuthClient | None = None

    def take(self, row: Mapping[str, Any] | None) -> None:
        self.taken = True
        self.client = read_only(OAuthClient, row) if row is not None else None


async def get_for_update(db: AsyncSession, client_id: str) -> OAuthClient | None:
    """The client as committed now, its row locked until the transaction ends: changes to one client
    (a rotation, an update) run one after the other."""
    return await db.get(OAuthClient, client_id, populate_existing=True, with_for_update=True)


async def add(db: AsyncSession, client: OAuthClient) -> None:
    db.add(client)
    await db.flush()


async def page(db: AsyncSession, *, limit: int, offset: int) -> tuple[list[OAuthClient], int]:
    """One page of clients, newest first, and how many there are."""
    total = await db.scalar(select(func.count()).select_from(OAuthClient)) or 0
    clients = await db.scalars(
        select(OAuthClient)
        .order_by(OAuthClient.created_at.desc(), OAuthClient.client_id)
        .limit(limit)
        .offset(offset)
    )
    return list(clients), total


async def delete_client(db: AsyncSession, client: OAuthClient) -> None:
    await db.delete(client)
    await db.flush()


def _live(now: datetime) -> ColumnElement[bool]:
    return or_(ClientSecret.expires_at.is_(None), ClientSecret.expires_at > now)


async def live_secrets(db: AsyncSession, client_ids: list[str], now: datetime) -> list[ClientSecret]:
    """The secrets of these clients that still work, oldest first."""
    if not client_ids:
        return []
    result = await db.scalars(
        select(ClientSecret)
        .where(ClientSecret.client_id.in_(client_ids), _live(now))
        .order_by(ClientSecret.created_at, ClientSecret.id)
    )
    return list(result)


async def live_secret_hashes(db: AsyncSession, client_id: str, now: datetime) -> list[bytes]:
    result = await db.scalars(
        select(ClientSecret.secret_hash).where(ClientSecret.client_id == client_id, _live(now))
    )
    return list(result)


async def add_secret(
    db: AsyncSession, *, client_id: str, secret_hash: bytes, now: datetime, expires_at: datetime | None = None
) -> ClientSecret:
    secret = ClientSecret(client_id=client_id, secret_hash=secret_hash, created_at=now, expires_at=expires_at)
    db.add(secret)
    await db.flush()
    return secret


async def delete_secrets(db: AsyncSession, secret_ids: list[int]) -> None:
    if secret_ids:
        await db.execute(delete(ClientSecret).where(ClientSecret.id.in_(secret_ids)))


async def delete_expired_secrets(db: AsyncSession, client_id: str, now: datetime) -> None:
    await db.execute(
        delete(ClientSecret).where(ClientSecret.client_id == client_id, ClientSecret.expires_at <= now)
    )
