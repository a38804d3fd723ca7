"""Issue 9, item 3: the queue in front of the hashing threads is bounded. When PASSWORD_HASH_QUEUE_MAX jobs
are running or waiting, every endpoint that hashes answers 503 with Retry-After at once, and a refused
login counts no attempt against the account."""

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.passwords.hashing import PasswordHasher
from app.ratelimit.models import LoginThrottle
from tests.account.helpers import last_mail_to
from tests.auth.helpers import PASSWORD, password_grant, signed_up, unique_email
from tests.conftest import make_settings

NEW = "a-brand-new-passphrase-9"
HOLD_SECONDS = 10


@asynccontextmanager
async def one_slot_taken(app: FastAPI) -> AsyncIterator[None]:
    """The app hashes with a pool of one thread and a queue of one job, and that job is running until the
    block ends: a job that waits for the test to let it go, so that it outlasts the requests the test sends
    however slow the machine (a slow hash, time cost 60, cost ~3 CPU-s and could still end too early)."""
    original = app.state.hasher
    busy = PasswordHasher(make_settings(PASSWORD_HASH_WORKERS=1, PASSWORD_HASH_QUEUE_MAX=1))
    await busy.warm_up()  # the start-up job is done
    release = threading.Event()
    # The only slot, taken as a hash takes it. Bounded: were a request queued behind it rather than
    # refused, it would run once the job gave up and answer something else than 503.
    holder = busy._submit(release.wait, timeout=HOLD_SECONDS)
    app.state.hasher = busy
    try:
        assert busy.is_full
        yield
    finally:
        app.state.hasher = original
        release.set()
        await asyncio.wrap_future(holder)
        busy.shutdown()


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "service_unavailable"


async def test_a_full_hashing_queue_answers_503_with_retry_after_on_every_hashing_endpoint(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, tokens = await signed_up(client)
    client.cookies.clear()
    await client.post("/auth/password/forgot", json={"email": email})
    reset = {"token": (await last_mail_to(db_session, email, "reset_password")).token, "new_password": NEW}
    async with one_slot_taken(app):
        assert_busy(await password_grant(client, email))
        assert_busy(await password_grant(client, unique_email("unknown")))
        assert_busy(await client.post("/auth/register", json={"email": unique_email(), "password": PASSWORD}))
        assert_busy(
            await client.post(
                "/users/me/password",
                json={"current_password": PASSWORD, "new_password": NEW},
                headers=tokens.bearer,
            )
        )
        assert_busy(await client.post("/auth/password/reset", json=reset))
    throttle = await db_session.scalar(select(LoginThrottle).where(LoginThrottle.email == email))
    assert throttle is None, "a login refused for a full queue counts no attempt"
    assert (await password_grant(client, email)).status_code == 200
    assert (await client.post("/auth/password/reset", json=reset)).status_code == 204, "the link was kept"
