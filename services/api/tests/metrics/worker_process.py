"""One pyauth worker process for the multiprocess test: `python -m tests.metrics.worker_process`.

Started with PROMETHEUS_MULTIPROC_DIR set, it runs the real app through its lifespan against the test
database, answers `--requests` GET /health/live, holds `--connections` pooled connections, and then either
prints a scrape of /metrics (`--scrape`) or prints `ready` and waits for a line on stdin (`--hold`).
"""

import argparse
import asyncio
import sys
from contextlib import AsyncExitStack

import httpx

from app.main import create_app
from app.metrics.batch import UPDATES
from tests.conftest import make_settings
from tests.metrics.helpers import METRICS_URL


async def serve(requests: int, connections: int, scrape: bool, hold: bool) -> None:
    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
            for _ in range(requests):
                assert (await client.get("/health/live")).status_code == 200
            async with AsyncExitStack() as held:
                for _ in range(connections):
                    await held.enter_async_context(app.state.engine.connect())
                app.state.resource_gauges.publish()  # rather than wait for the next tick
                UPDATES.flush()  # the requests above, rather than within FLUSH_INTERVAL_SECONDS
                if scrape:
                    response = await client.get(METRICS_URL)
                    assert response.status_code == 200
                    sys.stdout.write(response.text)
                if hold:
                    print("ready", flush=True)
                    await asyncio.to_thread(sys.stdin.readline)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--scrape", action="store_true")
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    asyncio.run(serve(args.requests, args.connections, args.scrape, args.hold))


if __name__ == "__main__":
    main()
