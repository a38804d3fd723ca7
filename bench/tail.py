"""Tail latency of `make bench`'s scenarios, open loop (bench/openloop.py), judged against an unloaded
request.

After a scenario's closed-loop run (wrk, its maximum rate), the same requests are sent:
1. one after another on one connection (up to `UNLOADED_REQUESTS`, at most `UNLOADED_SECONDS`): the p50 of
   an unloaded request;
2. at a fixed offered rate of `OFFERED_SHARE` of the closed-loop rate, for the run's duration, each
   request's latency measured from its intended send time (coordinated omission corrected), timeouts in
   the distribution at the timeout.
The target: p99 of (2) at most `MAX_P99_OVER_UNLOADED_P50` times the p50 of (1), with no error and no
timeout (any error or timeout fails the bench, as in the closed-loop runs). The closed-loop percentiles
stay in the report as information only: at saturation they measure the queue the generator keeps full,
and a faster server scores worse on p99/p50.

The same is run on the constant-JSON ceiling, as a check of the generator itself: it shows what the
generator's schedule lag and CPU time per request are at a rate far above any scenario's.
"""

import math
import os
import urllib.parse
from collections.abc import Callable
from typing import Any

from openloop import (
    Chains,
    Fixed,
    Numbered,
    OpenLoopRun,
    Source,
    http_request,
    loop_name,
    open_loop,
    sequential,
)

OFFERED_SHARE = 0.70
MAX_P99_OVER_UNLOADED_P50 = 5.0
UNLOADED_REQUESTS = int(os.environ.get("BENCH_UNLOADED_REQUESTS", "300"))
UNLOADED_SECONDS = float(os.environ.get("BENCH_UNLOADED_SECONDS", "5"))
# The pool of keep-alive connections opened before the schedule starts (`pool_size`); a request finding
# none free waits (its wait counted) while another is opened, up to OPEN_LOOP_MAX_CONNECTIONS.
OPEN_LOOP_CONNECTIONS = int(os.environ.get("BENCH_OPEN_LOOP_CONNECTIONS", "64"))
OPEN_LOOP_MAX_CONNECTIONS = int(os.environ.get("BENCH_OPEN_LOOP_MAX_CONNECTIONS", "256"))
# The scenarios measured open loop (`login-mfa` is not: its TOTP codes are good once per 30-second step).
SCENARIOS = ("me", "me-distinct", "refresh", "login", "register", "jwks")
TIMES = "\N{MULTIPLICATION SIGN}"
# The generator's check: the name `measure` is given for it, and its offered rate, at most
# `OFFERED_SHARE` of the constant-JSON ceiling's closed-loop rate (above what any scenario is offered).
GENERATOR_CHECK = "ceiling: constant JSON"
GENERATOR_CHECK_RATE = float(os.environ.get("BENCH_GENERATOR_CHECK_RATE", "1500"))
# The raw-SELECT ceiling measured the same way as the scenarios, at `OFFERED_SHARE` of its own closed-loop
# rate: no target of its own, but the reference for the tail target (what an app that makes one round trip
# and nothing else gets on this machine with this generator).
SELECT_REFERENCE = "ceiling: one primary-key SELECT"

# A source of requests for one phase ("unloaded", "loaded"): a function of the phase's name.
SourceFactory = Callable[[str], Source]


def offered_rate(closed_loop_rate: float, share: float = OFFERED_SHARE) -> float:
    """The open-loop run's rate: `share` of the closed-loop maximum."""
    return round(closed_loop_rate * share, 1)


def pool_size(rate: float, most: int = OPEN_LOOP_CONNECTIONS) -> int:
    """The connections opened before an open-loop run at `rate`: as many as it sends in half a second,
    at least 4 and at most `most`. Used in turn, each then carries a request at least every half second
    or so, far within uvicorn's 5-second keep-alive timeout: a server closing an idle connection just as
    a request goes out on it would count an error that is the generator's doing."""
    return max(4, min(most, math.ceil(rate / 2)))


