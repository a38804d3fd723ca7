"""The driver of `make bench`, run in the load-generator container inside the compose network.

It creates the scenarios' accounts and tokens through pyauth's public API (emails
`bench-<run>-…@bench.example`; `bench/run.sh` deletes them afterwards), then drives each scenario and each
ceiling app with wrk for a warm-up and a measured run at the same concurrency, and writes the results as
JSON, Markdown and a PNG chart (gnuplot) to bench/results/. Standard library only (the open-loop
generator, bench/openloop.py, uses uvloop when it is installed).

After its closed-loop run, each scenario of `tail.SCENARIOS` is measured open loop (bench/tail.py): an
unloaded run, then a fixed offered rate of 70 % of its closed-loop rate with latency from each request's
intended send time; its target is p99 <= 5 x the unloaded p50 (the closed-loop percentiles are information
only). Right after `me`, the side-by-side app (bench/sidebyside/, a plain FastAPI + SQLAlchemy `/users/me`
with HS256 tokens the driver signs, comparison.py) runs with the same script and connections.

Each ceiling is measured right before the scenarios it bounds, so that both see the machine in the same
state. Settings come from the environment (bench/run.sh and compose.bench.yaml set them): the URLs,
BENCH_* durations and concurrency, and BENCH_API_SETTINGS (what the running API is configured with).

One scenario takes two requests per unit: `login-mfa`, a password login with a TOTP second factor (the
password grant answered 403 `mfa_required`, then the mfa grant answered 200). Its accounts have TOTP
enrolled through the API (enrol, confirm with a code the driver computes: RFC 6238, standard library).
pyauth accepts each 30-second step's code once per account, so an account logs in at most once per step:
the driver makes enough accounts for the run (`mfa_accounts_needed`, from the argon2id verify ceiling and
`login`'s rate, which bound it), a separate set for the warm-up, waits for the step after the last
confirmation, and hands wrk each account's codes for the steps of the run (wrk/login_mfa.lua spends each
account's steps in order, never one twice). Its rate is completed logins per second, its latency from the
first request to the second answer.

BENCH_SCENARIOS (comma-separated, e.g. `login,login-mfa`) runs only those of `RUNS`, with the ceilings
they are read against; such a partial run writes bench/results/subset.* (not committed) instead of
latest.*.

BENCH_REPETITIONS (3 by default) is how many times the closed-loop runs are measured, one repetition after
the other, each with its ceilings right before the scenarios they bound (bench/repetitions.py): a target is
met only when it holds in every repetition. Each repetition makes fresh accounts and sessions (a
repetition outlasts nothing, not even the 15-minute access tokens); the open-loop runs follow the first.

One scenario is not HTTP: token verification in a resource server (`verify`). The `bench-verify`
container (bench/ceilings/verification.py) runs pyauth-resource against the stack's issuer, pinned to one
core, on an access token the driver signs in for, next to PyJWT alone with the same key (its ceiling), and
counts the library's HTTP requests to pyauth during the measured loop (the gate wants none).

Around each measured run it reads the API's `pyauth_worker_requests_total` from /metrics (the internal
metrics port first, the API port when that does not answer), so the report shows how many requests each
worker process answered (fairness.py names under-fed ones, and checks the argon2id ceiling's threads against
the API's), and the CPU counters of the API's, the database's and the ceilings' containers, for each run's
CPU time per request (cpu.py). `refresh` is read against the raw rotation ceiling
(bench/ceilings/rotation.py), which spends a second set of token chains, and against the raw SELECT.
Exit status: 1 when any run (scenario, either part of the mixed one, or a ceiling) had errors or timeouts;
the ratio, tail and mixed targets are reported, never a reason to fail.
"""

import base64
import hmac
import itertools
import json
import math
import os
import platform
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import comparison
import cpu
import fairness
import openloop
import repetitions
import tail

API_URL = os.environ.get("API_URL", "http://api:8000")
CEILING_JSON_URL = os.environ.get("CEILING_JSON_URL", "http://bench-ceiling-json:8000")
CEILING_SELECT_URL = os.environ.get("CEILING_SELECT_URL", "http://bench-ceiling-select:8000")
CEILING_ARGON2_URL = os.environ.get("CEILING_ARGON2_URL", "http://bench-ceiling-argon2:8000")
CEILING_ROTATION_URL = os.environ.get("CEILING_ROTATION_URL", "http://bench-ceiling-rotation:8000")
VERIFY_URL = os.environ.get("VERIFY_URL", "http://bench-verify:8000")
# The API under test and the argon2id ceiling again, hashing at issue 13's second parameter set (64 MiB,
# t=3, p=4; compose.bench.yaml), for `login-64mib` and `register-64mib`.
API_64MIB_URL = os.environ.get("API_64MIB_URL", "http://bench-api-64mib:8000")
CEILING_ARGON2_64MIB_URL = os.environ.get(
    "CEILING_ARGON2_64MIB_URL", "http://bench-ceiling-argon2-64mib:8000"
)
# The side-by-side app (bench/sidebyside/) and the secret it checks its HS256 tokens with.
SIDEBYSIDE_URL = os.environ.get("SIDEBYSIDE_URL", "http://bench-sidebyside:8000")
SIDEBYSIDE_SECRET = os.environ.get("SIDEBYSIDE_JWT_SECRET", "")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
THREADS = int(os.environ.get("BENCH_THREADS", str(os.cpu_count() or 2)))
WARM_UP = int(os.environ.get("BENCH_WARMUP_SECONDS", "5"))
DURATION = int(os.environ.get("BENCH_DURATION_SECONDS", "15"))
# How many times the closed-loop runs are measured (bench/repetitions.py); issue 13 asks for three.
REPETITIONS = max(1, int(os.environ.get("BENCH_REPETITIONS", "3")))
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT_SECONDS", "30"))
# Each open-loop run of bench/tail.py (0: none).
OPEN_LOOP_SECONDS = int(os.environ.get("BENCH_OPEN_LOOP_SECONDS", str(DURATION)))
ARGON2_SECONDS = int(os.environ.get("BENCH_ARGON2_SECONDS", "10"))
VERIFY_SECONDS = int(os.environ.get("BENCH_VERIFY_SECONDS", "10"))
MIXED_ME_CONNECTIONS = int(os.environ.get("BENCH_MIXED_ME_CONNECTIONS", "16"))
# How long the driver waits for the API and each ceiling to answer before giving up (they have no
# container healthcheck, so that nothing runs in them during the measurement but what is measured).
READY_SECONDS = int(os.environ.get("BENCH_READY_SECONDS", "120"))
# At most this long between a warm-up and its measured run, for the API to answer the warm-up's last requests.
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "30"))
# `me-distinct`'s sessions (see distinct_token_logins), and the access tokens of each: its login's, then
# one per refresh. 512 x 32 = 16,384 tokens sent in turn: more than the API's workers can hold verified
# together (4,096 each, `app.keys.tokens.VERIFIED`), so no request finds its token remembered.
DISTINCT_TOKENS = int(os.environ.get("BENCH_DISTINCT_TOKENS", "512"))
DISTINCT_TOKENS_PER_SESSION = int(os.environ.get("BENCH_DISTINCT_TOKENS_PER_SESSION", "32"))
# Where the API under test serves /metrics, in the order tried: its internal metrics port (METRICS_PORT,
# 9000), then its public port (before /metrics moved, or with METRICS_PORT unset).
METRICS_URLS = os.environ.get(
    "BENCH_METRICS_URLS",
    f"http://{urllib.parse.urlsplit(API_URL).hostname}:9000/metrics {API_URL}/metrics",
).split()
METRICS_64MIB_URLS = os.environ.get(
    "BENCH_METRICS_64MIB_URLS",
    f"http://{urllib.parse.urlsplit(API_64MIB_URL).hostname}:9000/metrics {API_64MIB_URL}/metrics",
).split()
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
RESULTS = Path(os.environ.get("BENCH_RESULTS", "/bench/results"))
WRK_SCRIPTS = Path(__file__).resolve().parent / "wrk"
# The CPU counters of the containers that do the work (BENCH_CONTAINERS, BENCH_CGROUP_ROOT; see cpu.py).
CPU = cpu.CpuMeter.from_environment()
# Passes the password policy: 15+ characters, not common, nothing of the email or the service name.
PASSWORD = "quartz-lantern-meadow-4711"  # noqa: S105 - a throw-away password of throw-away accounts

SCENARIOS = (
    "me",
    "me-distinct",
    "refresh",
    "login",
    "login-mfa",
    "register",
    "login-64mib",
    "register-64mib",
    "jwks",
)
# The scenarios measured on bench-api-64mib, which hashes at 64 MiB, t=3, p=4.
SCENARIOS_64MIB = ("login-64mib", "register-64mib")
# What BENCH_SCENARIOS may name: the scenarios, the resource server's verification, and the mixed run.
RUNS = (*SCENARIOS, "verify", "mixed")
# scenario: (ceiling it is read against, target fraction of it or None)
TARGETS: dict[str, tuple[str, float | None]] = {
    "me": ("select", 0.50),
    # The same work as `me`, each request with a token no worker has verified yet (DISTINCT_TOKENS sessions).
    "me-distinct": ("select", 0.50),
    # refresh's durable work alone, in raw asyncpg (bench/ceilings/rotation.py); see ALSO_TARGETS too.
    "refresh": ("rotation", 0.60),
    # Issue 13's targets (login and register at 0.92 and 0.88 of their argon2id ceilings, the JWKS at 0.60
    # of constant JSON); `login-mfa`'s is pyauth's own.
    "login": ("argon2_verify", 0.92),
    # One argon2id verify per login too, plus the mfa_token, a second request and the TOTP check: a
    # little below `login`'s target.
    "login-mfa": ("argon2_verify", 0.80),
    "register": ("argon2_hash", 0.88),
    # The same two at issue 13's second parameter set, each against the ceiling hashing with it.
    "login-64mib": ("argon2_verify_64mib", 0.92),
    "register-64mib": ("argon2_hash_64mib", 0.88),
    "jwks": ("json", 0.60),
}
# scenario: more (ceiling, target fraction) it is read against, each part of its `meets_all`
ALSO_TARGETS: dict[str, tuple[tuple[str, float], ...]] = {"refresh": (("select", 0.25),)}
CEILING_NAMES = {
    "json": "constant JSON (minimal ASGI)",
    "select": "one primary-key SELECT (raw asyncpg)",
    "rotation": "raw rotation (asyncpg, one statement)",
    "argon2_verify": "argon2id verify",
    "argon2_hash": "argon2id hash",
    "argon2_verify_64mib": "argon2id verify, 64 MiB, t=3, p=4",
    "argon2_hash_64mib": "argon2id hash, 64 MiB, t=3, p=4",
    "pyjwt_verify": "PyJWT decode alone, one core",
}
# The library's verifications per core-second over PyJWT's alone, on the same token, key and core: what
# its own checks (header, `typ`, key lookup, times, typed claims) may cost. Issue 13's table asks ≥ 0.8 (issue
# 11, which added the scenario, had set 0.75).
VERIFY_TARGET = 0.80
TIMES = "\N{MULTIPLICATION SIGN}"
# TOTP as pyauth enrols it (app/mfa/totp.py): RFC 6238, HMAC-SHA-1, 30-second steps, 6 digits.
TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
# `login-mfa`'s accounts: room above the rate bound, for the threads' uneven shares and for a ceiling measured
# on a busy machine a little below what the API then does.
MFA_ACCOUNTS_SPARE = 1.5


