"""The open-loop generator (openloop.py), its verdict (tail.py) and the side-by-side row (comparison.py):
the schedule, percentiles with timeouts, latency from the intended send time (a stalled server delays
every request scheduled during the stall, also those that waited for a connection), timeouts at the
timeout, the refresh chains, and the verdicts. Against a real HTTP server on a loopback port, run in a
thread. Run by `make lint` next to test_driver.py, or with pytest on the host."""

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import comparison
import driver
import openloop
import tail
from openloop import Chains, Fixed, OpenLoopRun


def test_the_schedule_is_evenly_spaced_at_the_rate() -> None:
    times = openloop.schedule(200, 1.5)

    assert len(times) == 300
    assert times[0] == 0
    assert times[1] == pytest.approx(0.005)
    assert times[-1] == pytest.approx(1.495)
    assert openloop.schedule(0, 10) == []


def test_percentiles_are_nearest_rank_in_ms() -> None:
    values = [1000 * i for i in range(1, 1001)]  # 1 ms … 1000 ms

    result = openloop.percentiles(values)

    assert result == {"p50": 500.0, "p90": 900.0, "p99": 990.0, "p99.9": 999.0, "max": 1000.0, "mean": 500.5}
    assert openloop.percentiles([]) == {}


def test_timed_out_requests_count_at_the_timeout_in_the_distribution() -> None:
    tally = openloop.Tally(expected_status=200)
    for _ in range(98):
        tally.answer(2000, 200, b"{}")
    for _ in range(2):
        tally.timed_out(30_000_000)

    latency = openloop.percentiles(tally.latencies_us)

    assert latency["p50"] == 2.0
    assert latency["p99"] == 30_000.0
    assert tally.timeouts == 2
    assert tally.by_kind == {"timeout": 2}


def test_status_and_length_of_an_answer_header() -> None:
    assert openloop._status_and_length(b"HTTP/1.1 201 Created\r\ncontent-length: 17") == (201, 17)
    assert openloop._status_and_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked") == (200, -1)
    assert openloop._status_and_length(b"garbage") == (0, -1)


def test_a_refresh_chain_is_in_one_request_at_a_time_and_continues_with_the_new_token() -> None:
    chains = Chains(["a", "b"], lambda token, n: f"{token}:{n}".encode())

    first, second = chains.next(), chains.next()

    assert (first, second) == (b"a:0", b"b:1")
    assert chains.next() is None  # both in flight
    chains.answered(b"a:0", 200, json.dumps({"refresh_token": "a2"}).encode())
    chains.answered(b"b:1", 400, b'{"error":"invalid_grant"}')  # a failed chain is gone
    assert chains.next() == b"a2:2"
    assert chains.next() is None


# --- against a real server ------------------------------------------------------------------------------


class Server:
    """An HTTP/1.1 keep-alive server on a loopback port, in a thread of its own. `behave(n)` is called for
    the n-th request (from 0) before it is answered: it may block the whole server (a stall), or return
    False to leave the request unanswered."""

    def __init__(self, behave: Callable[[int], bool]) -> None:
        self.behave = behave
        self.count = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(self.loop.create_server(lambda: _Answer(self), "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        server.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _Answer(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            n = self.server.count
            self.server.count += 1
            if self.server.behave(n):
                self.transport.write(b'HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n{"n": %05d}' % n)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[int], bool]], Server]]:
    servers: list[Server] = []

    def start(behave: Callable[[int], bool]) -> Server:
        servers.append(Server(behave))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def get_source() -> Fixed:
    return Fixed([openloop.http_request("GET", "/", "bench", {})])


def test_every_scheduled_request_is_sent_and_answered(
    serve: Callable[[Callable[[int], bool]], Server],
) -> None:
    server = serve(lambda _n: True)

    run = openloop.open_loop("127.0.0.1", server.port, get_source(), rate=200, seconds=1, timeout=5)

    assert (run.scheduled, run.good, run.errors, run.timeouts) == (200, 200, 0, 0)
    assert server.count == 200
    assert run.latency_ms["p50"] < 50
    assert run.answered_rate == pytest.approx(200)