def judge(
    unloaded: OpenLoopRun, loaded: OpenLoopRun, max_ratio: float = MAX_P99_OVER_UNLOADED_P50
) -> dict[str, Any]:
    """The verdict of one scenario: the loaded p99 against `max_ratio` times the unloaded p50, both runs clean
    (no errors, no timeouts). Without an unloaded answer there is no target: not met."""
    unloaded_p50 = unloaded.latency_ms.get("p50", 0.0)
    p99 = loaded.latency_ms.get("p99")
    target = round(max_ratio * unloaded_p50, 2)
    ratio = round(p99 / unloaded_p50, 2) if p99 is not None and unloaded_p50 else None
    clean = unloaded.clean and loaded.clean and loaded.scheduled > 0
    return {
        "unloaded_p50_ms": unloaded_p50,
        "p99_ms": p99,
        "target_p99_ms": target,
        "p99_over_unloaded_p50": ratio,
        "target_ratio": max_ratio,
        "clean": clean,
        "meets_tail": bool(clean and ratio is not None and ratio <= max_ratio),
    }


def measure(
    name: str,
    url: str,
    sources: SourceFactory,
    closed_loop_rate: float,
    *,
    seconds: float,
    timeout: float,
    say: Callable[[str], None],
    per_worker: Callable[[], dict[str, int]] | None = None,
) -> dict[str, Any]:
    """The unloaded run and the open-loop run at `OFFERED_SHARE` of `closed_loop_rate` (the generator's
    check, `GENERATOR_CHECK`: at most `GENERATOR_CHECK_RATE`), and the verdict; with `per_worker` (the API's
    requests per worker pid now), also what each worker answered of the open-loop run: each request goes
    to whichever of the pool's connections is free, and each connection stays with one worker."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 80
    unloaded = sequential(
        host,
        port,
        sources("unloaded"),
        count=UNLOADED_REQUESTS,
        max_seconds=UNLOADED_SECONDS,
        timeout=timeout,
    )
    rate = offered_rate(closed_loop_rate)
    if name == GENERATOR_CHECK:
        rate = min(rate, GENERATOR_CHECK_RATE)
    before = per_worker() if per_worker else {}
    loaded = open_loop(
        host,
        port,
        sources("loaded"),
        rate=rate,
        seconds=seconds,
        timeout=timeout,
        max_connections=max(OPEN_LOOP_MAX_CONNECTIONS, OPEN_LOOP_CONNECTIONS),
        initial_connections=pool_size(rate),
    )
    after = per_worker() if per_worker else {}
    answered_by = {pid: total - before.get(pid, 0) for pid, total in sorted(after.items())}
    verdict = judge(unloaded, loaded)
    latency, lag = loaded.latency_ms, loaded.send_lag_ms
    say(
        f"  {name + ' open loop':<22} {rate:>9.1f} req/s offered  p50 {latency.get('p50', 0):>7.2f}  "
        f"p99 {latency.get('p99', 0):>7.2f}  p99.9 {latency.get('p99.9', 0):>7.2f} ms  "
        f"unloaded p50 {verdict['unloaded_p50_ms']:.2f} ms ({unloaded.scheduled} requests)  "
        f"p99 target {verdict['target_p99_ms']:.2f} ms: {'met' if verdict['meets_tail'] else 'MISSED'}  "
        f"errors {loaded.errors + unloaded.errors}  timeouts {loaded.timeouts + unloaded.timeouts}  "
        f"generator lag p99 {lag.get('p99', 0):.2f} ms, {loaded.generator_us_per_request:.0f} us CPU/request"
    )
    if loaded.sample_error or unloaded.sample_error:
        say(f"    first unexpected answer: {loaded.sample_error or unloaded.sample_error}")
    return {
        "url": url,
        "closed_loop_rate": round(closed_loop_rate, 1),
        "offered_share": OFFERED_SHARE,
        "unloaded": unloaded.as_dict(),
        "loaded": loaded.as_dict(),
        "requests_per_worker": answered_by,
        **verdict,
    }


# --- the scenarios' requests (as bench/wrk/*.lua makes them) ---------------------------------------------


def client_address(number: int) -> str:
    """A client address of its own per request (X-Forwarded-For, believed by bench-api), in the upper half
    of 198.18.0.0/16; wrk's scripts count up from its lower end (wrk/common.lua)."""
    n = 32768 + number % 32768
    return f"198.18.{n // 256}.{n % 256}"


