"""The gate of `make bench` and its per-worker counts, on the driver's own functions: a run with errors or
timeouts fails the bench (exit status 1), a missed target does not; /metrics is read from the internal
port, else from the API port; CPU per request comes from cgroup v1 and v2 counters (cpu.py); the report says
whether the ceilings are fed like the API (fairness.py). Run by `make lint` (in the test image) or with
pytest on the host."""

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import comparison
import cpu
import driver
import fairness
import repetitions
from driver import Run, WorkerCounts


def run(name: str, *, errors: int = 0, timeouts: int = 0, good: int = 1000) -> Run:
    return Run(
        name=name,
        url="http://bench-api:8000",
        connections=64,
        threads=2,
        seconds=10.0,
        requests=good + errors,
        good=good,
        errors=errors,
        timeouts=timeouts,
        errors_by_kind={"status 503": errors} if errors else {},
        latency_ms={"p50": 10.0, "p95": 20.0, "p99": 30.0, "mean": 12.0, "max": 40.0},
        sample_error=None,
        per_worker={"101": 510, "102": 490},
    )


def report(**broken: Run) -> dict[str, Any]:
    runs = {scenario: broken.get(scenario, run(scenario)) for scenario in driver.SCENARIOS}
    # Ceilings far above every scenario: every ratio target is missed, which must not fail the bench.
    ceilings = {name: 1e9 for name, _ in driver.TARGETS.values()}
    mixed = {part: broken.get(f"mixed_{part}", run(f"mixed-{part}")) for part in ("login", "me")}
    result: dict[str, Any] = {
        "scenarios": driver.verdicts(runs, ceilings),
        "mixed": {**{part: r.as_dict() for part, r in mixed.items()}, "meets_target": True},
        "ceilings": {
            "json": {**broken.get("ceiling_json", run("ceiling-json")).as_dict(), "per_second": 1e9},
            "argon2_verify": {"per_second": 1e9, "threads": 2},
        },
    }
    result["gate_failures"] = driver.gate_failures(result)
    return result


def test_a_scenario_with_errors_fails_the_bench() -> None:
    failed = report(login=run("login", errors=3))

    assert failed["gate_failures"] == ["scenario login: 3 errors, 0 timeouts (status 503 x3)"]
    assert driver.verdict(failed) == 1


@pytest.mark.parametrize(
    "broken",
    [
        {"register": run("register", timeouts=1)},
        {"mixed_login": run("mixed-login", timeouts=10)},
        {"mixed_me": run("mixed-me", errors=1)},
        {"ceiling_json": run("ceiling-json", errors=2)},
        {"login": run("login", good=0)},  # every request outlasted the run: wrk counts no timeout
    ],
)
def test_any_run_with_errors_or_timeouts_fails_the_bench(broken: dict[str, Run]) -> None:
    failed = report(**broken)

    assert len(failed["gate_failures"]) == 1
    assert driver.verdict(failed) == 1


def test_missed_targets_alone_do_not_fail_the_bench() -> None:
    clean = report()

    assert not any(row["meets_ratio"] for row in clean["scenarios"].values() if row["target_ratio"])
    assert clean["gate_failures"] == []
    assert driver.verdict(clean) == 0


def verification(*, fetches: int = 0, ratio: float = 0.1) -> dict[str, Any]:
    """What bench-verify answers (bench/ceilings/verification.py), with `fetches` HTTP requests to pyauth
    during the measured loop."""
    side = {
        "verifications": 1000,
        "seconds": 1.0,
        "cpu_seconds": 1.0,
        "per_core_second": 1000.0,
        "per_second": 1000.0,
        "microseconds_each": 1000.0,
        "core_share": 1.0,
    }
    return {
        "core": 1,
        "rounds": 5,
        "algorithm": "ES256",
        "token_bytes": 600,
        "client_id": "pyauth",
        "library": {**side, "per_core_second": 1000.0 * ratio},
        "ceiling": side,
        "ratio": ratio,
        "fetches_to_load": {"discovery": 1, "jwks": 1},
        "fetches_during_loop": fetches,
    }


def with_verify(result: dict[str, Any]) -> dict[str, Any]:
    clean = report()
    clean["verify"] = driver.verification_row(result)
    clean["gate_failures"] = driver.gate_failures(clean)
    return clean


def test_a_verification_loop_that_sent_http_requests_fails_the_bench() -> None:
    """pyauth-resource must verify without a network call once its keys are cached."""
    failed = with_verify(verification(fetches=3))

    assert failed["gate_failures"] == [
        "verify: 3 HTTP requests to pyauth during the measured loop (none expected once the keys are cached)"
    ]
    assert driver.verdict(failed) == 1


