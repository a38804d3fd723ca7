"""make scale-check: what must hold when pyauth runs as several replicas, checked against the Swarm stack.

Every request goes from the host through the edge proxy (https://localhost:EDGE_PORT, the certificate
checked against .swarm/edge.crt), which sets `X-Served-By` to the API task that answered (its slot,
api1..apiN): each check reports how many requests each replica served. The checks:
  1. refresh-token reuse detection holds when the replay reaches another replica than the rotation;
  2. login throttling and per-IP rate limits count across replicas (refused at the same count as one);
  3. a key rotated on one replica signs tokens that every replica accepts within the key ring's refresh,
     and every replica serves the same JWKS;
  4. `swarm/swarm.sh update` (migrate, the API start-first, the workers) under steady load: no request
     fails, and a chain of refreshes made during it is whole;
  5. SIGKILL to one API task under the same load: at most the requests in flight fail, and Swarm
     replaces the task;
  6. a Postgres restart, then Postgres away for 20 s: requests answer 200 or 503 (never another error),
     503 while it is away, the API recovers without any API task restarting, and every committed row is
     still there.
Standard library only (python3 3.11+ on the host); docker CLI for the rotation and the restart.
"""

import argparse
import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
STACK = os.environ.get("SWARM_STACK", "pyauth-swarm")
EDGE_PORT = int(os.environ.get("EDGE_PORT", "8443"))
REPLICAS = int(os.environ.get("API_REPLICAS", "3"))
CA_FILE = ROOT / ".swarm" / "edge.crt"
# The stack's defaults (compose.swarm.yaml leaves them as the app sets them).
REFRESH_REUSE_GRACE_SECONDS = 10.0
LOGIN_FREE_ATTEMPTS = 5
RATE_LIMIT_FORGOT_PASSWORD = 5
RATE_LIMIT_WINDOW_SECONDS = 60
KEY_RING_REFRESH_SECONDS = 30


@dataclass
class Reply:
    status: int
    body: Any
    served_by: str
    seconds: float

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