def say(message: str) -> None:
    print(message, flush=True)


# --- HTTP for the setup --------------------------------------------------------------------------------


_setup_addresses = itertools.count(1)


def http(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    bearer: str | None = None,
    timeout: float = 30,
) -> Any:
    """One setup request, from a client address of its own (see wrk/common.lua), in 198.19.0.0/16."""
    n = next(_setup_addresses) % 65536
    data, headers = None, {"X-Forwarded-For": f"198.19.{n // 256}.{n % 256}"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URLs from our config
        return json.loads(response.read() or b"null")


def wait_until_answering(url: str, *, any_status: bool = False, seconds: float = READY_SECONDS) -> None:
    """Poll `url` until it answers (any HTTP status with `any_status`, else a success), at most `seconds`:
    the one readiness check of the API and the ceilings before the measurement."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310
            return
        except urllib.error.HTTPError:
            if any_status:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            service = urllib.parse.urlsplit(url).hostname
            raise SystemExit(
                f"bench: {url} did not answer within {seconds:g} s (BENCH_READY_SECONDS): is {service} "
                f"up? See `docker compose logs {service}`"
            )
        time.sleep(0.5)


def parallel(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 16) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


@dataclass
class Fixtures:
    """What the scenarios need, made through the public API."""

    run_id: str
    emails: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    access_tokens: list[str] = field(default_factory=list)
    # `me-distinct`'s sessions, and their tokens: every session's first, then every session's second, ...
    # (empty unless it runs)
    distinct_sessions: int = 0
    distinct_tokens: list[str] = field(default_factory=list)
    # `refresh`'s token chains: "warm-up" and "measured", and "ceiling-warm-up" and "ceiling-measured"
    # for the rotation ceiling when it runs
    refresh_chains: dict[str, list[str]] = field(default_factory=dict)
    # `login-64mib`'s accounts, registered through bench-api-64mib (so hashed at its parameters; empty
    # unless it runs)
    emails_64mib: list[str] = field(default_factory=list)


def distinct_token_logins(emails: list[str], count: int) -> list[str]:
    """Whose password login opens each of `me-distinct`'s `count` sessions: the accounts in turn, so each
    account holds about count / len(emails) of them (each login opens a session of its own)."""
    return [emails[i % len(emails)] for i in range(count)]


def sign_in(email: str) -> dict[str, Any]:
    """A password login of a bench account: its token response."""
    form = {"grant_type": "password", "username": email, "password": PASSWORD}
    tokens: dict[str, Any] = http("POST", f"{API_URL}/auth/token", form=form)
    return tokens


def session_access_tokens(login: dict[str, Any], count: int) -> list[str]:
    """`count` access tokens of one session: its login's, then one per refresh (each spends the last
    refresh token)."""
    access, refresh = [login["access_token"]], login["refresh_token"]
    while len(access) < count:
        form = {"grant_type": "refresh_token", "refresh_token": refresh}
        tokens = http("POST", f"{API_URL}/auth/token", form=form)
        access.append(tokens["access_token"])
        refresh = tokens["refresh_token"]
    return access


def interleaved(per_session: list[list[str]]) -> list[str]:
    """Every session's first token, then every session's second, ...: a session comes back after all the
    others, a token after all the tokens."""
    return [tokens[index] for index in range(max(map(len, per_session), default=0)) for tokens in per_session]


def register(email: str, api_url: str = API_URL) -> str:
    """Register a bench account through the API at `api_url`: its user id."""
    user = http("POST", f"{api_url}/auth/register", json_body={"email": email, "password": PASSWORD})
    return str(user["id"])


def make_fixtures(
    run_id: str,
    distinct_sessions: int = 0,
    rotation_ceiling: bool = False,
    open_loop_chains: bool = False,
    login_64mib: bool = False,
) -> Fixtures:
    fixtures = Fixtures(run_id, distinct_sessions=distinct_sessions)
    fixtures.emails = [f"bench-{run_id}-u{i}@bench.example" for i in range(CONNECTIONS)]
    fixtures.user_ids = parallel(register, fixtures.emails)
    if login_64mib:
        fixtures.emails_64mib = [f"bench-{run_id}-s{i}@bench.example" for i in range(CONNECTIONS)]
        parallel(lambda email: register(email, API_64MIB_URL), fixtures.emails_64mib)
    # One session per connection for `me`; for `refresh` one token chain per connection, and one spare
    # per wrk thread, for the warm-up and again (fresh chains) for the measured run; as many again for
    # the rotation ceiling, which spends pyauth's own tokens; and with `open_loop_chains` a set for the
    # open-loop run (bench/tail.py).
    chains = CONNECTIONS + THREADS
    chain_sets = (
        ["warm-up", "measured"]
        + (["ceiling-warm-up", "ceiling-measured"] if rotation_ceiling else [])
        + (["open-loop"] if open_loop_chains else [])
    )
    logins = parallel(
        sign_in,
        [fixtures.emails[i % CONNECTIONS] for i in range(CONNECTIONS + len(chain_sets) * chains)],
    )
    fixtures.access_tokens = [t["access_token"] for t in logins[:CONNECTIONS]]
    fixtures.refresh_chains = {
        name: [t["refresh_token"] for t in logins[CONNECTIONS + i * chains : CONNECTIONS + (i + 1) * chains]]
        for i, name in enumerate(chain_sets)
    }
    if distinct_sessions:
        distinct = parallel(sign_in, distinct_token_logins(fixtures.emails, distinct_sessions))
        per_session = parallel(
            lambda login: session_access_tokens(login, DISTINCT_TOKENS_PER_SESSION), distinct
        )
        fixtures.distinct_tokens = interleaved(per_session)
        say(f"bench: me-distinct sends {len(fixtures.distinct_tokens)} access tokens in turn")
    return fixtures


# --- login-mfa: accounts with TOTP ---------------------------------------------------------------------


def selected_runs(value: str) -> tuple[str, ...]:
    """BENCH_SCENARIOS, comma-separated names of `RUNS` (empty: all of them), in the bench's order."""
    names = {name.strip() for name in value.split(",") if name.strip()}
    if unknown := names - set(RUNS):
        raise SystemExit(
            f"bench: BENCH_SCENARIOS names no such run: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(RUNS)})"
        )
    return tuple(name for name in RUNS if not names or name in names)


def totp_step(unix_seconds: float) -> int:
    """The RFC 6238 time step `unix_seconds` falls in."""
    return int(unix_seconds // TOTP_STEP_SECONDS)


def totp_code(secret: str, step: int) -> str:
    """The code of `step` for a base32 secret (RFC 6238 on RFC 4226's dynamic truncation), as pyotp and
    authenticator apps compute it."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), "sha1").digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def mfa_accounts_needed(logins_per_second: float, seconds: float, connections: int) -> int:
    """Accounts for a `login-mfa` run of `seconds` at up to `logins_per_second`: each logs in at most
    once per TOTP step, and the run covers at most min(seconds, one step) of any step; plus those of
    the logins in flight across a step's end (two per connection: one sent, one queued for its second
    request), and `MFA_ACCOUNTS_SPARE` for the threads' uneven shares."""
    per_step = logins_per_second * min(seconds, TOTP_STEP_SECONDS) * MFA_ACCOUNTS_SPARE
    return math.ceil(per_step) + 2 * connections


@dataclass(frozen=True)
class MfaAccount:
    """A bench account with TOTP enrolled, and the step its confirmation spent."""

    email: str
    secret: str
    last_step: int


def mfa_data(accounts: list[MfaAccount], first_step: int, steps: int) -> list[str]:
    """wrk/login_mfa.lua's data: `steps <first>`, then per account its email, last spent step and the
    codes of `steps` steps from `first_step` on."""
    return [f"steps {first_step}"] + [
        " ".join(
            [
                account.email,
                str(account.last_step),
                *(totp_code(account.secret, step) for step in range(first_step, first_step + steps)),
            ]
        )
        for account in accounts
    ]


def make_mfa_accounts(run_id: str, label: str, count: int) -> list[MfaAccount]:
    """`count` accounts `bench-<run>-mfa<label><i>@bench.example`, each registered, signed in, and with
    TOTP enrolled and confirmed through the API."""

    def enrol(email: str) -> MfaAccount:
        http("POST", f"{API_URL}/auth/register", json_body={"email": email, "password": PASSWORD})
        form = {"grant_type": "password", "username": email, "password": PASSWORD}
        bearer = http("POST", f"{API_URL}/auth/token", form=form)["access_token"]
        secret = http("POST", f"{API_URL}/users/me/mfa/totp", bearer=bearer)["secret"]
        step = totp_step(time.time())
        code = {"code": totp_code(secret, step)}
        http("POST", f"{API_URL}/users/me/mfa/totp/confirm", json_body=code, bearer=bearer)
        return MfaAccount(email, secret, step)

    return parallel(enrol, [f"bench-{run_id}-mfa{label}{i}@bench.example" for i in range(count)])


# --- requests per worker ---------------------------------------------------------------------------------

WORKER_SAMPLE = re.compile(r'^pyauth_worker_requests_total\{worker="(\d+)"\} ([0-9.e+]+)$', re.MULTILINE)


# What one reading of the API's /metrics adds to its workers' request counts: itself.
OWN_READING = 1