def test_a_stall_delays_every_request_scheduled_during_it_including_those_waiting_for_a_connection(
    serve: Callable[[Callable[[int], bool]], Server],
) -> None:
    """One connection, 200 requests a second, the server frozen for 300 ms at the 50th: the ~60 requests
    due meanwhile wait behind it, and each counts its wait from its intended send time. Timed from when
    it was sent, each of them would look as fast as the rest."""

    def stall_once(n: int) -> bool:
        if n == 50:
            time.sleep(0.3)
        return True

    server = serve(stall_once)

    run = openloop.open_loop(
        "127.0.0.1",
        server.port,
        get_source(),
        rate=200,
        seconds=1,
        timeout=5,
        max_connections=1,
        initial_connections=1,
    )

    assert (run.good, run.errors, run.timeouts) == (200, 0, 0)
    assert run.latency_ms["max"] >= 290
    assert run.latency_ms["p90"] >= 50  # the requests due during the stall: 30 % of the run
    assert run.send_lag_ms["max"] >= 250  # they were sent late, and their latency says so


def test_an_unanswered_request_is_a_timeout_at_the_timeout_and_the_rest_go_on(
    serve: Callable[[Callable[[int], bool]], Server],
) -> None:
    server = serve(lambda n: n != 10)

    run = openloop.open_loop("127.0.0.1", server.port, get_source(), rate=100, seconds=1, timeout=0.3)

    assert (run.scheduled, run.good, run.timeouts, run.errors) == (100, 99, 1, 0)
    assert run.latency_ms["max"] == 300.0
    assert run.errors_by_kind == {"timeout": 1}


def test_unexpected_statuses_are_errors_with_a_sample(
    serve: Callable[[Callable[[int], bool]], Server],
) -> None:
    server = serve(lambda _n: True)
    source = Fixed([openloop.http_request("GET", "/", "bench", {})], expected_status=201)

    run = openloop.sequential("127.0.0.1", server.port, source, count=5, max_seconds=5, timeout=5)

    assert (run.scheduled, run.good, run.errors) == (5, 0, 5)
    assert run.errors_by_kind == {"status 200": 5}
    assert run.sample_error == '200 {"n": 00000}'


def test_what_each_worker_answered_is_counted_over_the_loaded_run_alone(
    serve: Callable[[Callable[[int], bool]], Server],
) -> None:
    """`per_worker` reads the API's counts; here the one server's, as if it were a worker's."""
    server = serve(lambda _n: True)

    measured = tail.measure(
        "me",
        f"http://127.0.0.1:{server.port}",
        lambda _part: get_source(),
        100.0,
        seconds=1,
        timeout=5,
        say=lambda _line: None,
        per_worker=lambda: {"1": server.count},
    )

    loaded, unloaded = measured["loaded"], measured["unloaded"]
    assert loaded["scheduled"] == 70 and unloaded["scheduled"] > 0
    assert server.count == unloaded["scheduled"] + loaded["scheduled"]
    assert measured["requests_per_worker"] == {"1": loaded["scheduled"]}


def test_sequential_requests_go_one_at_a_time_on_one_connection(
    serve: Callable[[Callable[[int], bool]], Server],
) -> None:
    server = serve(lambda _n: True)

    run = openloop.sequential("127.0.0.1", server.port, get_source(), count=50, max_seconds=5, timeout=5)

    assert (run.scheduled, run.good, run.connections_opened) == (50, 50, 1)
    assert run.latency_ms["p50"] < 20


def test_a_refused_connection_is_an_error_of_each_request_not_a_hang_or_a_crash() -> None:
    closed_port = _unused_port()

    run = openloop.open_loop("127.0.0.1", closed_port, get_source(), rate=20, seconds=0.5, timeout=1)

    assert (run.scheduled, run.good, run.errors, run.timeouts) == (10, 0, 10, 0)
    assert run.sample_error is not None and run.sample_error.startswith("connect: ")


def _unused_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- verdicts --------------------------------------------------------------------------------------------


def a_run(
    p50: float, p99: float, *, errors: int = 0, timeouts: int = 0, scheduled: int = 1000
) -> OpenLoopRun:
    return OpenLoopRun(
        offered_rate=100.0,
        seconds=10.0,
        scheduled=scheduled,
        good=scheduled - errors - timeouts,
        errors=errors,
        timeouts=timeouts,
        errors_by_kind={"timeout": timeouts} if timeouts else {},
        sample_error=None,
        latency_ms={"p50": p50, "p90": p99, "p99": p99, "p99.9": p99, "max": p99, "mean": p50},
        send_lag_ms={"p50": 0.1, "p99": 0.5, "max": 1.0, "mean": 0.1},
        connections_opened=64,
        generator_cpu_seconds=0.5,
        elapsed_seconds=10.0,
    )


