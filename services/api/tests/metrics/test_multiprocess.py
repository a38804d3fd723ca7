"""Several worker processes, one PROMETHEUS_MULTIPROC_DIR: a scrape answered by any of them shows all.

Each worker here is a real process running the real app (`worker_process`), as uvicorn's workers do.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics import exposition
from tests.metrics.helpers import requests_total, sample

API_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


def worker(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "tests.metrics.worker_process", *args],
        cwd=API_ROOT,
        env={**os.environ, exposition.MULTIPROCESS_DIR_VARIABLE: str(directory)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def metrics_dir(tmp_path: Path, engine: AsyncEngine) -> Path:
    """An empty directory, as at a server's start; `engine` has migrated the test database."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    return directory


async def test_a_scrape_sums_every_worker_and_forgets_exited_workers_gauges(metrics_dir: Path) -> None:
    holding = worker(metrics_dir, "--requests", "3", "--connections", "1", "--hold")
    try:
        assert holding.stdout is not None
        assert holding.stdout.readline().strip() == "ready"

        scraping = worker(metrics_dir, "--requests", "5", "--connections", "2", "--scrape")
        scraped, _ = scraping.communicate(timeout=TIMEOUT)
        assert scraping.returncode == 0

        # One scrape, answered by the second process, shows both processes' requests and connections.
        assert requests_total(scraped, "GET", "/health/live", 200) == 3 + 5
        assert sample(scraped, "pyauth_db_pool_checked_out_connections") == 1 + 2
    finally:
        holding.kill()  # as a crashed worker ends: no lifespan shutdown, its files stay
        holding.wait(timeout=TIMEOUT)

    merged = exposition.render(str(metrics_dir)).decode()
    # Counters outlive their processes; the scrape itself was counted once it had answered.
    assert requests_total(merged, "GET", "/health/live", 200) == 8
    assert requests_total(merged, "GET", "/metrics", 200) == 1
    # The scraping worker left the sum at its shutdown; the killed one stays until it is found dead.
    assert sample(merged, "pyauth_db_pool_checked_out_connections") == 1

    assert exposition.forget_dead_processes(str(metrics_dir)) == [holding.pid]
    after = exposition.render(str(metrics_dir)).decode()
    assert sample(after, "pyauth_db_pool_checked_out_connections") is None
    assert requests_total(after, "GET", "/health/live", 200) == 8