@dataclass
class Outcome:
    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)

    def expect(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition


class Edge:
    """HTTPS to the edge proxy, one connection per request (the proxy balances each)."""

    def __init__(self) -> None:
        self.tls = ssl.create_default_context(cafile=str(CA_FILE))
        self.outcome: Outcome | None = None

    def call(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        headers = {"Accept": "application/json"}
        body: bytes | None = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        connection = http.client.HTTPSConnection("localhost", EDGE_PORT, context=self.tls, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            status, served_by = response.status, response.getheader("X-Served-By") or "-"
        except (OSError, http.client.HTTPException) as error:
            status, raw, served_by = 0, str(error).encode(), "-"
        finally:
            connection.close()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")[:200]
        if self.outcome is not None and served_by != "-":
            self.outcome.served[served_by] += 1
        return Reply(status, parsed, served_by, time.monotonic() - started)

    def register(self, email: str, password: str) -> Reply:
        return self.call("POST", "/auth/register", json_body={"email": email, "password": password})

    def login(self, email: str, password: str) -> Reply:
        form = {"grant_type": "password", "username": email, "password": password}
        return self.call("POST", "/auth/token", form=form)

    def refresh(self, refresh_token: str) -> Reply:
        return self.call(
            "POST", "/auth/token", form={"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    def me(self, access_token: str, timeout: float = 30.0) -> Reply:
        return self.call("GET", "/users/me", token=access_token, timeout=timeout)


def new_account(edge: Edge, outcome: Outcome) -> tuple[str, str, Reply] | None:
    email = f"scale-{uuid.uuid4().hex[:12]}@example.com"
    password = f"Scale-{uuid.uuid4().hex}-check"
    registered = edge.register(email, password)
    if not outcome.expect(
        registered.status == 201, f"register answered {registered.status} {registered.body}"
    ):
        return None
    logged_in = edge.login(email, password)
    if not outcome.expect(logged_in.status == 200, f"login answered {logged_in.status} {logged_in.body}"):
        return None
    return email, password, logged_in


def jwt_header(token: str) -> dict[str, Any]:
    head = token.split(".", 1)[0]
    return dict(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))))


def docker(*args: str, timeout: float = 60) -> str:
    # The docker CLI on PATH, with arguments of this script's own: no shell, no outside input.
    command = ["docker", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout).stdout  # noqa: S603


def task_containers(service: str) -> list[str]:
    return docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK}_{service}").split()


# 1 ---------------------------------------------------------------------------------------------------


def check_refresh_reuse(edge: Edge, outcome: Outcome) -> None:
    """Rotate a refresh token on one replica, wait out the reuse grace, replay the old token so that it
    reaches another replica: refused, and the family is revoked on every replica (the new token too)."""
    for _attempt in range(3):
        account = new_account(edge, outcome)
        if account is None:
            return
        first = account[2]
        rotated = edge.refresh(str(first.field("refresh_token")))
        if not outcome.expect(rotated.status == 200, f"refresh answered {rotated.status} {rotated.body}"):
            return
        time.sleep(REFRESH_REUSE_GRACE_SECONDS + 0.5)  # a replay now is theft, not two tabs
        replay = edge.refresh(str(first.field("refresh_token")))
        if replay.served_by == rotated.served_by:
            outcome.notes.append(f"replay reached the rotating replica {replay.served_by} again: new family")
            continue
        outcome.expect(replay.status == 400, f"the replay answered {replay.status} (want 400)")
        after = edge.refresh(str(rotated.field("refresh_token")))
        me = edge.me(str(rotated.field("access_token")))
        outcome.expect(after.status == 400, f"the rotated token after the replay answered {after.status}")
        outcome.expect(me.status == 401, f"/users/me with the family's access token answered {me.status}")
        outcome.notes.append(
            f"rotation on {rotated.served_by}, replay on {replay.served_by}: {replay.status} "
            f"({replay.field('error')}); the new token then on {after.served_by}: {after.status}; "
            f"its access token on {me.served_by}: {me.status}"
        )
        return
    outcome.expect(False, "three replays in a row reached the rotating replica")


# 2 ---------------------------------------------------------------------------------------------------


def check_counters(edge: Edge, outcome: Outcome) -> None:
    """Login throttling (LOGIN_FREE_ATTEMPTS failures, then refused, even the right password) and the
    per-IP forgot-password limit (RATE_LIMIT_FORGOT_PASSWORD a window) across the replicas."""
    account = new_account(edge, outcome)
    if account is None:
        return
    email, password, _ = account
    failures = [edge.login(email, "wrong-" + password) for _ in range(LOGIN_FREE_ATTEMPTS)]
    right = edge.login(email, password)
    outcome.expect(
        all(reply.status in (400, 401) for reply in failures),
        f"wrong passwords answered {[reply.status for reply in failures]}",
    )
    outcome.expect(
        right.status == 429, f"the right password after {LOGIN_FREE_ATTEMPTS} failures: {right.status}"
    )
    outcome.notes.append(
        "login throttling: failures on "
        + ",".join(reply.served_by for reply in failures)
        + f"; then the right password on {right.served_by}: {right.status} ({right.field('error')})"
    )

    # A fresh fixed window (aligned to RATE_LIMIT_WINDOW_SECONDS): earlier runs' hits do not count.
    left = RATE_LIMIT_WINDOW_SECONDS - time.time() % RATE_LIMIT_WINDOW_SECONDS
    outcome.notes.append(f"waited {left:.0f} s for a fresh rate-limit window")
    time.sleep(left + 0.5)
    replies = [
        edge.call(
            "POST", "/auth/password/forgot", json_body={"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com"}
        )
        for _ in range(RATE_LIMIT_FORGOT_PASSWORD + 3)
    ]
    statuses = [reply.status for reply in replies]
    allowed = [reply for reply in replies if reply.status != 429]
    outcome.expect(
        len(allowed) == RATE_LIMIT_FORGOT_PASSWORD and statuses[-3:] == [429, 429, 429],
        f"forgot-password answered {statuses} (want {RATE_LIMIT_FORGOT_PASSWORD} answers, then 429s)",
    )
    outcome.notes.append(
        "per-IP limit: " + ", ".join(f"{reply.status}@{reply.served_by}" for reply in replies)
    )


# 3 ---------------------------------------------------------------------------------------------------


def check_key_rotation(edge: Edge, outcome: Outcome) -> None:
    """`python -m app.keys.cli rotate --now` in one API task: the other replicas' key rings pick the key up
    within their refresh; a token it signed is accepted by every replica; the JWKS is the same on each."""
    before = edge.call("GET", "/.well-known/jwks.json")
    old_kids = {key["kid"] for key in before.body["keys"]}
    container = task_containers("api")[0]
    printed = docker("exec", container, "python3", "-m", "app.keys.cli", "rotate", "--now")
    new_kids = {line.split()[0] for line in printed.splitlines() if line.strip()} - old_kids
    if not outcome.expect(bool(new_kids), f"rotate printed no new key: {printed!r}"):
        return
    rotated_at = time.monotonic()
    account = new_account(edge, outcome)
    if account is None:
        return
    email, password, reply = account
    token = str(reply.field("access_token"))
    deadline = rotated_at + KEY_RING_REFRESH_SECONDS + 15
    while jwt_header(token).get("kid") not in new_kids and time.monotonic() < deadline:
        time.sleep(2)
        reply = edge.login(email, password)
        token = str(reply.field("access_token") or token)
    signed_after = time.monotonic() - rotated_at
    if not outcome.expect(jwt_header(token).get("kid") in new_kids, "no token signed by the new key in time"):
        return
    accepted: dict[str, float] = {}
    refused: Counter[str] = Counter()
    while len(accepted) < REPLICAS and time.monotonic() < deadline:
        me = edge.me(token)
        if me.status == 200:
            accepted.setdefault(me.served_by, time.monotonic() - rotated_at)
        else:
            refused[f"{me.status}@{me.served_by}"] += 1
            time.sleep(0.3)
    outcome.expect(len(accepted) == REPLICAS, f"only {sorted(accepted)} accepted the new key's token")
    jwks: dict[str, list[str]] = {}
    for _ in range(REPLICAS * 4):
        answer = edge.call("GET", "/.well-known/jwks.json")
        jwks[answer.served_by] = sorted(key["kid"] for key in answer.body["keys"])
        if len(jwks) == REPLICAS:
            break
    distinct = {tuple(kids) for kids in jwks.values()}
    outcome.expect(len(jwks) == REPLICAS and len(distinct) == 1, f"JWKS per replica: {jwks}")
    outcome.expect(all(new_kids <= set(kids) for kids in jwks.values()), "a replica's JWKS lacks the new key")
    outcome.notes.append(
        f"rotated in {container[:12]}; first token of the new key after {signed_after:.1f} s; accepted by "
        + ", ".join(f"{name} at {seconds:.1f} s" for name, seconds in sorted(accepted.items()))
        + f"; refusals before: {dict(refused) or 'none'}; JWKS identical on {sorted(jwks)} "
        f"({len(next(iter(distinct)))} keys)"
    )


# 4 and 5 -------------------------------------------------------------------------------------------


class Load:
    """Steady load through the edge while something happens: LOAD_THREADS threads of `GET /users/me`
    back to back, and one chain of refreshes (one every 3 s: the token endpoint's per-IP limit is 60 a
    minute) whose every rotation must stick: a lost write would break the chain."""

    def __init__(self, edge: Edge, access_token: str, refresh_token: str, threads: int = 6) -> None:
        self.edge, self.access_token, self.refresh_token = edge, access_token, refresh_token
        self.statuses: Counter[str] = Counter()
        self.failures: list[str] = []
        self.refreshes = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers = [threading.Thread(target=self._me, daemon=True) for _ in range(threads)]
        self.workers.append(threading.Thread(target=self._refresh, daemon=True))
        self.seconds = 0.0

    def _record(self, kind: str, reply: Reply) -> None:
        with self.lock:
            self.statuses[f"{kind} {reply.status}"] += 1
            if reply.status != 200:
                self.failures.append(f"{kind} {reply.status}@{reply.served_by}: {str(reply.body)[:80]}")

    def _me(self) -> None:
        while not self.stop.is_set():
            self._record("me", self.edge.me(self.access_token, timeout=30))

    def _refresh(self) -> None:
        while not self.stop.wait(3):
            reply = self.edge.refresh(self.refresh_token)
            self._record("refresh", reply)
            if reply.status == 200:
                self.refresh_token = str(reply.field("refresh_token"))
                self.refreshes += 1

    def __enter__(self) -> "Load":
        self.started = time.monotonic()
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=40)
        self.seconds = time.monotonic() - self.started

    def summary(self) -> str:
        total = sum(self.statuses.values())
        return (
            f"{total} requests in {self.seconds:.0f} s ({total / max(self.seconds, 0.001):.0f}/s): "
            f"{dict(self.statuses)}; {self.refreshes} refresh rotations"
        )