class WorkerCounts:
    """Reads `pyauth_worker_requests_total` of the API under test: requests answered per worker pid."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.url: str | None = None  # the first that answered, then kept

    def read(self) -> dict[str, int]:
        """Per-worker totals now; empty when no metrics URL answers or the metric is not there."""
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"} if METRICS_TOKEN else {}
        for url in [self.url] if self.url else self.urls:
            request = urllib.request.Request(url, headers=headers)  # noqa: S310 - URLs from our config
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    text = response.read().decode()
            except OSError:
                continue
            self.url = url
            return {pid: int(float(value)) for pid, value in WORKER_SAMPLE.findall(text)}
        return {}

    def wait_until_answered(self, settle: float = 0.5, bound: float = DRAIN_SECONDS) -> None:
        """Wait until the API has answered what the run before left in flight: wrk closes its connections
        when it stops, but the API still finishes their requests (a login's hash, queued behind others).
        Those used to run into the next run: into a measured run, on top of its own 64, where they
        overflowed the hash queue (503), and into a ceiling, whose cores they shared. Every run against
        the shared cores (a scenario's warm-up and measured run, a ceiling, an open-loop run, the mixed
        run) starts after this. Done when the workers' counts moved by no more than the reading itself
        for `settle` seconds, or after `bound`.

        Each reading is a request the API answers, and the worker that answers it counts it: a quiet API's
        total moves by one between two readings, never by none (with `now == last` every wait ran to its
        bound: 30 s before every measured run)."""
        deadline = time.monotonic() + bound
        last = self.read()
        while time.monotonic() < deadline:
            time.sleep(settle)
            now = self.read()
            if sum(now.values()) - sum(last.values()) <= OWN_READING:
                return
            last = now

    @staticmethod
    def between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
        """Requests each worker answered between two readings (a worker seen only after: all of its)."""
        return {pid: total - before.get(pid, 0) for pid, total in sorted(after.items())}


def worker_spread(per_worker: dict[str, int]) -> float | None:
    """The busiest worker's requests over the least busy one's: 1.0 is an even spread."""
    counts = list(per_worker.values())
    if len(counts) < 2:
        return None
    return round(max(counts) / min(counts), 2) if min(counts) else float("inf")


# --- wrk -----------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured wrk run."""

    name: str
    url: str
    connections: int
    threads: int
    seconds: float
    requests: int
    good: int
    errors: int
    timeouts: int
    errors_by_kind: dict[str, int]
    latency_ms: dict[str, float]
    sample_error: str | None
    # API worker pid -> requests it answered during the run (empty for the ceilings, or without /metrics)
    per_worker: dict[str, int] = field(default_factory=dict)
    # What `good`, the rate and the latency count: one request, or (`login-mfa`) a login of two requests.
    unit: str = "request"
    # Answers later than wrk's timeout: counted as timeouts, and in the percentiles at the timeout.
    late: int = 0
    # container label (cpu.LABELS) -> its CPU milliseconds per request during the run (empty: unknown)
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.timeouts == 0

    @property
    def rate(self) -> float:
        """Answers with the expected status (completed units: logins of `login-mfa`), per second."""
        return self.good / self.seconds

    @property
    def tail(self) -> float:
        """p99 over p50."""
        return self.latency_ms["p99"] / self.latency_ms["p50"] if self.latency_ms["p50"] else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "connections": self.connections,
            "threads": self.threads,
            "seconds": round(self.seconds, 3),
            "unit": self.unit,
            "requests": self.requests,
            "good_requests": self.good,
            "requests_per_second": round(self.rate, 1),
            "errors": self.errors,
            "timeouts": self.timeouts,
            "late_answers": self.late,
            "errors_by_kind": self.errors_by_kind,
            "sample_error": self.sample_error,
            "latency_ms": self.latency_ms,
            "p99_over_p50": round(self.tail, 2),
            "requests_per_worker": self.per_worker,
            "worker_spread": worker_spread(self.per_worker),
            "cpu_ms_per_request": self.cpu_ms,
        }