def test_a_verification_that_could_not_be_measured_fails_the_bench() -> None:
    failed = with_verify({"error": "HTTP 422 InvalidToken"})

    assert failed["gate_failures"] == ["verify: no measurement (HTTP 422 InvalidToken)"]
    assert driver.verdict(failed) == 1
    assert "No measurement" in "\n".join(driver.verification_markdown(failed["verify"]))


def test_a_missed_verification_ratio_alone_does_not_fail_the_bench() -> None:
    clean = with_verify(verification(ratio=0.1))

    assert clean["verify"]["meets_ratio"] is False
    assert clean["verify"]["meets_fetches"] is True
    assert clean["gate_failures"] == []
    assert driver.verdict(clean) == 0
    section = "\n".join(driver.verification_markdown(clean["verify"]))
    assert "| pyauth-resource `verify` | 100.0 |" in section
    assert "Ratio 0.10 (target ≥ 0.80: **no**)" in section


class Exposition(BaseHTTPRequestHandler):
    body = (
        b"# TYPE pyauth_worker_requests_total counter\n"
        b'pyauth_worker_requests_total{worker="101"} 1500.0\n'
        b'pyauth_worker_requests_total{worker="102"} 40.0\n'
    )

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def metrics_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Exposition)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_requests_per_worker_are_read_from_the_api_port_when_the_metrics_port_does_not_answer(
    metrics_url: str,
) -> None:
    with HTTPServer(("127.0.0.1", 0), Exposition) as closed:  # bound, then closed: nothing listens there
        silent = f"http://127.0.0.1:{closed.server_address[1]}/metrics"
    counts = WorkerCounts([silent, metrics_url])

    assert counts.read() == {"101": 1500, "102": 40}
    assert counts.url == metrics_url
    assert WorkerCounts.between({"101": 1000}, {"101": 1500, "102": 40}) == {"101": 500, "102": 40}
    assert driver.worker_spread({"101": 500, "102": 40}) == 12.5
    assert driver.show_workers({"101": 500, "102": 40}) == "500 / 40 (12.50)"


def test_no_metrics_means_no_per_worker_counts_and_no_failure() -> None:
    with HTTPServer(("127.0.0.1", 0), Exposition) as closed:
        silent = f"http://127.0.0.1:{closed.server_address[1]}/metrics"

    assert WorkerCounts([silent]).read() == {}
    assert driver.show_workers({}) == "—"


class Draining(BaseHTTPRequestHandler):
    """An API still answering what a run left in flight: its count moves on each of the first
    `MOVING_READS` scrapes, then only by the scrape itself, which the API counts like any request."""

    MOVING_READS = 4
    reads = 0

    def do_GET(self) -> None:
        Draining.reads += 1
        answered = 1000 + Draining.reads + 10 * min(Draining.reads, Draining.MOVING_READS)
        body = f'pyauth_worker_requests_total{{worker="101"}} {answered}.0\n'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_a_run_starts_only_once_the_api_answered_what_the_run_before_left_in_flight() -> None:
    """The wait every run starts with (a measured run, a ceiling, an open-loop run, the mixed run): it
    returns once the count moves by no more than the scrapes, not before, and not only at its bound."""
    Draining.reads = 0
    with HTTPServer(("127.0.0.1", 0), Draining) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        counts = WorkerCounts([f"http://127.0.0.1:{server.server_address[1]}/metrics"])
        started = time.monotonic()
        counts.wait_until_answered(settle=0.02, bound=10)
        waited = time.monotonic() - started
        server.shutdown()

    assert Draining.reads == Draining.MOVING_READS + 1  # moving until the 4th read, quiet at the 5th
    assert waited < 5


# --- login-mfa ---------------------------------------------------------------------------------------

# RFC 6238 appendix B's SHA-1 secret, "12345678901234567890", in base32 as pyauth hands secrets out.
RFC_6238_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # noqa: S105 - the RFC's published test secret


