"""An open-loop HTTP/1.1 load generator for `make bench`'s tail latencies, with coordinated omission
corrected. Standard library, plus uvloop when it is installed (the bench image: Debian's python3-uvloop).

A closed-loop generator (wrk) sends a connection's next request only once its last answer came: when the
server stalls, the generator stops asking, and the requests it would have sent during the stall are never
timed (coordinated omission); and at saturation its percentiles measure the queue it keeps full itself.
Here the requests follow a schedule fixed in advance (`schedule`: a constant rate, evenly spaced, as
wrk2 does), each on a keep-alive connection of a pool that opens more connections when none is free (up
to `max_connections`), and each request's latency runs from its **intended** send time to its answer: a
request that had to wait for a connection, for a refresh chain, or for the generator itself, counts the
wait. A request unanswered `timeout` seconds after its intended time is a timeout, counted in the
distribution at the timeout (its connection is closed). The generator's own lag (actual send time minus
intended) and CPU time are measured too, so a generator that cannot keep its schedule shows.

`Source`s make the requests: `Fixed` (a cycle of requests), `Numbered` (a request from its number:
client addresses, fresh emails) and `Chains` (refresh: a chain's latest token per request, the answer's
new token put back; a chain is never in two requests at once).

`sequential` sends requests one after another on one connection: the unloaded latency.
"""

import asyncio
import itertools
import json
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

# Percentiles reported, nearest rank.
PERCENTILES = (50, 90, 99, 99.9)
# How often timeouts are looked for: a timed-out request is recorded at exactly the timeout anyway.
TIMEOUT_CHECK_SECONDS = 0.05
HEADER_END = b"\r\n\r\n"
# The send loop's shortest sleep (see _open_loop).
MIN_SLEEP_SECONDS = 0.001
# Every time here (intended, sent, answered) is read from this clock, in seconds: fine-grained, unlike the
# event loop's own (uvloop's counts milliseconds).
clock = time.perf_counter


def schedule(rate: float, seconds: float) -> list[float]:
    """The intended send times, in seconds from the start, of a constant `rate` for `seconds`: evenly
    spaced, the first at 0."""
    if rate <= 0 or seconds <= 0:
        return []
    count = math.floor(rate * seconds + 1e-9)
    return [i / rate for i in range(count)]


def percentiles(values_us: Iterable[int], points: Iterable[float] = PERCENTILES) -> dict[str, float]:
    """Nearest-rank percentiles of latencies in microseconds, in ms (`p50`, `p99.9`, …), with `max` and
    `mean`; empty without values."""
    ordered = sorted(values_us)
    if not ordered:
        return {}
    # The rank rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point, whose ceiling is 1000.
    result = {
        f"p{p:g}": round(ordered[max(1, math.ceil(round(p * len(ordered) / 100, 6))) - 1] / 1000, 2)
        for p in points
    }
    result["max"] = round(ordered[-1] / 1000, 2)
    result["mean"] = round(sum(ordered) / len(ordered) / 1000, 2)
    return result


def http_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One HTTP/1.1 keep-alive request, as bytes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- sources of requests ----------------------------------------------------------------------------------


class Source:
    """Makes each request (None: none can be made now; `answered` may make one possible again)."""

    expected_status = 200

    def next(self) -> bytes | None:
        raise NotImplementedError

    def answered(self, request: bytes, status: int, body: bytes) -> None:
        """The answer to `request` (status 0: none, the request failed or timed out)."""


class Fixed(Source):
    """The same requests in turn (e.g. GET /users/me with each session's token)."""

    def __init__(self, requests: list[bytes], expected_status: int = 200) -> None:
        self._requests = itertools.cycle(requests)
        self.expected_status = expected_status

    def next(self) -> bytes:
        return next(self._requests)


class Numbered(Source):
    """A request made from its number (0, 1, …): per-request client addresses, fresh emails."""

    def __init__(self, make: Callable[[int], bytes], expected_status: int = 200) -> None:
        self._make = make
        self._numbers = itertools.count()
        self.expected_status = expected_status

    def next(self) -> bytes:
        return self._make(next(self._numbers))