class Wrk:
    def __init__(self, work: Path, run_id: str) -> None:
        self.work = work
        self.run_id = run_id
        self.counter = 0

    def start(
        self,
        name: str,
        script: str,
        url: str,
        *,
        connections: int,
        seconds: int,
        data: Iterable[str] | None = None,
        threads: int | None = None,
    ) -> Callable[[], Run]:
        """Start wrk; the returned function waits for it and reads its numbers."""
        self.counter += 1
        stem = f"{self.counter:02d}-{name}"
        threads = min(threads or THREADS, connections)
        env = {
            **os.environ,
            "BENCH_OUT": str(self.work / f"{stem}.json"),
            "BENCH_THREADS": str(threads),
            "BENCH_RUN": f"{self.run_id}-{self.counter}",
            "BENCH_PASSWORD": PASSWORD,
        }
        if data is not None:
            data_file = self.work / f"{stem}.txt"
            data_file.write_text("\n".join(data) + "\n")
            env["BENCH_DATA"] = str(data_file)
        command = [
            "wrk",
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={seconds}s",
            f"--timeout={TIMEOUT}s",
            f"--script={WRK_SCRIPTS / script}",
            url,
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def finish() -> Run:
            output, _ = process.communicate(timeout=seconds + 60)
            if process.returncode != 0:
                raise SystemExit(f"bench: wrk failed for {name}:\n{output.decode(errors='replace')}")
            return self._read(name, url, connections, threads, self.work / f"{stem}.json")

        return finish

    def run(self, name: str, script: str, url: str, **kwargs: Any) -> Run:
        return self.start(name, script, url, **kwargs)()

    @staticmethod
    def _read(name: str, url: str, connections: int, threads: int, path: Path) -> Run:
        raw = json.loads(path.read_text())
        errors = raw["errors"]
        socket_errors = errors["connect"] + errors["read"] + errors["write"]
        percentiles = raw["latency_us"]["percentiles"]
        latency = {f"p{key.removesuffix('.0')}": round(value / 1000, 2) for key, value in percentiles.items()}
        latency["mean"] = round(raw["latency_us"]["mean"] / 1000, 2)
        latency["max"] = round(raw["latency_us"]["max"] / 1000, 2)
        by_kind = {
            f"status {kind}" if kind.isdigit() else kind: count
            for kind, count in raw["unexpected_by_status"].items()
        }
        by_kind.update({kind: errors[kind] for kind in ("connect", "read", "write") if errors[kind]})
        late = 0
        if raw.get("histogram_us") is not None:
            histogram = [(value, count) for value, count in raw["histogram_us"]]
            late = max(0, raw["requests"] - sum(count for _, count in histogram))
            latency.update(percentiles_with_late(histogram, late, TIMEOUT * 1_000_000))
        good, unit = raw["requests"] - raw["unexpected"], "request"
        if raw.get("completed") is not None:  # a unit of several requests (wrk/login_mfa.lua)
            good, unit = raw["completed"], "login"
            latency = unit_latency(raw.get("unit_latency_us"))
        return Run(
            name=name,
            url=url,
            connections=connections,
            threads=threads,
            seconds=raw["duration_us"] / 1e6,
            requests=raw["requests"],
            good=good,
            errors=raw["unexpected"] + socket_errors,
            timeouts=errors["timeout"],
            errors_by_kind=by_kind,
            latency_ms=latency,
            sample_error=raw["sample"],
            unit=unit,
            late=late,
        )


PERCENTILES = (50, 75, 90, 95, 99, 99.9)


def percentiles_with_late(histogram: list[tuple[int, int]], late: int, timeout_us: int) -> dict[str, float]:
    """Nearest-rank percentiles, in ms, of the answers in wrk's histogram (value in microseconds, count)
    and of `late` answers more, each counted at `timeout_us`: wrk leaves an answer later than its timeout
    out of its histogram, which would make a run's tail look better the more of its requests timed out.
    A percentile equal to the timeout reads "at least the timeout"; `max` too, when any answer was late."""
    recorded = sum(count for _, count in histogram)
    total = recorded + late
    if not total:
        return {}
    ordered = sorted(histogram)
    result = {}
    for p in PERCENTILES:
        # The rank rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point, ceiling 1000.
        rank = max(1, math.ceil(round(p * total / 100, 6)))
        value, seen = timeout_us, 0
        if rank <= recorded:
            for value, count in ordered:  # noqa: B007 - the loop leaves `value` at the rank's
                seen += count
                if seen >= rank:
                    break
        result[f"p{p:g}"] = round(value / 1000, 2)
    if late:
        result["max"] = round(timeout_us / 1000, 2)
    return result


def unit_latency(raw: dict[str, Any] | None) -> dict[str, float]:
    """The latency of completed units, in ms, from what common.lua's done() wrote in microseconds (zeros
    when none completed)."""
    if not raw:
        return {key: 0.0 for key in ("p50", "p75", "p90", "p95", "p99", "p99.9", "mean", "max")}
    latency = {
        f"p{key.removesuffix('.0')}": round(value / 1000, 2) for key, value in raw["percentiles"].items()
    }
    latency["mean"] = round(raw["mean"] / 1000, 2)
    latency["max"] = round(raw["max"] / 1000, 2)
    return latency


def measure(
    wrk: Wrk,
    name: str,
    script: str,
    url: str,
    workers: WorkerCounts | None = None,
    cpu_labels: tuple[str, ...] = ("api", "db"),
    settle: WorkerCounts | None = None,
    **kwargs: Any,
) -> Run:
    """A warm-up run, then the measured one, with the same settings; with `workers`, the requests each
    API worker answered during the measured run; and each container's CPU time per request (`CPU`),
    those of `cpu_labels` printed. It starts once the API under test (`workers`, or for a ceiling
    `settle`) has answered what the run before left in flight."""
    warm_up_data = kwargs.pop("warm_up_data", None)
    data = kwargs.get("data")
    quiet = workers or settle
    if quiet:
        quiet.wait_until_answered()
    wrk.run(
        f"{name}-warm-up",
        script,
        url,
        seconds=WARM_UP,
        **{**kwargs, "data": warm_up_data or data},
    )
    if workers:
        workers.wait_until_answered()
    before = workers.read() if workers else {}
    cpu_before = CPU.read()
    run = wrk.run(name, script, url, seconds=DURATION, **kwargs)
    run.cpu_ms = cpu.per_request_ms(cpu_before, CPU.read(), run.requests)
    if workers:
        run.per_worker = WorkerCounts.between(before, workers.read())
    say(
        f"  {name:<22} {run.rate:>9.1f} req/s  p50 {run.latency_ms['p50']:>8.2f} ms  "
        f"p99 {run.latency_ms['p99']:>8.2f} ms  errors {run.errors}  timeouts {run.timeouts}"
        + (f"  per worker {show_workers(run.per_worker)}" if run.per_worker else "")
    )
    if run.cpu_ms:
        say(f"    CPU per request: {cpu.console(run.cpu_ms, cpu_labels)}")
    if run.sample_error:
        say(f"    first unexpected answer: {run.sample_error}")
    return run


# --- the report ----------------------------------------------------------------------------------------


def verdicts(runs: dict[str, Run], ceilings: dict[str, float]) -> dict[str, dict[str, Any]]:
    rows = {}
    for scenario in (name for name in SCENARIOS if name in runs):
        run = runs[scenario]
        ceiling_key, target = TARGETS[scenario]
        ratio = run.rate / ceilings[ceiling_key] if ceilings[ceiling_key] else 0.0
        clean = run.errors == 0 and run.timeouts == 0
        also = also_ratios(scenario, run.rate, ceilings)
        rows[scenario] = {
            **run.as_dict(),
            "ceiling": ceiling_key,
            "ceiling_per_second": round(ceilings[ceiling_key], 1),
            "ratio": round(ratio, 3),
            "target_ratio": target,
            "meets_ratio": None if target is None else ratio >= target,
            "meets_errors": clean,
            # The open-loop tail's verdict (`tail.apply`); the closed-loop p99/p50 is no target.
            "meets_tail": None,
            "also": also,
            "meets_all": clean
            and (target is None or ratio >= target)
            and all(other["meets_ratio"] for other in also),
        }
    return rows


def also_ratios(scenario: str, rate: float, ceilings: dict[str, float]) -> list[dict[str, Any]]:
    """The scenario's rate over each of its `ALSO_TARGETS` ceilings measured in this run, with its target."""
    return [
        {
            "ceiling": key,
            "ceiling_per_second": round(ceilings[key], 1),
            "ratio": round(rate / ceilings[key], 3) if ceilings[key] else 0.0,
            "target_ratio": target,
            "meets_ratio": bool(ceilings[key]) and rate / ceilings[key] >= target,
        }
        for key, target in ALSO_TARGETS.get(scenario, ())
        if key in ceilings
    ]


def also_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    """`refresh` is also 0.02 of one primary-key SELECT (raw asyncpg) (4,321.0/s; target ≥ 0.25: no)."""
    return [
        f"`{scenario}` is also {repetitions.ratio_cell(other)} of {CEILING_NAMES[other['ceiling']]} "
        f"({other['ceiling_per_second']:,.1f}/s; target ≥ {other['target_ratio']:.2f}: "
        f"{mark(other['meets_ratio'])})."
        for scenario, row in rows.items()
        for other in row.get("also", [])
    ]


def show_workers(per_worker: dict[str, int]) -> str:
    """`1,204 / 1,198 (1.01)`: each worker's requests, then the busiest over the least busy."""
    if not per_worker:
        return "—"
    spread = worker_spread(per_worker)
    counts = " / ".join(f"{count:,}" for count in per_worker.values())
    return counts if spread is None else f"{counts} ({spread:.2f})"


def gate_failures(report: dict[str, Any]) -> list[str]:
    """What fails `make bench`: any measured run, of a scenario, the mixed one, a ceiling, the
    side-by-side app, or an open-loop or unloaded run (bench/tail.py), with errors or timeouts, or with no
    expected answer at all (wrk counts a timeout when an answer comes later than it: a run whose every
    request outlasts the run shows neither); and a `verify` run that could not be measured or whose
    library sent any HTTP request to pyauth during its measured loop. The ratio, tail, side-by-side and
    mixed targets are a report only: they depend on the machine."""
    runs = [(f"scenario {name}", row) for name, row in report["scenarios"].items()]
    if "mixed" in report:
        runs += [(f"mixed {part}", report["mixed"][part]) for part in ("login", "me")]
    runs += [(f"ceiling {name}", row) for name, row in report["ceilings"].items() if "errors" in row]
    failures = []
    if "side_by_side" in report:
        runs.append(("side by side", report["side_by_side"]["side_by_side"]))
    runs += repetitions.gate_runs(report)
    verifies = [("verify", report["verify"])] if "verify" in report else []
    for label, verify in verifies + repetitions.other_verifies(report):
        if "error" in verify:
            failures.append(f"{label}: no measurement ({verify['error']})")
        elif verify["fetches_during_loop"]:
            failures.append(
                f"{label}: {verify['fetches_during_loop']} HTTP requests to pyauth during the measured loop "
                "(none expected once the keys are cached)"
            )
        elif not verify["library"]["verifications"]:
            failures.append(f"{label}: no verification in the measured loop")
    for label, row in runs:
        if row["errors"] or row["timeouts"]:
            kinds = ", ".join(f"{kind} x{n}" for kind, n in row["errors_by_kind"].items())
            failures.append(
                f"{label}: {row['errors']} errors, {row['timeouts']} timeouts"
                + (f" ({kinds})" if kinds else "")
            )
        elif not row["good_requests"]:
            failures.append(
                f"{label}: no expected answer in {row['seconds']:g} s ({row['requests']} answers)"
            )
    return failures + tail.gate_failures(report.get("tail", {}))


def mark(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def markdown(report: dict[str, Any], chart_name: str = "latest.png") -> str:
    rows = report["scenarios"]
    ceilings = report["ceilings"]
    config = report["config"]
    api = report["api_settings"]
    load = report["machine"]["load_average_1m"]
    lines = [
        "# pyauth benchmark",
        "",
        *(
            [f"Partial run: {', '.join(report['runs'])} only (BENCH_SCENARIOS).", ""]
            if report.get("runs") and tuple(report["runs"]) != RUNS
            else []
        ),
        f"{report['finished_at']} · commit {report['git']} · {report['machine']['cpus']} cores "
        f"({report['machine']['cpu_model']}) · {config['connections']} connections, wrk "
        f"{config['threads']} threads, {config['warm_up_seconds']} s warm-up + "
        f"{config['duration_seconds']} s measured per run, {config['timeout_seconds']} s timeout, "
        f"{config.get('repetitions', 1)} repetition(s) · "
        f"host load average {load['start']} at the start, {load['end']} at the end (1 min; "
        f"{report['machine']['cpus']} = every core busy)",
        "",
        f"API: {api.get('api_workers')} uvicorn workers (uvloop, httptools); per worker a database pool of "
        f"{api.get('db_pool_size')} + {api.get('db_max_overflow')} overflow; {hashing_line(api)}; "
        "argon2id "
        f"m={api.get('argon2_memory_kib')} KiB, t={api.get('argon2_time_cost')}, "
        f"p={api.get('argon2_parallelism')}.",
        *api_64mib_line(report, rows),
        "",
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | p99/p50 | errors | timeouts | ceiling "
        "| ceiling req/s | ratio (each repetition) | target | met |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|:-:|",
    ]
    for scenario, row in rows.items():
        latency = row["latency_ms"]
        target = row["target_ratio"]
        lines.append(
            f"| `{scenario}` | {row['requests_per_second']:,.1f} | {latency['p50']:.2f} "
            f"| {latency['p95']:.2f} | {latency['p99']:.2f} | {row['p99_over_p50']:.2f} | {row['errors']} "
            f"| {row['timeouts']} "
            f"| {CEILING_NAMES[row['ceiling']]} | {row['ceiling_per_second']:,.1f} "
            f"| {repetitions.ratio_cell(row)} "
            f"| {'≥ ' + format(target, '.2f') if target is not None else '—'} | {mark(row['meets_all'])} |"
        )
    also = also_lines(rows)
    lines += [
        *(["", *also] if also else []),
        "",
        "Targets: the ratio in every repetition (the other columns are the first repetition's), zero errors "
        "and zero timeouts in every run, and the open-loop tail below (`met` includes it where measured). "
        "The percentiles here are closed loop, at saturation: information only (a faster "
        "server queues more requests behind each, so p99/p50 is no target). Errors are answers with another "
        "status than the scenario's (200; 201 for `register`; for `login-mfa` 403 `mfa_required`, then "
        "200) and socket errors. Percentiles count every answer later "
        f"than the {config['timeout_seconds']} s timeout (which wrk leaves out of its own) at the timeout: a "
        "percentile equal to it reads: at least the timeout. wrk's `timeouts` also counts, every 2 s, each "
        "request still unanswered past the timeout, so it is not a count of requests; any is a failure.",
        *(
            [
                "",
                "`login-mfa` counts logins, not requests: a login is the password grant (answered 403 "
                "`mfa_required` with an mfa_token) and the mfa grant with a TOTP code (answered 200), and "
                "counts once both succeeded; its req/s are completed logins per second "
                f"({rows['login-mfa']['requests']:,} requests for {rows['login-mfa']['good_requests']:,} "
                "logins), its latency runs from the first request to the second answer.",
            ]
            if "login-mfa" in rows
            else []
        ),
        *repetitions.markdown(report),
        *(verification_markdown(report["verify"]) if "verify" in report else []),
        "",
        "## Ceilings (same run, same cores)",
        "",
        "| ceiling | per second | p50 ms | p99 ms | how |",
        "|---|--:|--:|--:|---|",
    ]
    for key, ceiling in ceilings.items():
        latency = ceiling.get("latency_ms")
        p50 = f"{latency['p50']:.2f}" if latency else "—"
        p99 = f"{latency['p99']:.2f}" if latency else "—"
        per_second = ceiling["per_second"]
        lines.append(f"| {CEILING_NAMES[key]} | {per_second:,.1f} | {p50} | {p99} | {ceiling['how']} |")
    threads = fairness.argon2_threads(ceilings, api)
    if threads is not None:
        lines += ["", fairness.argon2_threads_line(threads)]
    lines += tail.markdown(
        report.get("tail", {}),
        report.get("open_loop_generator_check"),
        report.get("open_loop_select_ceiling"),
    )
    if "side_by_side" in report:
        lines += comparison.markdown(report["side_by_side"])
    if "mixed" in report:
        lines += mixed_markdown(report["mixed"], rows.get("me"))
    lines += [
        "",
        "## Requests per API worker",
        "",
        "Requests each uvicorn worker answered during the measured run (`pyauth_worker_requests_total`), "
        "and the busiest over the least busy (1.00: an even spread). Open loop: of the loaded run alone, "
        "whose requests go to whichever connection of its pool is free (a few, at a low rate).",
        "",
        "| run | per worker (spread) |",
        "|---|---|",
    ]
    for scenario, row in rows.items():
        lines.append(f"| `{scenario}` | {show_workers(row['requests_per_worker'])} |")
    if "mixed" in report:
        lines.append(f"| mixed (`login` + `me`) | {show_workers(report['mixed']['requests_per_worker'])} |")
    for scenario, measured in report.get("tail", {}).items():
        if measured.get("requests_per_worker"):
            lines.append(f"| `{scenario}` open loop | {show_workers(measured['requests_per_worker'])} |")
    per_worker_runs = {name: row["requests_per_worker"] for name, row in rows.items()}
    if "mixed" in report:
        per_worker_runs["mixed"] = report["mixed"]["requests_per_worker"]
    fed = fairness.workers_lines(per_worker_runs, api.get("api_workers"))
    lines += [*(["", *fed] if fed else []), *cpu.markdown(report, CEILING_NAMES)]
    lines += [
        "",
        f"Gate: {'passed, no run had errors or timeouts' if not report['gate_failures'] else 'FAILED: '}"
        + "; ".join(report["gate_failures"]),
        "",
        f"![latency percentiles and throughput per scenario]({chart_name})",
        "",
    ]
    return "\n".join(lines)


def hashing_line(api: dict[str, Any]) -> str:
    """Where the API hashes: one pool in its parent process, shared by its workers (API_WORKERS > 1), or
    the one worker's own threads."""
    workers, per_worker = api.get("api_workers"), api.get("hash_threads_per_worker")
    nice = api.get("hash_threads_nice")
    if isinstance(workers, int) and isinstance(per_worker, int) and workers > 1:
        return (
            f"password hashing on {workers * per_worker} thread(s) (nice {nice}) in one pool the workers "
            f"share ({workers} {fairness.TIMES} {per_worker})"
        )
    return f"{per_worker} hashing thread(s) (nice {nice})"


def api_64mib_line(report: dict[str, Any], rows: dict[str, Any]) -> list[str]:
    """The header's line on the API of `SCENARIOS_64MIB`, where any of them ran."""
    measured = [f"`{name}`" for name in SCENARIOS_64MIB if name in rows]
    if not measured:
        return []
    api = report.get("api_64mib_settings", {})
    return [
        "",
        f"{' and '.join(measured)}: the same API and settings (bench-api-64mib), but argon2id "
        f"m={api.get('argon2_memory_kib')} KiB, t={api.get('argon2_time_cost')}, "
        f"p={api.get('argon2_parallelism')}, the second parameter set of issue 13; their accounts were "
        "registered through it, and their ceilings hash with the same parameters.",
    ]


def mixed_markdown(mixed: dict[str, Any], me_alone: dict[str, Any] | None) -> list[str]:
    lines = [
        "",
        "## Mixed: token checks during a login flood",
        "",
        f"`login` at {mixed['login']['connections']} connections and `me` at {mixed['me']['connections']} "
        "connections, at the same time.",
        "",
        "| part | req/s | p50 ms | p95 ms | p99 ms | p99/p50 | errors | timeouts | ceiling | ratio |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for part in ("login", "me"):
        run = mixed[part]
        latency = run["latency_ms"]
        ceiling = run.get("ceiling")
        ratio = run.get("ratio")
        lines.append(
            f"| `{part}` | {run['requests_per_second']:,.1f} | {latency['p50']:.2f} | {latency['p95']:.2f} "
            f"| {latency['p99']:.2f} | {run['p99_over_p50']:.2f} | {run['errors']} | {run['timeouts']} "
            f"| {CEILING_NAMES[ceiling] if ceiling else '—'} "
            f"| {'not measured' if ratio is None else format(ratio, '.2f')} |"
        )
    me_solo = me_alone["latency_ms"]["p50"] if me_alone else 0.0
    lines += [
        "",
        "Judged on both parts: the target is met when neither part had an error or a timeout "
        f"(met: {mark(mixed['meets_target'])}), and an error or timeout of either part also fails the gate. "
        "Both parts run closed loop at saturation, so their p99/p50 is information, not a target (a faster "
        "`me` queues more of its requests behind each and scores worse). Each part's ratio is to the "
        "ceiling it is read against alone"
        + (
            f"; `me`'s p99 under the flood is {mixed['me']['latency_ms']['p99'] / me_solo:.2f} {TIMES} the "
            f"p50 of `me` alone at {CONNECTIONS} connections."
            if me_solo
            else "."
        ),
    ]
    return lines


def chart(report: dict[str, Any], work: Path, output: Path) -> None:
    """Latency percentiles, and throughput next to its ceiling, per scenario (gnuplot, PNG)."""
    data = work / "chart.tsv"
    with data.open("w") as out:
        for scenario, row in report["scenarios"].items():
            latency = row["latency_ms"]
            out.write(
                f"{scenario}\t{latency['p50']}\t{latency['p95']}\t{latency['p99']}\t"
                f"{row['requests_per_second']}\t{row['ceiling_per_second']}\t{row['ratio']}\n"
            )
        if "mixed" in report:
            latency = report["mixed"]["me"]["latency_ms"]
            out.write(f"me+login\t{latency['p50']}\t{latency['p95']}\t{latency['p99']}\tNaN\tNaN\tNaN\n")
    last_scenario = len(report["scenarios"]) - 1
    title = (
        f"pyauth make bench: {report['finished_at']}, {report['machine']['cpus']} cores, "
        f"{report['config']['connections']} connections"
    )
    script = f"""
set terminal pngcairo size 1400,560 font "DejaVu Sans,10" noenhanced
set output "{output}"
set datafile separator "\\t"
set datafile missing "NaN"
set multiplot layout 1,2 title "{title}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9 relative
set logscale y
set grid ytics
set key top left
set xtics nomirror
set title "Latency percentiles (ms, log scale; login-mfa: per login; me+login: me during a login flood)"
plot "{data}" using 2:xtic(1) title "p50" lc rgb "#4e79a7", \\
     "" using 3 title "p95" lc rgb "#f28e2b", \\
     "" using 4 title "p99" lc rgb "#e15759"
set title "Throughput and its ceiling (per second, log scale; label: fraction of the ceiling)"
plot "{data}" every ::0::{last_scenario} using 5:xtic(1) title "scenario" lc rgb "#59a14f", \\
     "" every ::0::{last_scenario} using 6 title "ceiling (refresh: raw rotation)" lc rgb "#bab0ac", \\
     "" every ::0::{last_scenario} using ($0 - 1.0/6):5:(sprintf("%.2f", $7)) \\
        with labels offset 0,0.8 notitle
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script.encode(), check=True)


def console_table(report: dict[str, Any]) -> str:
    header = (
        f"{'scenario':<12}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'p99/p50':>8}{'errors':>7}"
        f"{'t/o':>5}  {'ceiling':<38}{'ceil/s':>9}{'ratio':>7}{'target':>8}  met"
    )
    lines = [header, "-" * len(header)]
    for scenario, row in report["scenarios"].items():
        latency = row["latency_ms"]
        target = row["target_ratio"]
        lines.append(
            f"{scenario:<12}{row['requests_per_second']:>10,.1f}{latency['p50']:>9.2f}{latency['p95']:>9.2f}"
            f"{latency['p99']:>9.2f}{row['p99_over_p50']:>8.2f}{row['errors']:>7}{row['timeouts']:>5}  "
            f"{CEILING_NAMES[row['ceiling']]:<38}{row['ceiling_per_second']:>9,.1f}{row['ratio']:>7.2f}"
            f"{('>= ' + format(target, '.2f')) if target is not None else '-':>8}  "
            f"{'yes' if row['meets_all'] else 'NO'}"
        )
    lines += [
        line.replace("≥", ">=").replace("**", "").replace("`", "") for line in also_lines(report["scenarios"])
    ]
    verify = report.get("verify")
    if verify is not None and "error" not in verify:
        lines.append(
            f"{'verify':<12}{verify['verifications_per_core_second']:>10,.1f} per core-second "
            f"(pyauth-resource, one core)  ceiling {CEILING_NAMES['pyjwt_verify']} "
            f"{verify['ceiling_per_core_second']:,.1f}  ratio {verify['ratio']:.2f} "
            f"(>= {verify['target_ratio']:.2f}: {'yes' if verify['meets_ratio'] else 'NO'})  "
            f"HTTP requests during the loop {verify['fetches_during_loop']}"
        )
    elif verify is not None:
        lines.append(f"verify      no measurement: {verify['error']}")
    if "login-mfa" in report["scenarios"]:
        row = report["scenarios"]["login-mfa"]
        lines.append(
            f"login-mfa: completed logins per second (password grant 403 mfa_required + mfa grant 200; "
            f"{row['requests']:,} requests for {row['good_requests']:,} logins), latency per login"
        )
    for name, row in report.get("tail", {}).items():
        latency = row["loaded"]["latency_ms"]
        lines.append(
            f"open loop {name}: {row['loaded']['offered_rate']:,.1f} req/s offered, p50 "
            f"{latency.get('p50', 0):.2f} p99 {latency.get('p99', 0):.2f} "
            f"p99.9 {latency.get('p99.9', 0):.2f} ms, "
            f"target p99 <= {row['target_p99_ms']:.2f} ms ({tail.MAX_P99_OVER_UNLOADED_P50:g} x unloaded p50 "
            f"{row['unloaded_p50_ms']:.2f}): {'yes' if row['meets_tail'] else 'NO'}"
        )
    if "side_by_side" in report:
        lines.append(comparison.console_line(report["side_by_side"]))
    lines += repetitions.console_lines(report)
    per_worker = "requests per API worker (busiest / least busy): " + ", ".join(
        f"{name} {show_workers(row['requests_per_worker'])}" for name, row in report["scenarios"].items()
    )
    mixed = report.get("mixed")
    if mixed is None:
        return "\n".join([*lines, "", per_worker])
    me, login = mixed["me"], mixed["login"]
    lines += [
        "",
        f"mixed: login {login['requests_per_second']:,.1f} req/s at {login['connections']} connections "
        f"while me {me['requests_per_second']:,.1f} req/s at {me['connections']}: me p50 "
        f"{me['latency_ms']['p50']:.2f} ms, p99 {me['latency_ms']['p99']:.2f} ms = "
        f"{me['p99_over_p50']:.2f} x p50; ratios: login {mixed_ratio(login)}, me {mixed_ratio(me)} "
        "(target, both parts without errors or timeouts: "
        f"{'yes' if mixed['meets_target'] else 'NO'})",
        "",
        per_worker + f", mixed {show_workers(mixed['requests_per_worker'])}",
    ]
    return "\n".join(lines)


def mixed_ratio(part: dict[str, Any]) -> str:
    ratio = part.get("ratio")
    return "-" if ratio is None else f"{ratio:.2f}"


def load_average() -> str:
    """The host's 1-minute load average: other work on the machine shows in every number here."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


# --- the run -------------------------------------------------------------------------------------------


def measure_login_mfa(wrk: Wrk, run_id: str, logins_per_second: float, workers: WorkerCounts) -> Run:
    """`login-mfa`: its accounts for the warm-up and for the measured run (sized for
    `logins_per_second`), then both runs, from the first step no account has spent."""
    warm_up_count = mfa_accounts_needed(logins_per_second, WARM_UP, CONNECTIONS)
    measured_count = mfa_accounts_needed(logins_per_second, DURATION, CONNECTIONS)
    say(
        f"bench: login-mfa, {warm_up_count} + {measured_count} accounts with TOTP (warm-up + measured, "
        f"for up to {logins_per_second:.0f} logins/s)"
    )
    warm_up_accounts = make_mfa_accounts(run_id, "w", warm_up_count)
    measured_accounts = make_mfa_accounts(run_id, "m", measured_count)
    last_spent = max(account.last_step for account in warm_up_accounts + measured_accounts)
    wait = (last_spent + 1) * TOTP_STEP_SECONDS + 0.5 - time.time()
    if wait > 0:
        say(f"bench: waiting {wait:.0f} s for a TOTP step no account has spent")
        time.sleep(wait)
    first_step = totp_step(time.time())
    # Every step the two runs may reach, their timeouts and a minute to spare.
    steps = math.ceil((WARM_UP + DURATION + 2 * TIMEOUT + 60) / TOTP_STEP_SECONDS) + 1
    return measure(
        wrk,
        "login-mfa",
        "login_mfa.lua",
        API_URL,
        data=mfa_data(measured_accounts, first_step, steps),
        warm_up_data=mfa_data(warm_up_accounts, first_step, steps),
        connections=CONNECTIONS,
        workers=workers,
    )


def run_mixed(
    wrk: Wrk, fixtures: Fixtures, workers: WorkerCounts
) -> tuple[dict[str, Run], dict[str, int], dict[str, float]]:
    """`login` at full concurrency and `me` beside it, at once: do token checks starve? Also returns the
    requests each API worker answered during the measured pair, and each container's CPU milliseconds
    per request of the pair (both parts' requests together)."""
    say(f"bench: mixed, login at {CONNECTIONS} connections and me at {MIXED_ME_CONNECTIONS} at once")
    mixed_runs: dict[str, Run] = {}
    per_worker: dict[str, int] = {}
    cpu_ms: dict[str, float] = {}
    # Access tokens of new sessions: those made at the start may have expired by now (a whole bench takes
    # longer than the API's ACCESS_TOKEN_TTL_SECONDS, 900 s by default: every `me` answered 401).
    access_tokens = [tokens["access_token"] for tokens in parallel(sign_in, fixtures.emails)]
    for seconds, keep in ((WARM_UP, False), (DURATION, True)):
        # Once the API has answered what the run before (then the warm-up) left in flight: queued logins
        # would overflow the hash queue (503) on top of the measured run's own.
        workers.wait_until_answered()
        before = workers.read() if keep else {}
        cpu_before = CPU.read()
        finish_login = wrk.start(
            "mixed-login",
            "login.lua",
            API_URL,
            connections=CONNECTIONS,
            seconds=seconds,
            data=fixtures.emails,
            threads=1,
        )
        finish_me = wrk.start(
            "mixed-me",
            "me.lua",
            API_URL,
            connections=MIXED_ME_CONNECTIONS,
            seconds=seconds,
            data=access_tokens,
            threads=1,
        )
        login_run, me_run = finish_login(), finish_me()
        if keep:
            mixed_runs = {"login": login_run, "me": me_run}
            cpu_ms = cpu.per_request_ms(cpu_before, CPU.read(), login_run.requests + me_run.requests)
            per_worker = WorkerCounts.between(before, workers.read())
    for part, run in mixed_runs.items():
        say(
            f"  mixed {part:<16} {run.rate:>9.1f} req/s  p50 {run.latency_ms['p50']:>8.2f} ms  "
            f"p99 {run.latency_ms['p99']:>8.2f} ms  errors {run.errors}  timeouts {run.timeouts}"
        )
    say(f"  mixed per worker       {show_workers(per_worker)}")
    if cpu_ms:
        say(f"  mixed CPU per request: {cpu.console(cpu_ms, ('api', 'db'))}")
    return mixed_runs, per_worker, cpu_ms


# The ceiling each part of the mixed run is read against (as `login` and `me` alone are).
MIXED_CEILINGS = {"login": "argon2_verify", "me": "select"}


def mixed_report(
    runs: dict[str, Run], per_worker: dict[str, int], ceilings: dict[str, float], cpu_ms: dict[str, float]
) -> dict[str, Any]:
    """The mixed run, judged on both parts: each part's numbers and its ratio to its ceiling (when that
    ceiling ran), and the target: both parts without errors or timeouts. Not `me`'s p99 over its p50: both
    parts run closed loop at saturation, where a faster `me` keeps more of its requests queued behind each
    and that ratio grows (issue 13 dropped such targets); it stays in the report as information."""
    parts: dict[str, Any] = {}
    for part, run in runs.items():
        ceiling = MIXED_CEILINGS[part]
        parts[part] = {
            **run.as_dict(),
            "ceiling": ceiling,
            "ratio": round(run.rate / ceilings[ceiling], 3) if ceilings.get(ceiling) else None,
        }
    return {
        **parts,
        "requests_per_worker": per_worker,
        "worker_spread": worker_spread(per_worker),
        "cpu_ms_per_request": cpu_ms,
        "meets_target": all(run.clean for run in runs.values()),
    }


def measure_argon2(
    operation: str, workers: WorkerCounts, ceiling_url: str = CEILING_ARGON2_URL, cpu_label: str = "argon2"
) -> dict[str, Any]:
    """The argon2id ceiling at `ceiling_url` (the CPU counter `cpu_label`) of `operation` (hash or
    verify), once the API has answered what the run before left in flight: its queued hashes would share
    the ceiling's cores."""
    url = f"{ceiling_url}/measure?operation={operation}&seconds={ARGON2_SECONDS}"
    workers.wait_until_answered()
    cpu_before = CPU.read()
    result: dict[str, Any] = http("GET", url)
    # Per hash or verify, the warm-up's included: the counters span both.
    operations = result["operations"] + result.get("warm_up_operations", 0)
    result["cpu_ms_per_request"] = cpu.per_request_ms(cpu_before, CPU.read(), operations)
    say(
        f"  ceiling: argon2id {operation:<7} {result['per_second']:>9.1f} per s  "
        f"({result['threads']} threads, {result['seconds']:g} s)"
        + (
            f"  CPU per operation: {cpu.console(result['cpu_ms_per_request'], (cpu_label,))}"
            if result["cpu_ms_per_request"]
            else ""
        )
    )
    return result


# --- token verification in a resource server -------------------------------------------------------


def measure_verification(email: str) -> dict[str, Any]:
    """The `verify` scenario: pyauth-resource in bench-verify, on one core, verifying a fresh access token
    of `email` (signed in for right now, so it cannot expire during the run), next to PyJWT alone. What
    bench/ceilings/verification.py answers, or `{"error": …}` when it could not measure."""
    form = {"grant_type": "password", "username": email, "password": PASSWORD}
    token = http("POST", f"{API_URL}/auth/token", form=form)["access_token"]
    body = {"token": token, "seconds": VERIFY_SECONDS}
    try:
        result: dict[str, Any] = http(
            "POST", f"{VERIFY_URL}/measure", json_body=body, timeout=2 * VERIFY_SECONDS + 60
        )
    except urllib.error.HTTPError as error:
        with error:
            detail = error.read().decode(errors="replace")[:300]
        say(f"  verify: no measurement: HTTP {error.code} {detail}")
        return {"error": f"HTTP {error.code} {detail}"}
    library, ceiling = result["library"], result["ceiling"]
    say(
        f"  verify (pyauth-resource) {library['per_core_second']:>9.1f} per core-second "
        f"({library['microseconds_each']:.0f} us each)  "
        f"ceiling: PyJWT alone {ceiling['per_core_second']:.1f}  "
        f"ratio {result['ratio']:.2f}  HTTP requests during the loop {result['fetches_during_loop']}"
    )
    return result


def verification_row(result: dict[str, Any]) -> dict[str, Any]:
    """The `verify` row of the report: the library's verifications per core-second read against PyJWT's
    alone (the ratio and its target), and whether the measured loop cost any HTTP request (it must not)."""
    if "error" in result:
        return {**result, "meets_ratio": False, "meets_fetches": False, "meets_all": False}
    ratio = result["ratio"]
    no_fetches = result["fetches_during_loop"] == 0
    return {
        **result,
        "verifications_per_core_second": result["library"]["per_core_second"],
        "ceiling_name": "pyjwt_verify",
        "ceiling_per_core_second": result["ceiling"]["per_core_second"],
        "target_ratio": VERIFY_TARGET,
        "meets_ratio": ratio >= VERIFY_TARGET,
        "meets_fetches": no_fetches,
        "meets_all": no_fetches and ratio >= VERIFY_TARGET,
    }


def verification_markdown(verify: dict[str, Any]) -> list[str]:
    lines = ["", "## Token verification in a resource server (`verify`)", ""]
    if "error" in verify:
        return [*lines, f"No measurement: {verify['error']}"]
    library, ceiling = verify["library"], verify["ceiling"]
    loaded = verify["fetches_to_load"]
    lines += [
        "pyauth-resource configured with the issuer URL only (it read discovery and the JWKS once, over HTTP "
        f"from the API under test), verifying one real access token ({verify['algorithm']}, "
        f"{verify['token_bytes']} bytes) in a loop, in one process pinned to core {verify['core']}; its "
        "ceiling is PyJWT's `jwt.decode` alone with the same key and the same checks. The two alternate, "
        f"{verify['rounds']} rounds each. Per core-second: verifications over the CPU time the loop's thread "
        "got (on an idle machine, the same as per second).",
        "",
        "| run | per core-second | µs each | per second | share of the core | HTTP requests to pyauth "
        "during the loop |",
        "|---|--:|--:|--:|--:|--:|",
        f"| pyauth-resource `verify` | {library['per_core_second']:,.1f} "
        f"| {library['microseconds_each']:.1f} "
        f"| {library['per_second']:,.1f} | {library['core_share']:.2f} | {verify['fetches_during_loop']} "
        f"({loaded['discovery']} + {loaded['jwks']} to load discovery and the JWKS) |",
        f"| ceiling: {CEILING_NAMES['pyjwt_verify']} | {ceiling['per_core_second']:,.1f} "
        f"| {ceiling['microseconds_each']:.1f} | {ceiling['per_second']:,.1f} | {ceiling['core_share']:.2f} "
        "| — |",
        "",
        f"Ratio {repetitions.ratio_cell(verify)} (target ≥ {verify['target_ratio']:.2f}"
        f"{' in every repetition' if len(verify.get('ratios', [])) > 1 else ''}: "
        f"{mark(verify['meets_ratio'])}); "
        f"no HTTP request once the keys are cached: {mark(verify['meets_fetches'])} (the gate).",
    ]
    return lines


def publish(report: dict[str, Any], work: Path) -> int:
    """Write the results (latest.*, or subset.* for a partial run), print the table, and judge the gate
    (`verdict`)."""
    stem = "latest" if tuple(report["runs"]) == RUNS else "subset"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(report, chart_name=f"{stem}.png"))
    chart(report, work, RESULTS / f"{stem}.png")
    say("")
    say(console_table(report))
    say("")
    load = report["machine"]["load_average_1m"]
    say(f"bench: host load average {load['start']} at the start, {load['end']} at the end")
    say(f"bench: wrote bench/results/{stem}.json, {stem}.md and {stem}.png")
    return verdict(report)


def verdict(report: dict[str, Any]) -> int:
    """Say which targets are missed (a report) and which runs had errors or timeouts (the gate): the exit
    status of `make bench`, 1 when any run had errors or timeouts."""
    met = all(row["meets_all"] for row in report["scenarios"].values())
    met = met and report.get("mixed", {}).get("meets_target", True)
    met = met and report.get("verify", {}).get("meets_all", True)
    if not met:
        say("bench: some targets are not met (see the table); targets are a report, not a gate")
    if report["gate_failures"]:
        say("bench: FAILED, runs with errors or timeouts:")
        for failure in report["gate_failures"]:
            say(f"  {failure}")
        return 1
    say("bench: passed: no run had errors or timeouts")
    return 0


def ceilings_report(
    ceiling_runs: dict[str, Run], argon2: dict[str, dict[str, Any]], verification: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """The ceilings measured in this run, with how each was measured."""
    how = {
        "json": "raw ASGI app, constant body, the API's server options",
        "select": "raw ASGI app, asyncpg pool (the API's pool size), one round trip per request",
        "rotation": "raw ASGI app, asyncpg pool (the API's pool size): claim the token by its digest, touch "
        "the session, insert the successor and the audit row in one statement (one round trip, one "
        "transaction, synchronous_commit on), then one access-token signature (the API's JWT_ALGORITHM)",
    }
    result: dict[str, dict[str, Any]] = {
        name: {**run.as_dict(), "per_second": run.rate, "how": how[name]}
        for name, run in ceiling_runs.items()
    }
    for name, measured in argon2.items():
        cost = measured.get("parameters", {})
        result[name] = {
            **measured,
            "how": f"argon2-cffi on {measured['threads']} threads ({measured['api_workers']} workers {TIMES} "
            f"{measured['threads_per_worker']}), m={cost.get('memory_kib')} KiB, t={cost.get('time_cost')}, "
            f"p={cost.get('parallelism')}, no HTTP",
        }
    if verification is not None and "error" not in verification:
        result["pyjwt_verify"] = {
            **verification["ceiling"],
            "per_second": verification["ceiling"]["per_core_second"],
            "how": f"`jwt.decode` ({verification['algorithm']}, the library's token, key and checks) in one "
            "process pinned to one core, per core-second, no HTTP",
        }
    return result


def open_loop_tail(
    tails: dict[str, dict[str, Any]] | None,
    key: str,
    url: str,
    sources: tail.SourceFactory,
    run: Run,
    workers: WorkerCounts,
) -> None:
    """`run`'s open-loop tail (bench/tail.py) into `tails[key]`, unless `tails` is None (a repetition
    after the first), BENCH_OPEN_LOOP_SECONDS is 0 or the closed-loop run had no expected answer (it fails
    the gate already, and offers no rate). It starts once the API has answered what the closed-loop run
    left in flight, which would otherwise slow the unloaded run that the tail's target is measured against."""
    if tails is None:
        return
    if OPEN_LOOP_SECONDS > 0 and run.rate <= 0:
        say(f"  {key} open loop: not run, its closed-loop run had no expected answer")
    elif OPEN_LOOP_SECONDS > 0:
        workers.wait_until_answered()
        tails[key] = tail.measure(
            key,
            url,
            sources,
            run.rate,
            seconds=OPEN_LOOP_SECONDS,
            timeout=TIMEOUT,
            say=say,
            per_worker=workers.read if url == API_URL else None,  # the API's workers, not a ceiling's
        )


def select_reference_tail(
    tails: dict[str, dict[str, Any]] | None, user_ids: list[str], run: Run, workers: WorkerCounts
) -> None:
    """The raw-SELECT ceiling's own open-loop tail (`tail.SELECT_REFERENCE`), from its closed-loop `run`:
    the same requests as wrk/select.lua, one account's row each."""
    host = urllib.parse.urlsplit(CEILING_SELECT_URL).netloc
    paths = tail.get_each(host, [f"/users/{user_id}" for user_id in user_ids])
    open_loop_tail(tails, tail.SELECT_REFERENCE, CEILING_SELECT_URL, paths, run, workers)


def sidebyside_tokens(user_ids: list[str]) -> list[str]:
    """The side-by-side app's access tokens, one per account, valid for an hour."""
    expires = int(time.time()) + 3600
    return [comparison.hs256_token(SIDEBYSIDE_SECRET, user_id, expires) for user_id in user_ids]


@dataclass
class Repetition:
    """One repetition of the closed-loop runs (`run_scenarios`): what it measured."""

    runs: dict[str, Run]
    ceiling_runs: dict[str, Run]
    argon2: dict[str, dict[str, Any]]
    verification: dict[str, Any] | None
    side_by_side: dict[str, Run]

    @property
    def ceilings(self) -> dict[str, float]:
        """Each ceiling's rate in this repetition."""
        found = {name: run.rate for name, run in self.ceiling_runs.items()}
        found.update({name: result["per_second"] for name, result in self.argon2.items()})
        return found

    def comparison(self) -> dict[str, Any] | None:
        """The side-by-side row, where both `me` and the side-by-side app ran."""
        if "app" not in self.side_by_side or "me" not in self.runs:
            return None
        return comparison.row(self.runs["me"].as_dict(), self.side_by_side["app"].as_dict())

    def entry(self) -> dict[str, Any]:
        """This repetition judged, as bench/repetitions.py keeps it."""
        return repetitions.entry(
            verdicts(self.runs, self.ceilings),
            {name: run.as_dict() for name, run in self.ceiling_runs.items()},
            self.comparison(),
            None if self.verification is None else verification_row(self.verification),
        )


def run_scenarios(
    chosen: tuple[str, ...],
    wrk: Wrk,
    fixtures: Fixtures,
    workers: WorkerCounts,
    tails: dict[str, dict[str, Any]] | None,
    side_by_side: dict[str, Run],
    workers_64mib: "WorkerCounts | None" = None,
) -> tuple[dict[str, Run], dict[str, Run], dict[str, dict[str, Any]], dict[str, Any] | None]:
    """The chosen scenarios, each ceiling right before the scenarios it bounds: the scenarios' runs, the
    HTTP ceilings' runs, the argon2id ceilings, and `verify`'s measurement (None when not chosen). Each
    scenario of `tail.SCENARIOS` is then measured open loop into `tails` (and the constant-JSON ceiling,
    as the generator's check; not when `tails` is None), and the side-by-side app right after `me` into
    `side_by_side`. `SCENARIOS_64MIB` run on bench-api-64mib (its workers: `workers_64mib`)."""
    c: dict[str, Any] = {"connections": CONNECTIONS, "settle": workers}
    api: dict[str, Any] = {"connections": CONNECTIONS, "workers": workers}
    host = urllib.parse.urlsplit(API_URL).netloc
    runs: dict[str, Run] = {}
    ceiling_runs: dict[str, Run] = {}
    argon2: dict[str, dict[str, Any]] = {}
    verification: dict[str, Any] | None = None
    if "jwks" in chosen:
        ceiling_runs["json"] = measure(
            wrk, "ceiling: constant JSON", "get.lua", f"{CEILING_JSON_URL}/", cpu_labels=("json",), **c
        )
        open_loop_tail(
            tails,
            tail.GENERATOR_CHECK,
            CEILING_JSON_URL,
            tail.get(urllib.parse.urlsplit(CEILING_JSON_URL).netloc, "/"),
            ceiling_runs["json"],
            workers,
        )
        runs["jwks"] = measure(wrk, "jwks", "get.lua", f"{API_URL}/.well-known/jwks.json", **api)
        open_loop_tail(
            tails, "jwks", API_URL, tail.get(host, "/.well-known/jwks.json"), runs["jwks"], workers
        )
    if "verify" in chosen:
        say(f"bench: verify, pyauth-resource on one core, {VERIFY_SECONDS} s each with its ceiling")
        verification = measure_verification(fixtures.emails[0])
    if {"me", "me-distinct", "refresh"} & set(chosen):
        ceiling_runs["select"] = measure(
            wrk,
            "ceiling: asyncpg SELECT",
            "select.lua",
            CEILING_SELECT_URL,
            data=fixtures.user_ids,
            cpu_labels=("select", "db"),
            **c,
        )
        select_reference_tail(tails, fixtures.user_ids, ceiling_runs["select"], workers)
    if "me" in chosen:
        runs["me"] = measure(wrk, "me", "me.lua", API_URL, data=fixtures.access_tokens, **api)
        if SIDEBYSIDE_SECRET:
            side_by_side["app"] = measure(
                wrk, "side by side", "me.lua", SIDEBYSIDE_URL, data=sidebyside_tokens(fixtures.user_ids), **c
            )
        else:
            say("  side by side: SIDEBYSIDE_JWT_SECRET is not set (bench/run.sh sets it): not measured")
        open_loop_tail(
            tails, "me", API_URL, tail.bearer(host, "/users/me", fixtures.access_tokens), runs["me"], workers
        )
    if "me-distinct" in chosen:
        runs["me-distinct"] = measure(
            wrk, "me-distinct", "me_distinct.lua", API_URL, data=fixtures.distinct_tokens, **api
        )
        distinct = tail.bearer(host, "/users/me", fixtures.distinct_tokens)
        open_loop_tail(tails, "me-distinct", API_URL, distinct, runs["me-distinct"], workers)
    if "refresh" in chosen:
        ceiling_runs["rotation"] = measure(
            wrk,
            "ceiling: raw rotation",
            "refresh.lua",
            CEILING_ROTATION_URL,
            data=fixtures.refresh_chains["ceiling-measured"],
            warm_up_data=fixtures.refresh_chains["ceiling-warm-up"],
            cpu_labels=("rotation", "db"),
            **c,
        )
        runs["refresh"] = measure(
            wrk,
            "refresh",
            "refresh.lua",
            API_URL,
            data=fixtures.refresh_chains["measured"],
            warm_up_data=fixtures.refresh_chains["warm-up"],
            **api,
        )
        chains = tail.refresh(host, fixtures.refresh_chains.get("open-loop", []))
        open_loop_tail(tails, "refresh", API_URL, chains, runs["refresh"], workers)
    if {"login", "login-mfa"} & set(chosen):
        argon2["argon2_verify"] = measure_argon2("verify", workers)
    if "login" in chosen:
        runs["login"] = measure(wrk, "login", "login.lua", API_URL, data=fixtures.emails, **api)
        logins = tail.login(host, fixtures.emails, PASSWORD)
        open_loop_tail(tails, "login", API_URL, logins, runs["login"], workers)
    if "login-mfa" in chosen:
        # Its accounts are sized for the faster of the verify ceiling and `login`: neither bounds it less.
        bound = max(argon2["argon2_verify"]["per_second"], runs["login"].rate if "login" in runs else 0.0)
        runs["login-mfa"] = measure_login_mfa(wrk, fixtures.run_id, bound, workers)
    if "register" in chosen:
        argon2["argon2_hash"] = measure_argon2("hash", workers)
        runs["register"] = measure(wrk, "register", "register.lua", API_URL, **api)
        registers = tail.register(host, fixtures.run_id, PASSWORD)
        open_loop_tail(tails, "register", API_URL, registers, runs["register"], workers)
    runs.update(run_64mib_scenarios(chosen, wrk, fixtures, workers, workers_64mib or workers, argon2))

    return runs, ceiling_runs, argon2, verification


def run_64mib_scenarios(
    chosen: tuple[str, ...],
    wrk: Wrk,
    fixtures: Fixtures,
    workers: WorkerCounts,
    workers_64mib: WorkerCounts,
    argon2: dict[str, dict[str, Any]],
) -> dict[str, Run]:
    """`login-64mib` and `register-64mib` where chosen, on bench-api-64mib, each right after its argon2id
    ceiling at the same parameters (into `argon2`), once bench-api has answered what the run before left
    in flight (its hashes would share the cores)."""
    api: dict[str, Any] = {"connections": CONNECTIONS, "workers": workers_64mib}
    api["cpu_labels"] = ("api_64mib", "db")
    runs: dict[str, Run] = {}
    if not set(SCENARIOS_64MIB) & set(chosen):
        return runs
    workers.wait_until_answered()
    for scenario, operation, script, data in (
        ("login-64mib", "verify", "login.lua", fixtures.emails_64mib),
        ("register-64mib", "hash", "register.lua", None),
    ):
        if scenario in chosen:
            ceiling = TARGETS[scenario][0]
            argon2[ceiling] = measure_argon2(
                operation, workers_64mib, CEILING_ARGON2_64MIB_URL, "argon2_64mib"
            )
            runs[scenario] = measure(wrk, scenario, script, API_64MIB_URL, data=data, **api)
    return runs


def measure_repetitions(
    chosen: tuple[str, ...],
    wrk: Wrk,
    fixtures: Fixtures,
    workers: WorkerCounts,
    tails: dict[str, dict[str, Any]],
    workers_64mib: "WorkerCounts | None" = None,
) -> list[Repetition]:
    """`run_scenarios` REPETITIONS times, one after the other: the first on `fixtures` and followed by the
    open-loop runs (into `tails`), each later one on accounts and sessions made for it."""
    measured: list[Repetition] = []
    for index in range(REPETITIONS):
        if index:
            say(f"bench: repetition {index + 1} of {REPETITIONS}, with accounts and sessions of its own")
            fixtures = make_fixtures(
                f"{fixtures.run_id}r{index + 1}",
                fixtures.distinct_sessions,
                rotation_ceiling="refresh" in chosen,
                login_64mib="login-64mib" in chosen,
            )
        elif REPETITIONS > 1:
            say(f"bench: repetition 1 of {REPETITIONS}, with the open-loop runs")
        side_by_side: dict[str, Run] = {}
        results = run_scenarios(
            chosen, wrk, fixtures, workers, None if index else tails, side_by_side, workers_64mib
        )
        measured.append(Repetition(*results, side_by_side))
    return measured


def wait_for_the_services(chosen: tuple[str, ...]) -> None:
    """Until the API under test and the ceiling apps answer (bench-api-64mib and its ceiling only when
    its scenarios run)."""
    say("bench: waiting for the API and the ceiling apps")
    wait_until_answering(f"{API_URL}/health/ready")
    wait_until_answering(CEILING_JSON_URL, any_status=True)
    wait_until_answering(f"{CEILING_SELECT_URL}/users/x", any_status=True)
    wait_until_answering(CEILING_ARGON2_URL, any_status=True)
    wait_until_answering(CEILING_ROTATION_URL, any_status=True)
    wait_until_answering(VERIFY_URL, any_status=True)
    wait_until_answering(f"{SIDEBYSIDE_URL}/users/me", any_status=True)
    if set(SCENARIOS_64MIB) & set(chosen):
        wait_until_answering(f"{API_64MIB_URL}/health/ready")
        wait_until_answering(CEILING_ARGON2_64MIB_URL, any_status=True)


def main() -> int:
    started = time.monotonic()
    load_at_start = load_average()
    api_settings = json.loads(os.environ.get("BENCH_API_SETTINGS", "{}"))
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    chosen = selected_runs(os.environ.get("BENCH_SCENARIOS", ""))
    if chosen != RUNS:
        say(f"bench: only {', '.join(chosen)} (BENCH_SCENARIOS)")

    wait_for_the_services(chosen)

    distinct = DISTINCT_TOKENS if "me-distinct" in chosen else 0
    say(
        f"bench: creating {CONNECTIONS} accounts and their sessions through the API (run {run_id})"
        + (f", and {distinct} more sessions for me-distinct" if distinct else "")
    )
    fixtures = make_fixtures(
        run_id,
        distinct,
        rotation_ceiling="refresh" in chosen,
        open_loop_chains="refresh" in chosen and OPEN_LOOP_SECONDS > 0,
        login_64mib="login-64mib" in chosen,
    )
    say(f"bench: {CPU.describe()}")

    workers = WorkerCounts(METRICS_URLS)
    if workers.read():
        say(f"bench: requests per API worker from {workers.url}")
    else:
        say(f"bench: no pyauth_worker_requests_total at {' or '.join(METRICS_URLS)}: no per-worker counts")
    workers_64mib = WorkerCounts(METRICS_64MIB_URLS)
    if set(SCENARIOS_64MIB) & set(chosen) and not workers_64mib.read():
        say(f"bench: no pyauth_worker_requests_total at {' or '.join(METRICS_64MIB_URLS)}")

    wrk = Wrk(work, run_id)
    say(
        f"bench: {WARM_UP} s warm-up + {DURATION} s measured per run, {CONNECTIONS} connections, "
        f"{REPETITIONS} repetition(s) (BENCH_REPETITIONS)"
    )
    tails: dict[str, dict[str, Any]] = {}
    measured = measure_repetitions(chosen, wrk, fixtures, workers, tails, workers_64mib)
    first = measured[0]
    runs, verification = first.runs, first.verification
    generator_check = tails.pop(tail.GENERATOR_CHECK, None)
    select_reference = tails.pop(tail.SELECT_REFERENCE, None)

    mixed_runs, mixed_per_worker, mixed_cpu = (
        run_mixed(wrk, fixtures, workers) if "mixed" in chosen else ({}, {}, {})
    )

    ceilings = first.ceilings
    report: dict[str, Any] = {
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": os.environ.get("BENCH_GIT", "unknown"),
        "runs": list(chosen),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "load_average_1m": {"start": load_at_start, "end": load_average()},
        },
        "config": {
            "connections": CONNECTIONS,
            "threads": THREADS,
            "warm_up_seconds": WARM_UP,
            "duration_seconds": DURATION,
            "timeout_seconds": TIMEOUT,
            "mixed_me_connections": MIXED_ME_CONNECTIONS,
            "load_generator": "wrk (Debian), inside the compose network; open loop: bench/openloop.py "
            f"({openloop.loop_name()})",
            "open_loop_seconds": OPEN_LOOP_SECONDS,
            "repetitions": REPETITIONS,
        },
        "api_settings": api_settings,
        "api_64mib_settings": json.loads(os.environ.get("BENCH_API_64MIB_SETTINGS", "{}")),
        "scenarios": verdicts(runs, ceilings),
        "ceilings": ceilings_report(first.ceiling_runs, first.argon2, verification),
    }
    if tails:
        report["tail"] = tails
        tail.apply(report["scenarios"], tails)
    if generator_check is not None:
        report["open_loop_generator_check"] = generator_check
    if select_reference is not None:
        report["open_loop_select_ceiling"] = select_reference
    if (side := first.comparison()) is not None:
        report["side_by_side"] = side
    if verification is not None:
        report["verify"] = verification_row(verification)
    repetitions.judge(report, [repetition.entry() for repetition in measured], CEILING_NAMES)
    if mixed_runs:
        report["mixed"] = mixed_report(mixed_runs, mixed_per_worker, ceilings, mixed_cpu)
    report["gate_failures"] = gate_failures(report)
    report["elapsed_seconds"] = round(time.monotonic() - started, 1)

    return publish(report, work)


if __name__ == "__main__":
    sys.exit(main())
