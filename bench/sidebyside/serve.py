"""Serve the side-by-side app (`tutorial_app.py`) as pyauth is served (`app.__main__.run` with
`app.__main__.server_options`: the same workers and sockets, event loop and HTTP parser) and with
pyauth's database and pool size per worker, from the API image: `python3 /bench/sidebyside/serve.py`.
The JWT secret comes from SIDEBYSIDE_JWT_SECRET (bench/run.sh makes one per run, and hands it to the
driver, which signs the tokens).

Each worker serves `app`: the tutorial app, plus one task that closes its engine's pooled connections
once none has been checked out for `IDLE_SECONDS` (as the ceilings' pools do): held through the whole
bench, every pool's connections together outgrew the database server's max_connections of 100. The task
samples the pool once a second; a request goes straight on to the tutorial app (one call more, against
the ~0.6 ms of CPU the app spends on it)."""

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from app.__main__ import run, server_options
from app.core.config import get_settings

IDLE_SECONDS = 10
Message = MutableMapping[str, Any]


async def _release_when_idle() -> None:
    import tutorial_app  # noqa: PLC0415 - configured by main()'s environment, in the worker

    idle = 0
    while True:
        await asyncio.sleep(1)
        pool: Any = tutorial_app.engine.pool
        idle = idle + 1 if pool.checkedout() == 0 else 0
        if idle >= IDLE_SECONDS and pool.checkedin():
            await tutorial_app.engine.dispose()


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    import tutorial_app  # noqa: PLC0415

    if scope["type"] != "lifespan":
        await tutorial_app.app(scope, receive, send)
        return
    task = asyncio.create_task(_release_when_idle())
    try:
        await tutorial_app.app(scope, receive, send)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def main() -> None:
    if not os.environ.get("SIDEBYSIDE_JWT_SECRET"):
        raise SystemExit("serve.py: SIDEBYSIDE_JWT_SECRET is not set")
    settings = get_settings()
    # Read by tutorial_app in each worker, which inherits this environment.
    os.environ["SIDEBYSIDE_DATABASE_URL"] = settings.database_url.render_as_string(hide_password=False)
    os.environ["SIDEBYSIDE_POOL_SIZE"] = str(settings.DB_POOL_SIZE)
    os.environ["SIDEBYSIDE_MAX_OVERFLOW"] = str(settings.DB_MAX_OVERFLOW)
    run(uvicorn.Config("serve:app", **server_options(settings)))


if __name__ == "__main__":
    main()
