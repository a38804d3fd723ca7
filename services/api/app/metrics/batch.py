"""Updates of the shared metrics, written in batches.

In multiprocess mode every update of a counter or histogram writes its worker's memory-mapped file
(`exposition`). Made one at a time as requests were answered, a request's updates cost ~20 µs of a
`GET /users/me`'s ~490 µs of CPU in process, and the JWKS went from 15.1 to 11.5 µs with them batched.
A histogram's observations are summed per bucket before they are written (`_observe_all`): one write per
bucket they fell in and one for their sum, not two per observation, each of which also asks the kernel
for the process id (prometheus_client checks it on every write: two `getpid` system calls a request).
`UPDATES` keeps them in the process and writes them at most FLUSH_INTERVAL_SECONDS after the first, at
once when FLUSH_AT_UPDATES are waiting, before this process renders a scrape (`endpoints.metrics`) and when
the lifespan ends. Another worker's scrape sees this worker's updates at most FLUSH_INTERVAL_SECONDS late;
none is lost but those of a worker killed outright in its last interval.
"""

import asyncio
from bisect import bisect_left

from prometheus_client.metrics import Counter, Histogram

FLUSH_INTERVAL_SECONDS = 0.1
FLUSH_AT_UPDATES = 1024


class MetricBatch:
    """Counter increments and histogram observations waiting to be written, kept by the thread that runs
    the event loop. An update made where no loop runs (a CLI, a worker thread) is written at once, so the
    batch is only ever touched from the loop's thread."""

    def __init__(self, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._counts: dict[Counter, float] = {}
        self._observations: dict[Histogram, list[float]] = {}
        self._waiting = 0
        self._timer: asyncio.TimerHandle | None = None

    def count(self, counter: Counter, amount: float = 1) -> None:
        """`counter.inc(amount)`, written with the batch."""
        loop = _running_loop()
        if loop is None:
            counter.inc(amount)
            return
        self._counts[counter] = self._counts.get(counter, 0) + amount
        self._added(loop)

    def observe(self, histogram: Histogram, value: float) -> None:
        """`histogram.observe(value)`, written with the batch."""
        loop = _running_loop()
        if loop is None:
            histogram.observe(value)
            return
        waiting = self._observations.get(histogram)
        if waiting is None:
            self._observations[histogram] = [value]
        else:
            waiting.append(value)
        self._added(loop)

    def flush(self) -> None:
        """Write every waiting update (from the loop's thread, or where no loop runs)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        counts, self._counts = self._counts, {}
        observations, self._observations = self._observations, {}
        self._waiting = 0
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, values in observations.items():
            _observe_all(histogram, values)

    def _added(self, loop: asyncio.AbstractEventLoop) -> None:
        self._waiting += 1
        if self._waiting >= FLUSH_AT_UPDATES:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.interval, self.flush)


def _observe_all(histogram: Histogram, values: list[float]) -> None:
    """`histogram.observe(value)` for each of `values`, written as a count per bucket and one sum. Reads
    the histogram's buckets as `observe` does (its `_upper_bounds`, `_buckets` and `_sum`:
    prometheus_client's own attributes, pinned by uv.lock; tests/metrics/test_batch.py compares the two)."""
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for value in values:
        index = bisect_left(bounds, value)  # the first bound >= value, as `observe` looks for it
        if index < len(bounds):
            counts[index] += 1
    histogram._sum.inc(sum(values))
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# This process's batch: the request metrics and the outcome counters add to it; the scrape and the end of
# the lifespan write it.
UPDATES = MetricBatch()
