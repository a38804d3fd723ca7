"""`MetricBatch`: updates of the shared metrics kept in the process and written together."""

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.metrics.batch import FLUSH_AT_UPDATES, MetricBatch, observe_all


def _counter(registry: CollectorRegistry) -> Counter:
    return Counter("pyauth_test_batched", "A counter of this test's own.", registry=registry)


def test_with_no_event_loop_running_an_update_is_written_at_once() -> None:
    registry = CollectorRegistry()
    MetricBatch().count(_counter(registry), 2)
    assert registry.get_sample_value("pyauth_test_batched_total") == 2


async def test_updates_wait_for_the_flush_and_are_all_written_by_it() -> None:
    """The batch's own counts, and what a caller of `also_flush` keeps, written by the same flush."""
    registry = CollectorRegistry()
    counter = _counter(registry)
    kept = Counter("pyauth_test_kept", "Kept by this test.", registry=registry)
    waiting: list[int] = []

    def write_kept() -> None:
        kept.inc(sum(waiting))
        waiting.clear()

    batch = MetricBatch(interval=3600)
    batch.also_flush(write_kept)
    batch.count(counter)
    batch.count(counter, 2)
    waiting.append(4)
    batch.one_more(asyncio.get_running_loop())
    assert registry.get_sample_value("pyauth_test_batched_total") == 0
    assert registry.get_sample_value("pyauth_test_kept_total") == 0
    batch.flush()
    assert registry.get_sample_value("pyauth_test_batched_total") == 3
    assert registry.get_sample_value("pyauth_test_kept_total") == 4


async def test_the_timer_writes_updates_kept_by_a_caller_of_also_flush() -> None:
    registry = CollectorRegistry()
    kept = Counter("pyauth_test_kept", "Kept by this test.", registry=registry)
    batch = MetricBatch(interval=0.01)
    batch.also_flush(lambda: kept.inc(0))
    batch.also_flush(kept.inc)
    batch.one_more(asyncio.get_running_loop())
    assert registry.get_sample_value("pyauth_test_kept_total") == 0
    await asyncio.sleep(0.1)
    assert registry.get_sample_value("pyauth_test_kept_total") == 1


async def test_a_full_batch_is_written_without_waiting_for_the_interval() -> None:
    registry = CollectorRegistry()
    counter = _counter(registry)
    batch = MetricBatch(interval=3600)
    for _ in range(FLUSH_AT_UPDATES - 1):
        batch.count(counter)
    assert registry.get_sample_value("pyauth_test_batched_total") == 0
    batch.count(counter)
    assert registry.get_sample_value("pyauth_test_batched_total") == FLUSH_AT_UPDATES


async def test_an_update_from_a_thread_without_a_loop_is_written_at_once_and_leaves_the_batch_alone() -> None:
    """A worker thread (no event loop of its own) writes its update itself; what the loop's thread keeps
    waiting stays for the loop's flush."""
    registry = CollectorRegistry()
    counter = _counter(registry)
    batch = MetricBatch(interval=3600)
    batch.count(counter)
    await asyncio.to_thread(batch.count, counter, 5)
    assert registry.get_sample_value("pyauth_test_batched_total") == 5
    batch.flush()
    assert registry.get_sample_value("pyauth_test_batched_total") == 6


def test_a_histogram_batch_writes_what_one_observe_per_value_would() -> None:
    """Summed per bucket before they are written: the same buckets, count and sum as `observe` gives,
    values on a bound included (a bucket's bound is inclusive)."""
    values = [0.0, 0.001, 0.005, 0.0051, 0.3, 0.5, 0.5, 2.5, 9.99, 10.0, 11.0, 1e9, 0.2, 0.004]
    direct_registry, batched_registry = CollectorRegistry(), CollectorRegistry()
    buckets = (0.005, 0.5, 1, 10)
    direct, batched = (
        Histogram("pyauth_test_direct_seconds", "Of this test.", registry=registry, buckets=buckets)
        for registry in (direct_registry, batched_registry)
    )
    for value in values:
        direct.observe(value)
    observe_all(batched, values)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (sample.name, sample.labels.get("le", "")): sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if not sample.name.endswith("_created")
        }

    written = samples(batched_registry)
    assert written == samples(direct_registry)
    assert written[("pyauth_test_direct_seconds_count", "")] == len(values)
    assert written[("pyauth_test_direct_seconds_bucket", "0.005")] == 4
