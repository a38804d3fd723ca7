"""Every metric pyauth exposes, defined once per process, and the one-line calls that count outcomes.

Labels are bounded and carry nothing personal: route templates (`/auth/sessions/{session_id}`, never the
raw path), methods, status codes and outcome codes. Never an email, a user or session id, or a token.

prometheus-client chooses where values live when it is first imported: in memory, or, when
PROMETHEUS_MULTIPROC_DIR is set, in one mmap file per process that a scrape merges (`exposition`).
"""

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from app.metrics.batch import UPDATES

# `_created` series would double every counter and histogram in the default (single-process) mode,
# and multiprocess mode never writes them: leave them out in both, so that both expose the same series.
disable_created_metrics()  # type: ignore[no-untyped-call]

UNMATCHED_ROUTE = "unmatched"
"""The route label of requests no route matched (404s, and requests refused before routing)."""

# From the health probes (~1 ms) to a login queued behind other hashes (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "pyauth_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "pyauth_http_request_duration_seconds",
    "Time from the request reaching pyauth to the last byte of its response, by method, route and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)

# An unknown account, a wrong password and a deactivated account get the same answer (ASVS 6.3.8), and
# the metrics must not tell them apart either: a scrape taken around one guess would otherwise say
# whether the account exists, or (since deactivation is checked after the hash) that the password was
# right. The reasons stay in the audit log, which only administrators read.
INVALID_CREDENTIALS = "invalid_credentials"
_CREDENTIAL_REFUSALS = frozenset({"unknown_account", "wrong_password", "inactive"})

LOGIN_OUTCOMES = (
    "succeeded",
    INVALID_CREDENTIALS,
    "unverified",
    "throttled",
    "reset_required",
)
LOGIN_ATTEMPTS = Counter(
    "pyauth_login_attempts",
    "Password grants, by outcome: succeeded, or the reason of the refusal (invalid_credentials: unknown "
    "account, wrong password or deactivated account, which are not told apart).",
    ["outcome"],
)

REFRESH_OUTCOMES = ("rotated", "reuse_detected", "concurrent_reuse", "invalid")
REFRESH_ATTEMPTS = Counter(
    "pyauth_refresh_attempts",
    "Refresh grants, by outcome: rotated; reuse_detected (a spent token replayed after the grace window: "
    "the session is revoked); concurrent_reuse (replayed within the grace window: the session is kept); "
    "invalid (unknown token, or its session ended).",
    ["outcome"],
)

# Published by each process (`gauges`); with several workers, a scrape shows the sum over live workers.
HASH_QUEUE_DEPTH = Gauge(
    "pyauth_password_hash_queue_depth",
    "Password hashes and verifications submitted and not finished: running, or waiting for a thread.",
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "pyauth_db_pool_checked_out_connections",
    "Database connections checked out of the pool, in use by a request or a task.",
    multiprocess_mode="livesum",
)

# Every outcome is exposed from the start, at 0: a rate over a series that appears late reads wrong. The
# children are made here once: `labels()` takes a lock and checks its arguments on every call.
_LOGIN_SERIES = {outcome: LOGIN_ATTEMPTS.labels(outcome) for outcome in LOGIN_OUTCOMES}
_REFRESH_SERIES = {outcome: REFRESH_ATTEMPTS.labels(outcome) for outcome in REFRESH_OUTCOMES}


def count_login(outcome: str) -> None:
    """One password grant decided: `succeeded` or a refusal reason. The reasons of an invalid-credentials
    refusal (unknown_account, wrong_password, inactive) all count as `invalid_credentials`. Written with
    the request metrics' batch (`batch.UPDATES`)."""
    counted = INVALID_CREDENTIALS if outcome in _CREDENTIAL_REFUSALS else outcome
    series = _LOGIN_SERIES.get(counted)
    if series is None:  # an outcome of a step added later (a second factor's): its series from now on
        series = _LOGIN_SERIES[counted] = LOGIN_ATTEMPTS.labels(counted)
    UPDATES.count(series)


def count_refresh(outcome: str) -> None:
    """One refresh grant decided: one of REFRESH_OUTCOMES. Written with the request metrics' batch."""
    UPDATES.count(_REFRESH_SERIES[outcome])


# Requests answered by each API worker process, labelled with its pid: `make bench` reads it to show how
# evenly the kernel spreads connections over the workers. Bounded by the workers a container has run.
WORKER_REQUESTS = Counter(
    "pyauth_worker_requests",
    "HTTP requests answered by each API worker process, by the worker's pid.",
    ["worker"],
)
