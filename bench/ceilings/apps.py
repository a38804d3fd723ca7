"""The ceiling apps of `make bench`: the least an ASGI app can do for one answer, served with pyauth's
own server options (`serve.py`), so that pyauth's scenarios can be read as fractions of them.

- `constant_json`: a constant JSON body, no framework: what uvicorn, uvloop and httptools allow.
- `primary_key_select`: `GET /users/<id>` runs one primary-key SELECT of a user on a raw asyncpg pool
  (no ORM, no transaction, one round trip) and answers its row as JSON: the ceiling of `me` and
  `refresh`. Each worker's pool has as many connections as one API worker's engine may open.
"""

import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg
import orjson

from app.core.config import get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONSTANT_BODY = orjson.dumps({"status": "ok", "service": "pyauth-bench", "ceiling": "constant-json"})
USER_BY_ID = (
    "SELECT id, email, display_name, is_active, is_verified, roles, created_at, updated_at "
    "FROM users WHERE id = $1"
)
NOT_FOUND = orjson.dumps({"error": "not_found", "detail": "No such user."})


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if shutdown is not None:
                await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def constant_json(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _answer(send, 200, CONSTANT_BODY)


class _Pool:
    """The asyncpg pool of one worker, made at startup."""

    pool: asyncpg.Pool | None = None


async def _no_reset(_: asyncpg.Connection) -> None:
    # asyncpg's default reset runs `RESET ALL; UNLISTEN *; ...` on every release: a second round trip
    # that SQLAlchemy's pool does not make. The ceiling is one round trip per request.
    return None


def database_pool_settings() -> tuple[str, int]:
    """The API's database, as asyncpg takes it, and its pool size: what a ceiling's own pool uses."""
    settings = get_settings()
    dsn = settings.database_url.set(drivername="postgresql").render_as_string(hide_password=False)
    return dsn, settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW


async def _open_pool() -> None:
    dsn, size = database_pool_settings()
    # Connections open with the warm-up and close after 10 s idle, as the rotation ceiling's: held through
    # the whole bench, every pool's connections together (the two APIs', the ceilings', the side-by-side
    # app's) outgrew the server's max_connections of 100.
    _Pool.pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=size,
        max_inactive_connection_lifetime=10,
        reset=_no_reset,
        server_settings={"application_name": "pyauth-bench-ceiling"},
    )


async def _close_pool() -> None:
    if _Pool.pool is not None:
        await _Pool.pool.close()


async def primary_key_select(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, _open_pool, _close_pool)
        return
    if scope["type"] != "http":
        return
    try:
        user_id = uuid.UUID(scope["path"].removeprefix("/users/"))
    except ValueError:
        await _answer(send, 404, NOT_FOUND)
        return
    assert _Pool.pool is not None
    row = await _Pool.pool.fetchrow(USER_BY_ID, user_id)
    if row is None:
        await _answer(send, 404, NOT_FOUND)
    else:
        await _answer(send, 200, orjson.dumps(dict(row), default=str))  # asyncpg's own UUID type
