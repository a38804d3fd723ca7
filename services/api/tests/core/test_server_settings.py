"""How pyauth is served: uvicorn on uvloop and httptools with one worker per core by default, and the
database connections and hashing threads shared out among the workers, since each has its own."""

import os
import threading

import pytest

from app.__main__ import server_options
from app.core.config import Settings
from app.passwords.argon2id import lower_priority
from tests.conftest import make_settings

CORES = os.cpu_count() or 1


def test_the_server_runs_one_worker_per_core_on_uvloop_and_httptools() -> None:
    options = server_options(make_settings(API_WORKERS=0))
    assert options["workers"] == CORES
    assert (options["loop"], options["http"]) == ("uvloop", "httptools")
    assert options["access_log"] is False


def test_api_workers_sets_the_worker_count() -> None:
    assert server_options(make_settings(API_WORKERS=3))["workers"] == 3


@pytest.mark.parametrize(
    ("workers", "budget", "pool_size"),
    [(1, 40, 10), (2, 40, 10), (4, 40, 10), (8, 40, 5), (16, 40, 2), (64, 40, 1), (2, 10, 5)],
)
def test_the_pools_of_all_workers_stay_within_db_max_connections(
    workers: int, budget: int, pool_size: int
) -> None:
    settings = make_settings(API_WORKERS=workers, DB_MAX_CONNECTIONS=budget)
    per_worker = settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW
    assert per_worker == pool_size


def test_an_explicit_pool_size_is_kept() -> None:
    assert make_settings(API_WORKERS=16, DB_POOL_SIZE=20).DB_POOL_SIZE == 20


def test_all_workers_together_hash_on_one_thread_per_core() -> None:
    assert make_settings(API_WORKERS=1, PASSWORD_HASH_WORKERS=0).password_hash_threads == CORES
    assert make_settings(API_WORKERS=CORES, PASSWORD_HASH_WORKERS=0).password_hash_threads == 1
    assert make_settings(API_WORKERS=CORES, PASSWORD_HASH_WORKERS=3).password_hash_threads == 3


def test_hashing_threads_can_yield_the_cpu_to_the_event_loop() -> None:
    niceness: list[int] = []

    def pool_thread() -> None:
        lower_priority(7)
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=pool_thread)
    thread.start()
    thread.join()
    assert niceness == [7]
    assert Settings.model_fields["PASSWORD_HASH_NICE"].default == 0  # off unless asked for


@pytest.mark.parametrize("cores", [1, 2, 12, 64])
def test_the_test_settings_are_the_same_on_any_number_of_cores(
    cores: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host is simulated (os.cpu_count is all the settings read of it): a 12-core laptop once got a
    # pool of 3 per worker here, and the concurrency tests waited on it.
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    settings = make_settings()
    assert (settings.api_workers, settings.DB_POOL_SIZE, settings.password_hash_threads) == (1, 10, 1)
    assert server_options(settings)["workers"] == 1
