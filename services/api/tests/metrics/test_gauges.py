"""The resource gauges, read from the real hash pool and database pool when the scrape comes."""

import asyncio
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI

from tests.metrics.helpers import sample, scrape


async def test_checked_out_connections_are_read_at_scrape_time(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # The app's own pool (requests in these tests use the test's connection instead).
    async with AsyncExitStack() as held:
        for _ in range(2):
            await held.enter_async_context(app.state.engine.connect())
        assert sample(await scrape(client), "pyauth_db_pool_checked_out_connections") == 2
    assert sample(await scrape(client), "pyauth_db_pool_checked_out_connections") == 0


@pytest.mark.real_password_cost  # its subject is what hashing at the real cost takes
async def test_the_hash_queue_depth_counts_hashes_not_yet_finished(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    hasher = app.state.hasher
    await scrape(client)  # the first request builds the middleware stack: not while the hashes run
    jobs = [
        asyncio.create_task(hasher.hash("a long enough passphrase")) for _ in range(3 * hasher.max_workers)
    ]
    await asyncio.sleep(0)  # each job is submitted to the pool when its task first runs
    submitted = hasher.queue_depth

    depth = sample(await scrape(client), "pyauth_password_hash_queue_depth")

    assert depth is not None
    assert 1 <= depth <= submitted
    await asyncio.gather(*jobs)
    assert sample(await scrape(client), "pyauth_password_hash_queue_depth") == 0