def get(host: str, path: str) -> SourceFactory:
    return get_each(host, [path])


def get_each(host: str, paths: list[str]) -> SourceFactory:
    """GET each of `paths` in turn (the raw-SELECT ceiling: `/users/<id>`, as wrk/select.lua asks)."""
    requests = [http_request("GET", path, host, {}) for path in paths]
    return lambda _phase: Fixed(requests)


def bearer(host: str, path: str, tokens: list[str]) -> SourceFactory:
    """GET `path` with each token in turn (`me`, `me-distinct`, the side-by-side app)."""
    requests = [http_request("GET", path, host, {"Authorization": f"Bearer {token}"}) for token in tokens]
    return lambda _phase: Fixed(requests)


def form_post(host: str, path: str, body: str, number: int) -> bytes:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": client_address(number)}
    return http_request("POST", path, host, headers, body.encode())


def login(host: str, emails: list[str], password: str) -> SourceFactory:
    bodies = [
        urllib.parse.urlencode({"grant_type": "password", "username": email, "password": password})
        for email in emails
    ]
    return lambda _phase: Numbered(lambda n: form_post(host, "/auth/token", bodies[n % len(bodies)], n))


def refresh(host: str, chains: list[str]) -> SourceFactory:
    """Both phases spend the same chains: the unloaded run one at a time, the loaded run the rest."""
    source = Chains(
        chains,
        lambda token, n: form_post(
            host,
            "/auth/token",
            urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": token}),
            n,
        ),
    )
    return lambda _phase: source


def register(host: str, run_id: str, password: str) -> SourceFactory:
    """A new account per request, `bench-<run>-ol<phase>-<n>@bench.example` (deleted by the cleanup)."""

    def factory(phase: str) -> Source:
        def make(n: int) -> bytes:
            email = f"bench-{run_id}-ol{phase[0]}-{n}@bench.example"
            headers = {"Content-Type": "application/json", "X-Forwarded-For": client_address(n)}
            body = f'{{"email":"{email}","password":"{password}"}}'.encode()
            return http_request("POST", "/auth/register", host, headers, body)

        return Numbered(make, expected_status=201)

    return factory


# --- the report ------------------------------------------------------------------------------------------


def apply(rows: dict[str, dict[str, Any]], tails: dict[str, dict[str, Any]]) -> None:
    """Put each scenario's open-loop verdict in its row (`meets_tail`; None: not measured open loop)."""
    for scenario, row in rows.items():
        tail = tails.get(scenario)
        row["meets_tail"] = None if tail is None else tail["meets_tail"]
        if tail is not None:
            row["meets_all"] = row["meets_all"] and tail["meets_tail"]


def gate_failures(tails: dict[str, dict[str, Any]]) -> list[str]:
    """Open-loop and unloaded runs with errors or timeouts, or without any expected answer."""
    failures = []
    for name, tail in tails.items():
        for phase in ("unloaded", "loaded"):
            run = tail[phase]
            label = f"open loop {name} ({phase})"
            if run["errors"] or run["timeouts"]:
                kinds = ", ".join(f"{kind} x{n}" for kind, n in run["errors_by_kind"].items())
                failures.append(
                    f"{label}: {run['errors']} errors, {run['timeouts']} timeouts"
                    + (f" ({kinds})" if kinds else "")
                )
            elif not run["good_requests"]:
                failures.append(f"{label}: no expected answer ({run['scheduled']} requests)")
    return failures