def test_the_tail_target_is_five_times_the_unloaded_p50() -> None:
    unloaded = a_run(2.0, 3.0, scheduled=300)

    met = tail.judge(unloaded, a_run(4.0, 10.0))
    missed = tail.judge(unloaded, a_run(4.0, 10.5))

    assert (met["target_p99_ms"], met["p99_over_unloaded_p50"], met["meets_tail"]) == (10.0, 5.0, True)
    assert (missed["p99_over_unloaded_p50"], missed["meets_tail"]) == (5.25, False)


def test_a_timeout_or_an_error_misses_the_tail_target_and_fails_the_gate() -> None:
    unloaded = a_run(2.0, 3.0, scheduled=300)
    loaded = a_run(4.0, 9.0, timeouts=1)

    verdict = tail.judge(unloaded, loaded)
    tails = {"me": {"unloaded": unloaded.as_dict(), "loaded": loaded.as_dict(), **verdict}}

    assert verdict["meets_tail"] is False
    assert tail.gate_failures(tails) == ["open loop me (loaded): 0 errors, 1 timeouts (timeout x1)"]
    clean = {"me": {**tails["me"], "loaded": a_run(4.0, 9.0).as_dict()}}
    assert tail.gate_failures(clean) == []


def test_the_open_loop_verdict_goes_into_the_scenario_rows() -> None:
    rows = {"me": {"meets_all": True}, "jwks": {"meets_all": True}, "login-mfa": {"meets_all": True}}
    tails = {"me": {"meets_tail": False}, "jwks": {"meets_tail": True}}

    tail.apply(rows, tails)

    assert rows == {
        "me": {"meets_all": False, "meets_tail": False},
        "jwks": {"meets_all": True, "meets_tail": True},
        "login-mfa": {"meets_all": True, "meets_tail": None},
    }


def a_tail(unloaded_p50: float, p99: float) -> dict[str, Any]:
    unloaded, loaded = a_run(unloaded_p50, unloaded_p50, scheduled=300), a_run(2 * unloaded_p50, p99)
    return {"unloaded": unloaded.as_dict(), "loaded": loaded.as_dict(), **tail.judge(unloaded, loaded)}


def test_the_raw_select_ceilings_tail_is_a_reference_row_with_no_verdict_of_its_own() -> None:
    scenario, reference = a_tail(0.3, 60.0), a_tail(0.2, 8.0)

    lines = tail.markdown({"me": scenario}, None, reference)

    rows = [line for line in lines if line.startswith("| ")]
    assert rows[1].startswith("| `me` |") and rows[1].endswith("| **no** |")
    assert rows[2].startswith("| raw-SELECT ceiling (reference) |") and rows[2].endswith("| — |")
    assert lines[-1].startswith("Reference: the raw-SELECT ceiling")
    times = tail.TIMES
    assert f"p99 8.00 ms, 40.0 {times} its unloaded p50 of 0.20 ms, beyond the 5 {times}" in lines[-1]
    assert f"within the 5 {times}" in tail.markdown({}, None, a_tail(0.2, 0.9))[-1]


def test_the_pool_carries_a_request_per_connection_at_least_every_half_second_or_so() -> None:
    assert tail.pool_size(14.0, most=64) == 7
    assert tail.pool_size(1500.0, most=64) == 64
    assert tail.pool_size(1.0, most=64) == 4


def test_the_offered_rate_is_seventy_percent_of_the_closed_loop_rate() -> None:
    assert tail.offered_rate(1000) == 700.0
    assert tail.offered_rate(333.3) == 233.3


def test_the_side_by_side_tokens_are_hs256_jwts_pyjwt_accepts() -> None:
    secret = "a3f1" * 16  # as bench/run.sh makes it: 32 random bytes, hex
    token = comparison.hs256_token(secret, "0b7c…-id", 2_000_000_000)

    claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"])

    assert claims == {"sub": "0b7c…-id", "exp": 2_000_000_000}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "b" * 64, algorithms=["HS256"])