def loaded_account(edge: Edge, outcome: Outcome) -> tuple[str, str] | None:
    account = new_account(edge, outcome)
    if account is None:
        return None
    reply = account[2]
    return str(reply.field("access_token")), str(reply.field("refresh_token"))


def check_rolling_update(edge: Edge, outcome: Outcome) -> None:
    """`swarm/swarm.sh update` (migrate, then the API start-first, then the workers) under steady load:
    no request fails, and the chain of refreshes is whole afterwards."""
    tokens = loaded_account(edge, outcome)
    if tokens is None:
        return
    with Load(edge, *tokens) as load:
        time.sleep(3)
        update = subprocess.run(  # noqa: S603 - this repository's own script
            ["bash", str(ROOT / "swarm" / "swarm.sh"), "update"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=600,
            check=False,  # its exit status is checked below, with its output
        )
        time.sleep(3)
    outcome.expect(update.returncode == 0, f"swarm.sh update failed: {update.stderr[-400:]}")
    outcome.expect(not load.failures, f"{len(load.failures)} failed requests: {load.failures[:5]}")
    final = edge.refresh(load.refresh_token)
    outcome.expect(final.status == 200, f"the refresh chain after the update: {final.status}")
    rolled = [line for line in update.stdout.splitlines() if "rolled out" in line]
    outcome.notes.append(f"{rolled[-1] if rolled else 'update'}; under load: {load.summary()}")


def check_sigkill(edge: Edge, outcome: Outcome) -> None:
    """SIGKILL to one API task under steady load: the requests it held may fail (at most the load's
    concurrency), every other succeeds, and Swarm replaces the task."""
    tokens = loaded_account(edge, outcome)
    if tokens is None:
        return
    before = set(task_containers("api"))
    victim = sorted(before)[0]
    with Load(edge, *tokens) as load:
        time.sleep(3)
        docker("kill", "--signal", "KILL", victim)
        killed_at = time.monotonic()
        replaced = None
        while time.monotonic() - killed_at < 90:
            now = set(task_containers("api"))
            healthy = docker("service", "ls", "--filter", f"name={STACK}_api", "--format", "{{.Replicas}}")
            if victim not in now and len(now - before) >= 1 and healthy.strip() == f"{REPLICAS}/{REPLICAS}":
                replaced = time.monotonic() - killed_at
                break
            time.sleep(1)
        time.sleep(3)
    threads = len(load.workers)
    outcome.expect(replaced is not None, "the killed task was not replaced within 90 s")
    outcome.expect(
        len(load.failures) <= threads, f"{len(load.failures)} failed requests (at most {threads} in flight)"
    )
    outcome.notes.append(
        f"killed {victim[:12]}; replaced and healthy after "
        f"{'-' if replaced is None else f'{replaced:.1f} s'}; failed: {len(load.failures)} "
        f"{load.failures[:3]}; under load: {load.summary()}"
    )


# 6 ---------------------------------------------------------------------------------------------------


def users_in_database() -> int:
    container = task_containers("db")[0]
    out = docker(
        "exec",
        container,
        "psql",
        "-h",
        "/tmp",  # noqa: S108 - the socket directory inside the db container (postgres-entrypoint.sh)
        "-U",
        "postgres",
        "-d",
        "pyauth",
        "-Atc",
        "SELECT count(*) FROM users",
    )
    return int(out.strip())


def check_postgres_restart(edge: Edge, outcome: Outcome) -> None:
    """Restart Postgres (a forced update of its service: a clean stop, a new task on the same volume, at a
    new address) under a steady trickle of `/users/me`: 200 or 503 only, recovery without restarting any
    API task, and the rows committed before it all there after."""
    account = new_account(edge, outcome)
    if account is None:
        return
    email, password, reply = account
    token, refresh_token = str(reply.field("access_token")), str(reply.field("refresh_token"))
    users_before = users_in_database()
    api_before = sorted(task_containers("api"))
    started = time.monotonic()
    docker("service", "update", "--force", "--detach", f"{STACK}_db")
    statuses: Counter[int] = Counter()
    unavailable: list[float] = []
    slowest = 0.0
    streak = 0
    while time.monotonic() - started < 120:
        me = edge.me(token, timeout=30)
        statuses[me.status] += 1
        slowest = max(slowest, me.seconds)
        if me.status == 503:
            unavailable.append(time.monotonic() - started)
        streak = streak + 1 if me.status == 200 and (unavailable or time.monotonic() - started > 5) else 0
        if streak >= 10 and time.monotonic() - started > 8:
            break
        time.sleep(0.2)
    recovered_after = time.monotonic() - started
    outcome.expect(set(statuses) <= {200, 503}, f"/users/me during the restart answered {dict(statuses)}")
    outcome.expect(streak >= 10, f"no recovery within 120 s: {dict(statuses)}")
    api_after = sorted(task_containers("api"))
    outcome.expect(api_before == api_after, "API tasks were replaced during the database restart")
    logged_in = edge.login(email, password)
    refreshed = edge.refresh(refresh_token)
    users_after = users_in_database()
    outcome.expect(logged_in.status == 200, f"the account made before the restart: login {logged_in.status}")
    outcome.expect(
        refreshed.status == 200, f"the refresh token issued before the restart: {refreshed.status}"
    )
    outcome.expect(users_after >= users_before, f"users before {users_before}, after {users_after}")
    window = f"{unavailable[0]:.1f}-{unavailable[-1]:.1f} s" if unavailable else "none"
    outcome.notes.append(
        f"restart: /users/me answered {dict(statuses)} (503s in {window}, slowest {slowest:.1f} s: PgBouncer "
        f"holds a query up to its query_wait_timeout, 10 s); steady again {recovered_after:.1f} s after the "
        f"restart began; API tasks unchanged: {api_before == api_after}; "
        f"users {users_before} -> {users_after}"
    )
    check_postgres_away(edge, outcome, token, api_before)


def check_postgres_away(edge: Edge, outcome: Outcome, token: str, api_before: list[str]) -> None:
    """Postgres away for longer than PgBouncer holds a query (its service scaled to 0 for 20 s): the
    API answers 503 with Retry-After and /health/ready 503, then recovers once Postgres is back."""
    docker("service", "scale", "--detach", f"{STACK}_db=0")
    started = time.monotonic()
    statuses: Counter[int] = Counter()
    ready: Counter[int] = Counter()
    retry_after = set()
    try:
        while time.monotonic() - started < 20:
            me = edge.me(token, timeout=30)
            statuses[me.status] += 1
            if me.status == 503:
                retry_after.add(me.field("error"))
            ready[edge.call("GET", "/health/ready", timeout=10).status] += 1
    finally:
        docker("service", "scale", "--detach", f"{STACK}_db=1")
    back = time.monotonic()
    recovered = None
    while time.monotonic() - back < 90:
        if edge.me(token, timeout=30).status == 200:
            recovered = time.monotonic() - back
            break
        time.sleep(0.5)
    outcome.expect(statuses.get(503, 0) > 0, f"/users/me with Postgres away answered {dict(statuses)}")
    outcome.expect(set(statuses) <= {200, 503}, f"/users/me with Postgres away answered {dict(statuses)}")
    outcome.expect(ready.get(503, 0) > 0, f"/health/ready with Postgres away answered {dict(ready)}")
    outcome.expect(recovered is not None, "no recovery within 90 s of Postgres coming back")
    outcome.expect(
        sorted(task_containers("api")) == api_before, "API tasks were replaced while Postgres was away"
    )
    outcome.notes.append(
        f"away 20 s: /users/me answered {dict(statuses)} (errors {sorted(map(str, retry_after))}), "
        f"/health/ready {dict(ready)}; 200 again {recovered if recovered is None else round(recovered, 1)} s "
        "after Postgres was started again; API tasks unchanged"
    )


CHECKS: dict[str, tuple[str, Callable[[Edge, Outcome], None]]] = {
    "1": ("refresh reuse detection across replicas", check_refresh_reuse),
    "2": ("login throttling and per-IP limits across replicas", check_counters),
    "3": ("key rotation reaches every replica", check_key_rotation),
    "4": ("rolling update under load", check_rolling_update),
    "5": ("SIGKILL of one API task under load", check_sigkill),
    "6": ("Postgres restart and outage: 503, recovery without restarts, no lost row", check_postgres_restart),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CHECKS), help="comma-separated check numbers")
    args = parser.parse_args()
    if not CA_FILE.is_file():
        print(f"scale-check: {CA_FILE} is missing: run make swarm-up first")
        return 1
    edge = Edge()
    ready = edge.call("GET", "/health/ready", timeout=5)
    if ready.status != 200:
        print(
            f"scale-check: https://localhost:{EDGE_PORT}/health/ready answered {ready.status}: "
            "make swarm-up first"
        )
        return 1
    outcomes = []
    total: Counter[str] = Counter()
    for number in args.only.split(","):
        name, check = CHECKS[number.strip()]
        outcome = Outcome(f"{number}. {name}")
        edge.outcome = outcome
        started = time.monotonic()
        try:
            check(edge, outcome)
        except Exception as error:  # a check that breaks is a failed check, reported as such
            outcome.problems.append(f"{type(error).__name__}: {error}")
        edge.outcome = None
        total.update(outcome.served)
        outcomes.append(outcome)
        verdict = "PASS" if not outcome.problems else "FAIL"
        served = ", ".join(f"{name} {count}" for name, count in sorted(outcome.served.items()))
        print(
            f"[{verdict}] {outcome.name} ({time.monotonic() - started:.1f} s; served: {served})", flush=True
        )
        for note in outcome.notes:
            print(f"       {note}")
        for problem in outcome.problems:
            print(f"   !!  {problem}")
    print("requests per replica, all checks: " + ", ".join(f"{n} {c}" for n, c in sorted(total.items())))
    failed = [outcome.name for outcome in outcomes if outcome.problems]
    print("scale-check: " + ("all passed" if not failed else f"FAILED: {'; '.join(failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