class Chains(Source):
    """Token chains (refresh): each request spends a chain's latest token; a 200 answer's `refresh_token`
    is the chain's next one. A chain whose request failed is gone."""

    def __init__(self, tokens: Iterable[str], make: Callable[[str, int], bytes]) -> None:
        self._free = deque(tokens)
        self._make = make
        self._numbers = itertools.count()

    @property
    def free(self) -> int:
        return len(self._free)

    def next(self) -> bytes | None:
        if not self._free:
            return None
        return self._make(self._free.popleft(), next(self._numbers))

    def answered(self, request: bytes, status: int, body: bytes) -> None:
        if status != 200:
            return
        try:
            token = json.loads(body)["refresh_token"]
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(token, str):
            self._free.append(token)


# --- results ------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a run counted. Latencies in microseconds from each request's intended send time."""

    expected_status: int
    latencies_us: list[int] = field(default_factory=list)
    send_lag_us: list[int] = field(default_factory=list)
    good: int = 0
    unexpected: int = 0
    socket_errors: int = 0
    timeouts: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    sample_error: str | None = None

    def answer(self, latency_us: int, status: int, body: bytes) -> None:
        self.latencies_us.append(latency_us)
        if status == self.expected_status:
            self.good += 1
            return
        self.unexpected += 1
        self._kind(f"status {status}", f"{status} {body[:200].decode(errors='replace')}")

    def timed_out(self, timeout_us: int) -> None:
        self.latencies_us.append(timeout_us)
        self.timeouts += 1
        self._kind("timeout", None)

    def failed(self, kind: str) -> None:
        self.socket_errors += 1
        self._kind(kind, kind)

    def _kind(self, kind: str, sample: str | None) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if self.sample_error is None and sample is not None:
            self.sample_error = sample


@dataclass
class OpenLoopRun:
    """One run: offered (scheduled) requests, what came of them, the latency from the intended send time
    (timeouts at the timeout), the generator's own lag and CPU time."""

    offered_rate: float
    seconds: float
    scheduled: int
    good: int
    errors: int
    timeouts: int
    errors_by_kind: dict[str, int]
    sample_error: str | None
    latency_ms: dict[str, float]
    send_lag_ms: dict[str, float]
    connections_opened: int
    generator_cpu_seconds: float
    elapsed_seconds: float

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.timeouts == 0

    @property
    def answered_rate(self) -> float:
        """Answers with the expected status per second of the schedule."""
        return self.good / self.seconds if self.seconds else 0.0

    @property
    def generator_us_per_request(self) -> float:
        return 1e6 * self.generator_cpu_seconds / self.scheduled if self.scheduled else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "offered_rate": round(self.offered_rate, 1),
            "seconds": self.seconds,
            "scheduled": self.scheduled,
            "good_requests": self.good,
            "answered_rate": round(self.answered_rate, 1),
            "errors": self.errors,
            "timeouts": self.timeouts,
            "errors_by_kind": self.errors_by_kind,
            "sample_error": self.sample_error,
            "latency_ms": self.latency_ms,
            "send_lag_ms": self.send_lag_ms,
            "connections_opened": self.connections_opened,
            "generator_cpu_seconds": round(self.generator_cpu_seconds, 3),
            "generator_us_per_request": round(self.generator_us_per_request, 1),
            "elapsed_seconds": round(self.elapsed_seconds, 2),
        }