def test_the_side_by_side_target_is_twice_its_rate() -> None:
    me = {"requests_per_second": 1000.0, "latency_ms": {"p50": 1.0, "p99": 2.0}, "errors": 0, "timeouts": 0}
    other = {**me, "requests_per_second": 500.0}

    assert comparison.row(me, other)["times"] == 2.0
    assert comparison.row(me, other)["meets_target"] is True
    assert comparison.row(me, {**other, "requests_per_second": 501.0})["meets_target"] is False


# --- in the driver's report ------------------------------------------------------------------------------


def closed_loop(name: str, p50: float, p99: float, rate: float) -> driver.Run:
    return driver.Run(
        name=name,
        url="http://bench-api:8000",
        connections=64,
        threads=2,
        seconds=10.0,
        requests=int(rate * 10),
        good=int(rate * 10),
        errors=0,
        timeouts=0,
        errors_by_kind={},
        latency_ms={"p50": p50, "p95": p99, "p99": p99, "mean": p50, "max": p99},
        sample_error=None,
    )


def test_the_closed_loop_tail_is_information_and_the_open_loop_one_the_target() -> None:
    """`me` at saturation with p99 = 40 x p50 meets its targets when its open-loop p99 is within 5 x the
    unloaded p50; `refresh`, whose open-loop p99 is not, does not. The side-by-side row and the open-loop
    section are in the report, and an open-loop run with errors fails the gate."""
    runs = {
        "me": closed_loop("me", 10.0, 400.0, 3000.0),
        "refresh": closed_loop("refresh", 10.0, 20.0, 2000.0),
    }
    unloaded = a_run(2.0, 3.0, scheduled=300)
    tails = {
        "me": {"unloaded": unloaded.as_dict(), "loaded": a_run(3.0, 9.0).as_dict()},
        "refresh": {"unloaded": unloaded.as_dict(), "loaded": a_run(3.0, 11.0, errors=2).as_dict()},
    }
    for name, loaded in (("me", a_run(3.0, 9.0)), ("refresh", a_run(3.0, 11.0, errors=2))):
        tails[name].update(tail.judge(unloaded, loaded))
    other = closed_loop("side by side", 20.0, 40.0, 1000.0)
    report: dict[str, Any] = {
        "finished_at": "2026-12-02 16:00 UTC",
        "git": "abc1234",
        "runs": ["me", "refresh"],
        "machine": {"cpus": 2, "cpu_model": "test", "load_average_1m": {"start": "1.0", "end": "2.0"}},
        "config": {
            "connections": 64,
            "threads": 2,
            "warm_up_seconds": 5,
            "duration_seconds": 15,
            "timeout_seconds": 30,
        },
        "api_settings": {},
        "scenarios": driver.verdicts(runs, {"select": 5000.0, "rotation": 400.0}),
        "ceilings": {
            "select": {
                **closed_loop("select", 1.0, 2.0, 5000.0).as_dict(),
                "per_second": 5000.0,
                "how": "asyncpg",
            },
            "rotation": {
                **closed_loop("rotation", 1.0, 2.0, 400.0).as_dict(),
                "per_second": 400.0,
                "how": "asyncpg",
            },
        },
        "tail": tails,
        "side_by_side": comparison.row(runs["me"].as_dict(), other.as_dict()),
    }
    tails["me"]["requests_per_worker"] = {"8": 300, "9": 100}
    tail.apply(report["scenarios"], tails)
    report["gate_failures"] = driver.gate_failures(report)

    assert report["scenarios"]["me"]["meets_tail"] is True
    assert report["scenarios"]["me"]["meets_all"] is True  # ratio 0.60, p99/p50 40 closed loop
    assert report["scenarios"]["refresh"]["meets_tail"] is False
    assert report["gate_failures"] == ["open loop refresh (loaded): 2 errors, 0 timeouts"]
    text = driver.markdown(report, chart_name="subset.png")
    assert "## Tail latency, open loop" in text
    assert "| `me` open loop | 300 / 100 (3.00) |" in text
    assert "| `me` | 100.0 | 100.0 | 3.00 | 9.00 | 9.00 | 9.00 | 2.00 | 10.00 | 4.50 | 0 | 0 |" in text
    assert (
        "pyauth's `me`: 3.00 \N{MULTIPLICATION SIGN} its req/s (target \N{GREATER-THAN OR EQUAL TO} 2: yes)"
        in text
    )
    console = driver.console_table(report)
    assert "open loop me: 100.0 req/s offered" in console
    assert "side by side: pyauth me 3,000.0 req/s" in console