def markdown(
    tails: dict[str, dict[str, Any]],
    generator_check: dict[str, Any] | None,
    select_reference: dict[str, Any] | None = None,
) -> list[str]:
    if not tails and generator_check is None and select_reference is None:
        return []
    lines = [
        "",
        "## Tail latency, open loop",
        "",
        f"Each scenario at a fixed offered rate of {OFFERED_SHARE:.0%} of its closed-loop req/s above, "
        "evenly spaced, on a pool of keep-alive connections (bench/openloop.py, Python on "
        f"{loop_name()}); each request's latency runs from its intended send time, so a wait for a "
        "connection or for the generator counts (coordinated omission corrected), and a timed-out request "
        "counts at the timeout. Unloaded: the same requests one after another on one connection. Target: "
        f"p99 ≤ {MAX_P99_OVER_UNLOADED_P50:g} {TIMES} the unloaded p50, no errors, no timeouts. "
        "Generator lag: actual minus intended send time (its p99); CPU: the generator's own per request.",
        "",
        "| scenario | offered req/s | answered req/s | p50 ms | p99 ms | p99.9 ms | max ms | unloaded p50 ms "
        "| p99 target ms | p99 / unloaded p50 | errors | timeouts | generator lag p99 ms | generator µs CPU "
        "| met |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    rows = dict(tails)
    if select_reference is not None:
        rows["raw-SELECT ceiling (reference)"] = select_reference
    if generator_check is not None:
        rows["constant JSON ceiling (generator check)"] = generator_check
    for name, tail in rows.items():
        loaded, latency = tail["loaded"], tail["loaded"]["latency_ms"]
        ratio = tail["p99_over_unloaded_p50"]
        label = name if " " in name else f"`{name}`"
        # The ceilings' rows have no target: they show what the generator and the machine allow.
        met = "—" if name not in tails else "yes" if tail["meets_tail"] else "**no**"
        lines.append(
            f"| {label} | {loaded['offered_rate']:,.1f} | {loaded['answered_rate']:,.1f} "
            f"| {latency.get('p50', 0):.2f} | {latency.get('p99', 0):.2f} | {latency.get('p99.9', 0):.2f} "
            f"| {latency.get('max', 0):.2f} | {tail['unloaded_p50_ms']:.2f} | {tail['target_p99_ms']:.2f} "
            f"| {'—' if ratio is None else format(ratio, '.2f')} "
            f"| {loaded['errors'] + tail['unloaded']['errors']} "
            f"| {loaded['timeouts'] + tail['unloaded']['timeouts']} "
            f"| {loaded['send_lag_ms'].get('p99', 0):.2f} | {loaded['generator_us_per_request']:.0f} "
            f"| {met} |"
        )
    if generator_check is not None:
        loaded = generator_check["loaded"]
        lag = loaded["send_lag_ms"]
        highest = max((tail["loaded"]["offered_rate"] for tail in tails.values()), default=0.0)
        lines += [
            "",
            f"Generator check: on the constant-JSON ceiling at {loaded['offered_rate']:,.0f} req/s offered "
            f"(BENCH_GENERATOR_CHECK_RATE, at most {OFFERED_SHARE:.0%} of its closed-loop rate; the highest "
            f"scenario above: {highest:,.0f}) it got {loaded['answered_rate']:,.0f} req/s answered, sent "
            f"with a lag of {lag.get('p50', 0):.2f} ms p50 / {lag.get('p99', 0):.2f} ms p99 behind its "
            f"schedule, on {loaded['generator_us_per_request']:.0f} µs of its own CPU per request "
            f"({loaded['generator_cpu_seconds']:.2f} s CPU in {loaded['seconds']:g} s): the share of the "
            "cores it takes from the servers, and the floor of what it can measure.",
        ]
    if select_reference is not None:
        lines += ["", select_reference_line(select_reference)]
    return lines


def select_reference_line(reference: dict[str, Any]) -> str:
    """What the raw-SELECT ceiling's own open-loop tail says of the tail target on this machine."""
    loaded, ratio = reference["loaded"], reference["p99_over_unloaded_p50"]
    within = reference["meets_tail"]
    return (
        f"Reference: the raw-SELECT ceiling (one primary-key SELECT, nothing else), measured the same way at "
        f"{OFFERED_SHARE:.0%} of its own closed-loop rate ({loaded['offered_rate']:,.0f} req/s offered): p99 "
        f"{loaded['latency_ms'].get('p99', 0):.2f} ms, "
        f"{'—' if ratio is None else format(ratio, '.1f')} {TIMES} its unloaded p50 of "
        f"{reference['unloaded_p50_ms']:.2f} ms, "
        + ("within" if within else "beyond")
        + f" the {MAX_P99_OVER_UNLOADED_P50:g} {TIMES} the scenarios are held to: what this machine and this "
        "generator allow an app that makes one round trip and does nothing else."
    )