@pytest.mark.parametrize(
    ("unix_seconds", "code"),
    # RFC 6238 appendix B's SHA-1 vectors (8 digits there), to the 6 digits pyauth uses.
    [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_totp_codes_are_rfc_6238s(unix_seconds: int, code: str) -> None:
    assert driver.totp_code(RFC_6238_SECRET, driver.totp_step(unix_seconds)) == code


def test_a_totp_step_is_30_seconds() -> None:
    assert [driver.totp_step(t) for t in (0, 29.9, 30, 59, 60)] == [0, 0, 1, 1, 2]


def test_login_mfa_accounts_cover_a_step_at_the_bound_rate_and_the_logins_in_flight() -> None:
    # 40 logins/s for 15 s: 600 logins, each account at most once per step, 50 % spare, 2 per connection.
    assert driver.mfa_accounts_needed(40, 15, 64) == 900 + 128
    # A run longer than a step needs no more: every step frees every account again.
    assert driver.mfa_accounts_needed(40, 300, 64) == driver.mfa_accounts_needed(40, 30, 64) == 1800 + 128


def test_login_mfa_data_carries_each_accounts_last_step_and_codes_from_the_first_step() -> None:
    account = driver.MfaAccount("bench-1-mfam0@bench.example", RFC_6238_SECRET, 1)

    assert driver.mfa_data([account], first_step=2, steps=3) == [
        "steps 2",
        "bench-1-mfam0@bench.example 1 "
        + " ".join(driver.totp_code(RFC_6238_SECRET, step) for step in (2, 3, 4)),
    ]


def test_bench_scenarios_chooses_a_subset_in_the_bench_order() -> None:
    assert driver.selected_runs("") == driver.RUNS
    assert driver.selected_runs(" login-mfa, login ") == ("login", "login-mfa")
    with pytest.raises(SystemExit, match="no such run: logon"):
        driver.selected_runs("login,logon")


def test_login_and_register_at_64_mib_are_read_against_the_ceilings_at_the_same_parameters() -> None:
    ceilings = {"argon2_verify": 100.0, "argon2_hash": 100.0}
    ceilings |= {"argon2_verify_64mib": 20.0, "argon2_hash_64mib": 25.0}
    runs = {"login-64mib": run("login-64mib", good=190), "register-64mib": run("register-64mib", good=200)}

    rows = driver.verdicts(runs, ceilings)

    login, register = rows["login-64mib"], rows["register-64mib"]
    assert (login["ceiling"], login["target_ratio"]) == ("argon2_verify_64mib", 0.92)
    assert login["ratio"] == 0.95  # 19/s of 20/s
    assert (register["ceiling"], register["target_ratio"]) == ("argon2_hash_64mib", 0.88)
    assert register["ratio"] == 0.8
    assert driver.selected_runs("register-64mib,login") == ("login", "register-64mib")


def test_the_64_mib_scenarios_cpu_is_their_own_apis() -> None:
    with_cpu = report()
    with_cpu["scenarios"]["login-64mib"]["cpu_ms_per_request"] = {"api": 0.5, "api_64mib": 95.0, "db": 2.0}
    with_cpu["ceilings"]["argon2_verify_64mib"] = {
        "per_second": 21.0,
        "cpu_ms_per_request": {"argon2": 0.1, "argon2_64mib": 94.0, "db": 0.2},
    }

    section = "\n".join(cpu.markdown(with_cpu, driver.CEILING_NAMES))

    assert "| `login-64mib` | 100.0 | API at 64 MiB | 95.000 | 2.000 | 97.000 |" in section
    ceiling = "| ceiling: argon2id verify, 64 MiB, t=3, p=4 | 21.0 | argon2id ceiling at 64 MiB"
    assert f"{ceiling} | 94.000 | — | — |" in section


def test_the_header_names_the_64_mib_apis_parameters_only_when_its_scenarios_ran() -> None:
    settings = {"argon2_memory_kib": 65536, "argon2_time_cost": 3, "argon2_parallelism": 4}
    rows: dict[str, Any] = {"login": {}, "login-64mib": {}}

    line = "".join(driver.api_64mib_line({"api_64mib_settings": settings}, rows))

    assert "`login-64mib`: the same API and settings (bench-api-64mib), but argon2id m=65536 KiB" in line
    assert "t=3, p=4, the second parameter set of issue 13" in line
    assert driver.api_64mib_line({"api_64mib_settings": settings}, {"login": {}}) == []


def wrk_output(tmp_path: Path, **extra: Any) -> Path:
    """What common.lua's done() writes, for 1000 requests of which 2 unexpected."""
    raw = {
        "duration_us": 10_000_000,
        "requests": 1000,
        "bytes": 1,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        "unexpected": 2,
        "unexpected_by_status": {"400": 1, "no free account": 1},
        "sample": "400 invalid_grant",
        "latency_us": {
            "min": 1,
            "mean": 5000.0,
            "max": 9000,
            "stdev": 1.0,
            "percentiles": {"50": 4000, "99": 8000},
        },
        "completed": None,
        "unit_latency_us": None,
        **extra,
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(raw))
    return path


def test_a_login_mfa_run_counts_completed_logins_and_their_latency(tmp_path: Path) -> None:
    unit = {"count": 450, "mean": 30000.0, "max": 90000, "percentiles": {"50": 20000, "99": 80000}}
    read = driver.Wrk._read(
        "login-mfa", "http://bench-api:8000", 64, 2, wrk_output(tmp_path, completed=450, unit_latency_us=unit)
    )

    assert (read.unit, read.requests, read.good, read.errors) == ("login", 1000, 450, 2)
    assert read.rate == 45.0
    assert read.latency_ms == {"p50": 20.0, "p99": 80.0, "mean": 30.0, "max": 90.0}
    assert read.errors_by_kind == {"status 400": 1, "no free account": 1}


def test_other_runs_count_requests(tmp_path: Path) -> None:
    read = driver.Wrk._read("login", "http://bench-api:8000", 64, 2, wrk_output(tmp_path))

    assert (read.unit, read.good, read.rate) == ("request", 998, 99.8)
    assert read.latency_ms["p50"] == 4.0


def test_a_login_mfa_with_errors_fails_the_bench() -> None:
    failed = report(**{"login-mfa": run("login-mfa", errors=1)})

    assert failed["gate_failures"] == ["scenario login-mfa: 1 errors, 0 timeouts (status 503 x1)"]
    assert driver.verdict(failed) == 1


def test_a_partial_run_reports_only_what_ran(tmp_path: Path) -> None:
    runs = {"login": run("login"), "login-mfa": run("login-mfa")}
    partial: dict[str, Any] = {
        "finished_at": "2026-12-02 13:00 UTC",
        "git": "abc1234",
        "runs": ["login", "login-mfa"],
        "machine": {"cpus": 2, "cpu_model": "test", "load_average_1m": {"start": "1.0", "end": "2.0"}},
        "config": {
            "connections": 64,
            "threads": 2,
            "warm_up_seconds": 5,
            "duration_seconds": 15,
            "timeout_seconds": 5,
        },
        "api_settings": {"api_workers": 2, "hash_threads_per_worker": 1},
        "scenarios": driver.verdicts(runs, {"argon2_verify": 80.0}),
        "ceilings": {"argon2_verify": {"per_second": 80.0, "threads": 2, "how": "argon2-cffi"}},
    }
    partial["gate_failures"] = driver.gate_failures(partial)

    assert list(partial["scenarios"]) == ["login", "login-mfa"]
    assert partial["scenarios"]["login-mfa"]["target_ratio"] == 0.80
    assert driver.verdict(partial) == 0
    text = driver.markdown(partial, chart_name="subset.png")
    assert "Partial run: login, login-mfa only (BENCH_SCENARIOS)." in text
    assert "`login-mfa` counts logins, not requests" in text
    assert "Mixed" not in text
    assert "The argon2id ceilings ran on 2 threads, as many as the API hashes on" in text
    assert "Every one of the 2 API workers answered at least 0.50 of an even share in every run." in text
    assert "![latency percentiles and throughput per scenario](subset.png)" in text
    console = driver.console_table(partial)
    assert "login-mfa: completed logins per second" in console
    assert "mixed:" not in console


def test_me_distinct_is_a_known_run_read_against_the_select_ceiling_like_me() -> None:
    assert driver.selected_runs("me-distinct,me") == ("me", "me-distinct")
    rows = driver.verdicts({"me-distinct": run("me-distinct")}, {"select": 4000.0})

    assert (rows["me-distinct"]["ceiling"], rows["me-distinct"]["target_ratio"]) == ("select", 0.50)
    assert rows["me-distinct"]["ratio"] == 0.025


def test_me_distinct_tokens_come_from_every_account_in_turn() -> None:
    emails = ["a@bench.example", "b@bench.example", "c@bench.example"]

    logins = driver.distinct_token_logins(emails, 7)

    assert logins == [*emails, *emails, "a@bench.example"]
    assert driver.distinct_token_logins(emails, 0) == []


def test_me_distinct_sends_a_token_again_only_after_all_the_others() -> None:
    per_session = [["a1", "a2", "a3"], ["b1", "b2", "b3"]]

    assert driver.interleaved(per_session) == ["a1", "b1", "a2", "b2", "a3", "b3"]
    assert driver.interleaved([]) == []


def test_late_answers_count_at_the_timeout_in_the_percentiles() -> None:
    # 98 answers at 10 ms and 2 later than a 30 s timeout, which wrk left out of its histogram.
    latency = driver.percentiles_with_late([(10_000, 98)], 2, 30_000_000)

    assert latency["p95"] == 10.0
    assert latency["p99"] == 30_000.0
    assert latency["max"] == 30_000.0


def test_without_late_answers_the_percentiles_are_the_histograms() -> None:
    histogram = [(3_000, 1), (1_000, 50), (2_000, 49)]

    latency = driver.percentiles_with_late(histogram, 0, 30_000_000)

    assert (latency["p50"], latency["p75"], latency["p99.9"]) == (1.0, 2.0, 3.0)
    assert "max" not in latency
    assert driver.percentiles_with_late([], 0, 30_000_000) == {}


def test_a_run_counts_the_answers_missing_from_wrks_histogram_as_late(tmp_path: Path) -> None:
    # 1000 answers, 990 of them within the timeout.
    read = driver.Wrk._read(
        "me", "http://bench-api:8000", 64, 2, wrk_output(tmp_path, histogram_us=[[4000, 990]])
    )

    assert read.late == 10
    assert read.latency_ms["p99"] == 4.0  # the 990th of 1000
    assert read.latency_ms["p99.9"] == driver.TIMEOUT * 1000
    assert read.latency_ms["p50"] == 4.0
    assert read.as_dict()["late_answers"] == 10


# --- refresh against the rotation ceiling, and the mixed run on both parts --------------------------------


def test_refresh_is_read_against_the_rotation_ceiling_and_the_raw_select() -> None:
    rows = driver.verdicts({"refresh": run("refresh", good=1000)}, {"rotation": 200.0, "select": 1000.0})
    refresh = rows["refresh"]

    # 100 req/s: 0.50 of the rotation ceiling (target 0.60), 0.10 of the raw SELECT (target 0.25)
    assert (refresh["ceiling"], refresh["ratio"], refresh["target_ratio"]) == ("rotation", 0.5, 0.60)
    assert refresh["also"] == [
        {
            "ceiling": "select",
            "ceiling_per_second": 1000.0,
            "ratio": 0.1,
            "target_ratio": 0.25,
            "meets_ratio": False,
        }
    ]
    assert (
        "`refresh` is also 0.10 of one primary-key SELECT (raw asyncpg) (1,000.0/s; target ≥ 0.25: **no**)."
        in (driver.also_lines(rows))
    )


def test_refresh_meets_its_targets_only_when_both_ratios_hold() -> None:
    rotation_met = driver.verdicts({"refresh": run("refresh")}, {"rotation": 150.0, "select": 1000.0})
    both_met = driver.verdicts({"refresh": run("refresh")}, {"rotation": 150.0, "select": 400.0})

    assert rotation_met["refresh"]["meets_ratio"] is True
    assert rotation_met["refresh"]["meets_all"] is False  # 0.10 of the raw SELECT, target 0.25
    assert both_met["refresh"]["meets_all"] is True


def mixed(login: Run, me: Run, ceilings: dict[str, float] | None = None) -> dict[str, Any]:
    return driver.mixed_report({"login": login, "me": me}, {"101": 10, "102": 12}, ceilings or {}, {})


def test_the_mixed_run_misses_its_target_when_either_part_has_errors_or_timeouts() -> None:
    assert mixed(run("mixed-login"), run("mixed-me"))["meets_target"] is True
    assert mixed(run("mixed-login", errors=1), run("mixed-me"))["meets_target"] is False
    assert mixed(run("mixed-login", timeouts=1), run("mixed-me"))["meets_target"] is False
    assert mixed(run("mixed-login"), run("mixed-me", timeouts=1))["meets_target"] is False


def test_the_mixed_run_does_not_score_a_fast_me_with_a_long_closed_loop_tail_worse() -> None:
    # Closed loop at saturation, a faster `me` queues more requests behind each: p50 2 ms, p99 40 ms.
    fast_me = run("mixed-me", good=5000)
    fast_me.latency_ms = {**fast_me.latency_ms, "p50": 2.0, "p99": 40.0}

    judged = mixed(run("mixed-login"), fast_me)

    assert judged["me"]["p99_over_p50"] == 20.0
    assert judged["meets_target"] is True
    assert "met: yes" in "\n".join(driver.mixed_markdown(judged, None))


def test_a_mixed_login_part_with_errors_fails_the_gate_alone() -> None:
    failed = report()
    failed["mixed"] = mixed(run("mixed-login", errors=2), run("mixed-me"))
    failed["gate_failures"] = driver.gate_failures(failed)

    assert failed["gate_failures"] == ["mixed login: 2 errors, 0 timeouts (status 503 x2)"]
    assert driver.verdict(failed) == 1


def test_each_mixed_part_is_read_against_its_own_ceiling() -> None:
    # 100 req/s each: login over the argon2id verify ceiling, me over the raw SELECT.
    both = mixed(run("mixed-login"), run("mixed-me"), {"argon2_verify": 200.0, "select": 1000.0})
    no_ceilings = mixed(run("mixed-login"), run("mixed-me"))

    assert (both["login"]["ceiling"], both["login"]["ratio"]) == ("argon2_verify", 0.5)
    assert (both["me"]["ceiling"], both["me"]["ratio"]) == ("select", 0.1)
    assert no_ceilings["login"]["ratio"] is None
    section = "\n".join(driver.mixed_markdown(both, None))
    assert "| `login` | 100.0 |" in section
    assert "| argon2id verify | 0.50 |" in section
    assert "| one primary-key SELECT (raw asyncpg) | 0.10 |" in section
    assert "not measured" in "\n".join(driver.mixed_markdown(no_ceilings, None))
    in_report = report()
    in_report["mixed"] = {**both, "meets_target": False}
    assert "ratios: login 0.50, me 0.10 (target, both parts without errors or timeouts" in (
        driver.console_table(in_report)
    )


# --- CPU time per request (cgroup counters) -----------------------------------------------------------

CONTAINER = "0123abcd" * 8


def test_a_cgroup_v1_counter_is_read_in_nanoseconds(tmp_path: Path) -> None:
    counter = tmp_path / "cpuacct" / "docker" / CONTAINER / "cpuacct.usage"
    counter.parent.mkdir(parents=True)
    counter.write_text("5151389730\n")

    assert cpu.find_counter(tmp_path, CONTAINER) == counter
    assert cpu.usage_nanoseconds(counter) == 5_151_389_730


def test_a_cgroup_v1_counter_under_the_systemd_driver_is_found(tmp_path: Path) -> None:
    counter = tmp_path / "cpuacct" / "system.slice" / f"docker-{CONTAINER}.scope" / "cpuacct.usage"
    counter.parent.mkdir(parents=True)
    counter.write_text("42\n")

    assert cpu.find_counter(tmp_path, CONTAINER) == counter


@pytest.mark.parametrize("where", [("system.slice", f"docker-{CONTAINER}.scope"), ("docker", CONTAINER)])
def test_a_cgroup_v2_counter_is_usage_usec_of_cpu_stat(tmp_path: Path, where: tuple[str, str]) -> None:
    stat = tmp_path.joinpath(*where, "cpu.stat")
    stat.parent.mkdir(parents=True)
    stat.write_text("usage_usec 7250113\nuser_usec 5000000\nsystem_usec 2250113\nnr_periods 0\n")

    assert cpu.find_counter(tmp_path, CONTAINER) == stat
    assert cpu.usage_nanoseconds(stat) == 7_250_113_000


def test_a_cpu_stat_without_usage_is_refused(tmp_path: Path) -> None:
    stat = tmp_path / "cpu.stat"
    stat.write_text("nr_periods 0\n")

    with pytest.raises(ValueError, match="no usage_usec"):
        cpu.usage_nanoseconds(stat)


def test_the_meter_reads_the_containers_it_finds_and_names_the_others(tmp_path: Path) -> None:
    api = tmp_path / "cpuacct" / "docker" / CONTAINER / "cpuacct.usage"
    api.parent.mkdir(parents=True)
    api.write_text("1000000000\n")
    meter = cpu.CpuMeter(tmp_path, cpu.parse_containers(f"api={CONTAINER} db=feedbeef db-gone= "))

    assert meter.read() == {"api": 1_000_000_000}
    assert meter.missing == ["db"]
    assert "no counter for db" in meter.describe()
    assert "no container's CPU counter" in cpu.CpuMeter(tmp_path, {}).describe()


def test_cpu_per_request_is_the_counters_difference_over_the_requests() -> None:
    before = {"api": 10_000_000_000, "db": 2_000_000_000}
    # 3 s of API CPU and 0.5 s of Postgres over 1,500 requests
    after = {"api": 13_000_000_000, "db": 2_500_000_000, "select": 1}

    assert cpu.per_request_ms(before, after, 1500) == {"api": 2.0, "db": 0.333}
    assert cpu.per_request_ms(before, after, 0) == {}
    assert cpu.console({"api": 2.0, "db": 0.333}, ("api", "db")) == "api 2.000 ms, db 0.333 ms"


def test_the_cpu_section_shows_each_runs_server_and_database_cpu_per_request() -> None:
    with_cpu = report()
    with_cpu["scenarios"]["me"]["cpu_ms_per_request"] = {"api": 2.1, "db": 0.3}
    with_cpu["ceilings"]["select"] = {
        "per_second": 5000.0,
        "cpu_ms_per_request": {"select": 0.14, "db": 0.07},
    }
    with_cpu["ceilings"]["json"]["cpu_ms_per_request"] = {"json": 0.05, "db": 0.01}

    section = "\n".join(cpu.markdown(with_cpu, driver.CEILING_NAMES))

    assert "| `me` | 100.0 | API | 2.100 | 0.300 | 2.400 |" in section
    assert (
        "| ceiling: one primary-key SELECT (raw asyncpg) | 5,000.0 | raw-SELECT ceiling "
        "| 0.140 | 0.070 | 0.210 |" in section
    )
    assert "| `login` | 100.0 | API | — | — | — |" in section
    # The constant-JSON app uses no database: Postgres's counter meanwhile is not its cost.
    assert (
        "| ceiling: constant JSON (minimal ASGI) | 1,000,000,000.0 | constant-JSON ceiling | 0.050 | — | — |"
        in section
    )
    assert cpu.markdown(report(), driver.CEILING_NAMES) == []  # no counters read: no section


# --- like with like: the argon2id ceiling's threads, the API's workers ------------------------------------


def test_the_argon2_ceiling_is_checked_against_the_apis_hashing_threads() -> None:
    ceilings = {"argon2_verify": {"threads": 2}, "argon2_hash": {"threads": 2}}
    settings = {"api_workers": 2, "hash_threads_per_worker": 1}

    check = fairness.argon2_threads(ceilings, settings)
    assert check is not None
    assert check["matches"] is True
    assert fairness.argon2_threads_line(check).endswith(
        f"(the API's 2 workers {fairness.TIMES} 1 hashing thread(s) = 2): yes."
    )

    other = fairness.argon2_threads(ceilings, {"api_workers": 2, "hash_threads_per_worker": 2})
    assert other is not None
    assert other["matches"] is False
    assert "**no**" in fairness.argon2_threads_line(other)
    at_64_mib = fairness.argon2_threads({**ceilings, "argon2_verify_64mib": {"threads": 3}}, settings)
    assert at_64_mib is not None
    assert at_64_mib["matches"] is False  # every argon2id ceiling is checked, the 64 MiB ones too
    assert fairness.argon2_threads({}, settings) is None
    assert fairness.argon2_threads(ceilings, {}) is None


def test_the_header_says_the_workers_hash_in_one_shared_pool_and_one_worker_on_its_own_threads() -> None:
    shared = driver.hashing_line({"api_workers": 2, "hash_threads_per_worker": 1, "hash_threads_nice": 0})
    assert shared == (
        f"password hashing on 2 thread(s) (nice 0) in one pool the workers share (2 {fairness.TIMES} 1)"
    )
    alone = driver.hashing_line({"api_workers": 1, "hash_threads_per_worker": 2, "hash_threads_nice": 5})
    assert alone == "2 hashing thread(s) (nice 5)"


def test_silent_and_under_fed_workers_are_named() -> None:
    assert fairness.under_fed_workers({"101": 510, "102": 490}, 2) == []
    assert fairness.under_fed_workers({"101": 1000}, 2) == ["1 of 2 workers answered nothing"]
    assert fairness.under_fed_workers({"101": 900, "102": 100}, 2) == [
        "worker 102 answered 100, 0.20 of an even share"
    ]
    assert fairness.under_fed_workers({}, 2) == []
    lines = fairness.workers_lines({"login": {"101": 900, "102": 100}, "me": {"101": 50, "102": 50}}, 2)
    assert lines == ["Under-fed in `login`: worker 102 answered 100, 0.20 of an even share."]


def repetition(
    ceilings: dict[str, float], *, me: Run | None = None, side_by_side: Run | None = None
) -> driver.Repetition:
    """One repetition of `me` and `login` against HTTP ceilings of the given rates (and the argon2id
    verify ceiling), with the side-by-side app when given."""
    ceiling_runs = {}
    for name, rate in ceilings.items():
        ceiling_runs[name] = run(f"ceiling-{name}", good=int(rate * 10))
    return driver.Repetition(
        runs={"me": me or run("me"), "login": run("login")},
        ceiling_runs=ceiling_runs,
        argon2={"argon2_verify": {"per_second": 100.0}},
        verification=None,
        side_by_side={} if side_by_side is None else {"app": side_by_side},
    )


def judged(measured: list[driver.Repetition]) -> dict[str, Any]:
    """The report's verdicts as `main` makes them: the first repetition's rows, judged on every one."""
    first = measured[0]
    result: dict[str, Any] = {"scenarios": driver.verdicts(first.runs, first.ceilings), "ceilings": {}}
    if (side := first.comparison()) is not None:
        result["side_by_side"] = side
    repetitions.judge(result, [each.entry() for each in measured], driver.CEILING_NAMES)
    result["gate_failures"] = driver.gate_failures(result)
    return result


def test_a_ratio_target_is_met_only_when_it_holds_in_every_repetition() -> None:
    # `me` answers 100/s each time; the raw SELECT 150/s, 150/s, then 250/s: 0.67, 0.67, 0.40 of it.
    measured = [repetition({"select": rate}) for rate in (150.0, 150.0, 250.0)]

    result = judged(measured)

    me = result["scenarios"]["me"]
    assert me["ratio"] == 0.667  # the first repetition's
    assert me["ratios"] == [0.667, 0.667, 0.4]
    assert me["meets_ratio"] is False and me["meets_all"] is False
    assert result["scenarios"]["login"]["meets_all"] is True  # 1.00 of the verify ceiling, each time
    assert result["gate_failures"] == []  # a missed target is a report, not a failure
    [me_line] = [line for line in result["repetitions"]["targets"] if line["what"].startswith("`me`")]
    assert me_line["values"] == [0.667, 0.667, 0.4] and me_line["met"] is False
    text = "\n".join(repetitions.markdown(result))
    assert "## Each target in each of the 3 repetitions" in text
    me_row = "| `me` / one primary-key SELECT (raw asyncpg) | 0.67 | 0.67 | 0.40 | 0.40 | ≥ 0.50 | **no** |"
    assert me_row in text
    assert repetitions.ratio_cell(me) == "0.67 · 0.67 · 0.40"
    assert "  me / one primary-key SELECT (raw asyncpg): 0.67 / 0.67 / 0.40 (>= 0.50: NO)" in (
        repetitions.console_lines(result)
    )


def test_a_target_that_holds_in_every_repetition_is_met() -> None:
    result = judged([repetition({"select": rate}) for rate in (150.0, 190.0, 160.0)])

    assert result["scenarios"]["me"]["meets_all"] is True
    assert all(line["met"] for line in result["repetitions"]["targets"])


def test_errors_in_a_later_repetition_fail_the_gate() -> None:
    measured = [
        repetition({"select": 150.0}),
        repetition({"select": 150.0}, me=run("me", errors=4)),
        repetition({"select": 150.0}),
    ]

    result = judged(measured)

    assert result["gate_failures"] == ["scenario me (repetition 2): 4 errors, 0 timeouts (status 503 x4)"]
    assert result["scenarios"]["me"]["meets_all"] is False
    assert driver.verdict(result) == 1


def test_the_side_by_side_target_holds_only_in_every_repetition() -> None:
    # pyauth's `me` at 100/s; the plain app at 40/s, then at 60/s: 2.5 times, then 1.67 times.
    measured = [
        repetition({"select": 150.0}, side_by_side=run("side-by-side", good=400)),
        repetition({"select": 150.0}, side_by_side=run("side-by-side", good=600)),
    ]

    result = judged(measured)

    assert result["side_by_side"]["times_each"] == [2.5, 1.67]
    assert result["side_by_side"]["meets_target"] is False
    said = "2.50 · 1.67 \N{MULTIPLICATION SIGN} its req/s (target ≥ 2 in every repetition: **no**)"
    assert said in "\n".join(comparison.markdown(result["side_by_side"]))


def test_one_repetition_reports_as_before() -> None:
    result = judged([repetition({"select": 150.0})])

    assert result["scenarios"]["me"]["ratios"] == [0.667]
    assert result["scenarios"]["me"]["meets_all"] is True
    assert repetitions.markdown(result) == []
    assert repetitions.ratio_cell(result["scenarios"]["me"]) == "0.67"


def test_a_later_repetitions_verify_that_sent_http_requests_fails_the_gate() -> None:
    measured = [repetition({"select": 150.0}), repetition({"select": 150.0})]
    measured[0].verification = verification()
    measured[1].verification = verification(fetches=2)

    result = judged(measured)
    result["verify"] = driver.verification_row(measured[0].verification)
    result["gate_failures"] = driver.gate_failures(result)

    assert result["gate_failures"] == [
        "verify (repetition 2): 2 HTTP requests to pyauth during the measured loop "
        "(none expected once the keys are cached)"
    ]