# --- the connections and the run -----------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time, each answer read by its Content-Length."""

    def __init__(self, runner: "_Runner") -> None:
        self._runner = runner
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._body_start = -1  # where the answer's body starts, once its header is in
        self._end = 0
        self._status = 0
        # The request in flight and its intended send time (loop clock); None when idle.
        self.request: bytes | None = None
        self.intended = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, request: bytes, intended: float) -> None:
        assert self.transport is not None
        self.request, self.intended = request, intended
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self.request is not None:
            if self._body_start < 0:
                end = self._buffer.find(HEADER_END)
                if end < 0:
                    return
                self._status, length = _status_and_length(bytes(self._buffer[:end]))
                if length < 0:  # no Content-Length (chunked, …): not an answer this generator reads
                    self._runner.lost(self, "unreadable answer")
                    self.close()
                    return
                self._body_start = end + len(HEADER_END)
                self._end = self._body_start + length
            if len(self._buffer) < self._end:
                return
            body = bytes(self._buffer[self._body_start : self._end])
            del self._buffer[: self._end]
            self._body_start = -1
            request, intended, self.request = self.request, self.intended, None
            self._runner.answered(self, request, intended, self._status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._runner.lost(self, "connection lost")

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _status_and_length(head: bytes) -> tuple[int, int]:
    """An answer header's status and Content-Length (-1: none)."""
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, -1
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            try:
                return status, int(line[15:])
            except ValueError:
                return status, -1
    return status, -1


class _Runner:
    """The pool, the queues and the tally of one run."""

    def __init__(self, host: str, port: int, source: Source, timeout: float, max_connections: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.source = source
        self.timeout = timeout
        self.max_connections = max_connections
        self.tally = Tally(source.expected_status)
        # Oldest first: each connection is used in turn, so none idles into the server's keep-alive timeout.
        self.idle: deque[_Connection] = deque()
        self.busy: set[_Connection] = set()
        self.opening = 0
        self.opened = 0
        # Requests made and waiting for a connection, and intended times waiting for the source (a chain).
        self.waiting: deque[tuple[float, bytes]] = deque()
        self.waiting_for_source: deque[float] = deque()
        self.outstanding = 0
        self.settled = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # the schedule's side

    def fire(self, intended: float) -> None:
        self.outstanding += 1
        self.settled.clear()
        request = None if self.waiting_for_source else self.source.next()
        if request is None:
            self.waiting_for_source.append(intended)
        else:
            self._dispatch(intended, request)

    def _dispatch(self, intended: float, request: bytes) -> None:
        if self.idle:
            self._start(self.idle.popleft(), intended, request)
            return
        self.waiting.append((intended, request))
        if self.opening + len(self.busy) < self.max_connections and self.opening < len(self.waiting):
            self._spawn(self._open())

    def _start(self, connection: _Connection, intended: float, request: bytes) -> None:
        self.busy.add(connection)
        self.tally.send_lag_us.append(int((clock() - intended) * 1e6))
        connection.send(request, intended)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self) -> None:
        self.opening += 1
        try:
            _, connection = await self.loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError as error:
            self.opening -= 1
            if self.waiting:  # the request it was opened for fails
                _, request = self.waiting.popleft()
                kind = f"connect: {error.strerror or error}"
                self._settle(request, 0, b"", lambda: self.tally.failed(kind))
            return
        self.opening -= 1
        self.opened += 1
        self._release(connection)

    async def open_idle(self, count: int) -> None:
        """Open `count` connections before the schedule starts (while the server accepts them: a request
        that finds none opens one, and counts an error when that fails)."""
        for _ in range(count):
            try:
                _, connection = await self.loop.create_connection(
                    lambda: _Connection(self), self.host, self.port
                )
            except OSError:
                return
            self.opened += 1
            self.idle.append(connection)

    def _release(self, connection: _Connection) -> None:
        if connection.closed:
            return
        if self.waiting:
            intended, request = self.waiting.popleft()
            self._start(connection, intended, request)
        else:
            self.idle.append(connection)

    # the connections' side

    def answered(
        self, connection: _Connection, request: bytes, intended: float, status: int, body: bytes
    ) -> None:
        latency_us = int((clock() - intended) * 1e6)
        self.busy.discard(connection)
        self._settle(request, status, body, lambda: self.tally.answer(latency_us, status, body))
        self._release(connection)

    def lost(self, connection: _Connection, kind: str) -> None:
        if connection in self.idle:
            self.idle.remove(connection)
        self.busy.discard(connection)
        request, connection.request = connection.request, None
        if request is not None:
            self._settle(request, 0, b"", lambda: self.tally.failed(kind))
        if self.waiting and self.opening < len(self.waiting):
            self._spawn(self._open())

    def _settle(self, request: bytes, status: int, body: bytes, count: Callable[[], None]) -> None:
        count()
        self.source.answered(request, status, body)
        self.outstanding -= 1
        while self.waiting_for_source:
            made = self.source.next()
            if made is None:
                break
            self._dispatch(self.waiting_for_source.popleft(), made)
        if not self.outstanding:
            self.settled.set()

    def expire(self) -> None:
        """Requests unanswered `timeout` after their intended time: timeouts, at the timeout."""
        limit = clock() - self.timeout
        timeout_us = int(self.timeout * 1e6)
        for connection in [c for c in self.busy if c.intended <= limit]:
            self.busy.discard(connection)
            request, connection.request = connection.request, None
            connection.close()
            if request is not None:
                self._settle(request, 0, b"", lambda: self.tally.timed_out(timeout_us))
        while self.waiting and self.waiting[0][0] <= limit:
            _, request = self.waiting.popleft()
            self._settle(request, 0, b"", lambda: self.tally.timed_out(timeout_us))
        while self.waiting_for_source and self.waiting_for_source[0] <= limit:
            self.waiting_for_source.popleft()
            self.tally.timed_out(timeout_us)
            self.outstanding -= 1
            if not self.outstanding:
                self.settled.set()
        if self.waiting and self.opening < len(self.waiting):
            self._spawn(self._open())

    async def watch_timeouts(self) -> None:
        while True:
            await asyncio.sleep(TIMEOUT_CHECK_SECONDS)
            self.expire()

    async def drain(self) -> None:
        while self.outstanding:
            self.settled.clear()
            await self.settled.wait()

    def close(self) -> None:
        for connection in [*self.idle, *self.busy]:
            connection.close()

    def result(self, rate: float, seconds: float, scheduled: int, cpu: float, elapsed: float) -> OpenLoopRun:
        tally = self.tally
        return OpenLoopRun(
            offered_rate=rate,
            seconds=seconds,
            scheduled=scheduled,
            good=tally.good,
            errors=tally.unexpected + tally.socket_errors,
            timeouts=tally.timeouts,
            errors_by_kind=tally.by_kind,
            sample_error=tally.sample_error,
            latency_ms=percentiles(tally.latencies_us),
            send_lag_ms=percentiles(tally.send_lag_us, (50, 99)),
            connections_opened=self.opened,
            generator_cpu_seconds=cpu,
            elapsed_seconds=elapsed,
        )


async def _open_loop(
    host: str,
    port: int,
    source: Source,
    rate: float,
    seconds: float,
    answer_timeout: float,
    max_connections: int,
    initial_connections: int,
) -> OpenLoopRun:
    runner = _Runner(host, port, source, answer_timeout, max_connections)
    loop = runner.loop
    await runner.open_idle(min(initial_connections, max_connections))
    offsets = schedule(rate, seconds)
    watcher = loop.create_task(runner.watch_timeouts())
    cpu, wall = time.process_time(), time.perf_counter()
    start = clock() + 0.001
    index, count = 0, len(offsets)
    try:
        while index < count:
            now = clock()
            while index < count and start + offsets[index] <= now:
                runner.fire(start + offsets[index])
                index += 1
            if index < count:
                # Event-loop timers are as coarse as a millisecond (uvloop's clock too): a shorter sleep
                # would spin; what comes due meanwhile is sent at the next tick, its lag measured.
                await asyncio.sleep(max(MIN_SLEEP_SECONDS, start + offsets[index] - clock()))
        await runner.drain()
    finally:
        watcher.cancel()
        runner.close()
    return runner.result(rate, seconds, count, time.process_time() - cpu, time.perf_counter() - wall)


async def _sequential(
    host: str, port: int, source: Source, count: int, max_seconds: float, answer_timeout: float
) -> OpenLoopRun:
    runner = _Runner(host, port, source, answer_timeout, 1)
    loop = runner.loop
    await runner.open_idle(1)
    watcher = loop.create_task(runner.watch_timeouts())
    cpu, wall = time.process_time(), time.perf_counter()
    deadline = clock() + max_seconds
    sent = 0
    try:
        while sent < count and clock() < deadline:
            runner.fire(clock())
            sent += 1
            await runner.drain()
    finally:
        watcher.cancel()
        runner.close()
    elapsed = time.perf_counter() - wall
    return runner.result(
        sent / elapsed if elapsed else 0.0, elapsed, sent, time.process_time() - cpu, elapsed
    )


def _run(coroutine: Coroutine[Any, Any, OpenLoopRun]) -> OpenLoopRun:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop  # noqa: PLC0415 - optional: the bench image has Debian's python3-uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


def open_loop(
    host: str,
    port: int,
    source: Source,
    *,
    rate: float,
    seconds: float,
    timeout: float,
    max_connections: int = 1024,
    initial_connections: int = 16,
) -> OpenLoopRun:
    """Offer `rate` requests per second for `seconds`, on the schedule, whatever the answers."""
    return _run(_open_loop(host, port, source, rate, seconds, timeout, max_connections, initial_connections))


def sequential(
    host: str, port: int, source: Source, *, count: int, max_seconds: float, timeout: float
) -> OpenLoopRun:
    """Up to `count` requests one after another on one connection (stopping after `max_seconds`): the
    latency of an unloaded request."""
    return _run(_sequential(host, port, source, count, max_seconds, timeout))


def loop_name() -> str:
    try:
        import uvloop  # noqa: PLC0415, F401
    except ImportError:
        return "asyncio"
    return "uvloop"
