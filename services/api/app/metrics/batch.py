"""Updates of the shared metrics, written in batches.

In multiprocess mode every update of a counter or histogram writes its worker's memory-mapped file
(`exposition`). Made one at a time as requests were answered, a request's updates cost ~20 µs of a
`GET /users/me`'s ~490 µs of CPU in process, and the JWKS went from 15.1 to 11.5 µs with them batched.
A histogram's observations are summed per bucket before they are written (`observe_all`): one write per
bucket they fell in and one for their sum, not two per observation, each of which also asks the kernel
for the process id (prometheus_client checks it on every write: two `getpid` system calls a request).

`UPDATES` keeps counter increments in the process (`count`); an update kept in a shape of its own (each
request's method, route, status and duration: `requests.RequestMetrics`) is counted with `one_more` and
written by a flush of its own that every flush calls (`also_flush`). All are written at most
FLUSH_INTERVAL_SECONDS after the first, at once when FLUSH_AT_UPDATES are waiting, before this process
renders a scrape (`endpoints.metrics`) and when the lifespan ends. Another worker's scrape sees this
worker's updates at most FLUSH_INTERVAL_SECONDS late; none is lost but those of a worker killed outright in
its last interval.
"""

import asyncio
from bisect import bisect_left
from collections.abc import Callable

from prometheus_client.metrics import Counter, Histogram

FLUSH_INTERVAL_SECONDS = 0.1
FLUSH_AT_UPDATES = 1024


class MetricBatch:
    """Updates waiting to be written, kept by the thread that runs the event loop. An update made where
    no loop runs (a CLI, a worker thread) is written at once, so the batch is only ever touched from the
    loop's thread."""

    def __init__(self, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._counts: dict[Counter, float] = {}
        self._waiting = 0
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: list[Callable[[], None]] = []

    def count(self, counter: Counter, amount: float = 1) -> None:
        """`counter.inc(amount)`, written with the batch."""
        loop = running_loop()
        if loop is None:
            counter.inc(amount)
            return
        self._counts[counter] = self._counts.get(counter, 0) + amount
        self._added(loop)

    def also_flush(self, flush: Callable[[], None]) -> None:
        """Call `flush` with every flush of the batch: it writes what its caller keeps waiting."""
        self._flushes.append(flush)

    def one_more(self, loop: asyncio.AbstractEventLoop) -> None:
        """One more update waiting with a caller of `also_flush` (on `loop`'s thread, after it was kept):
        counted towards FLUSH_AT_UPDATES, and written by the timer's flush at the latest."""
        self._added(loop)

    def flush(self) -> None:
        """Write every waiting update (from the loop's thread, or where no loop runs)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        counts, self._counts = self._counts, {}
        self._waiting = 0
        for counter, amount in counts.items():
            counter.inc(amount)
        for flush in self._flushes:
            flush()

    def _added(self, loop: asyncio.AbstractEventLoop) -> None:
        self._waiting += 1
        if self._waiting >= FLUSH_AT_UPDATES:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.interval, self.flush)


def observe_all(histogram: Histogram, values: list[float]) -> None:
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


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread; None where none runs (a CLI, a worker thread), where an
    update is written at once."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# This process's batch: the request metrics and the outcome counters add to it; the scrape and the end of
# the lifespan write it.
UPDATES = MetricBatch()
