"""The checks of `make faults`, one function each, in the order of issue 5's list.

Each check drives the real stack (faults/stack.py) and the API over HTTP (faults/client.py), then looks in
the database for what must (and must not) be there. It returns an `Outcome`: pass or fail, the figures it
measured, and what went wrong. Bounds are stated as constants below, with the reason for their size.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import count

from client import Account, Api, Load, Reply, create_account, in_parallel
from stack import Stack

# The db is back within ~2 s of `compose start` on a 2-core machine; pre-ping then swaps each dead pooled
# connection for a new one on first use. 15 s leaves room for a busy machine.
RECOVERY_BOUND = 15.0
OUTAGE_SECONDS = 6.0
# A request refused for want of a connection answers after DB_POOL_TIMEOUT (or DB_READY_TIMEOUT for the
# readiness probe); this is the slack allowed on top, for scheduling on a loaded machine.
POOL_SLACK = 3.0
ACKNOWLEDGED_REGISTRATIONS = 25
DOMAIN = "faults.example"


@dataclass
class Outcome:
    number: str
    name: str
    passed: bool = True
    figures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.passed = False
            self.problems.append(problem)


class Context:
    """What every check shares: the stack, the API client, its settings, and fresh names."""

    def __init__(self, stack: Stack, settings: dict[str, float]) -> None:
        self.stack = stack
        self.api = Api(stack.api_url)
        self.settings = settings
        self.run_id = secrets.token_hex(3)
        # Hex only: it can contain neither an address's local part (which has a dash) nor "faults".
        self.password = f"Q{secrets.token_hex(12)}z"
        self._numbers = count(1)
        self._lock = threading.Lock()

    def email(self, label: str) -> str:
        with self._lock:
            number = next(self._numbers)
        return f"{label}-{self.run_id}-{number}@{DOMAIN}"

    def account(self, label: str) -> Account:
        return create_account(self.api, self.email(label), self.password)

    @property
    def workers(self) -> int:
        return int(self.settings["workers"])


class Registrations:
    """Registrations of new accounts for a load, each email noted before it is sent, so that a check can
    look for every attempted one in the database, acknowledged or not. Replies carry the email as kind."""

    def __init__(self, ctx: Context, label: str, *, timeout: float) -> None:
        self.ctx, self.label, self.timeout = ctx, label, timeout
        self.attempted: list[str] = []
        self._lock = threading.Lock()

    def register(self) -> Reply:
        email = self.ctx.email(self.label)
        with self._lock:
            self.attempted.append(email)
        reply = self.ctx.api.call(
            "POST",
            "/auth/register",
            kind="register",
            json_body={"email": email, "password": self.ctx.password},
            timeout=self.timeout,
        )
        return Reply(
            email, reply.started, reply.finished, reply.status, reply.error, reply.body, reply.headers
        )


# -- helpers --------------------------------------------------------------------------------------------


def tally(replies: Iterable[Reply]) -> Counter[str]:
    return Counter(
        str(reply.status) if reply.status is not None else reply.error or "error" for reply in replies
    )


def show(counter: Counter[str]) -> str:
    return " ".join(f"{key}x{value}" for key, value in sorted(counter.items())) or "none"


def server_errors(replies: Iterable[Reply]) -> list[Reply]:
    """Answers no fault may cause: any 5xx other than the documented 503."""
    return [
        reply for reply in replies if reply.status is not None and reply.status >= 500 and reply.status != 503
    ]


def first_after(replies: Iterable[Reply], since: float, accept: Callable[[Reply], bool]) -> Reply | None:
    matching = [reply for reply in replies if reply.started >= since and accept(reply)]
    return min(matching, key=lambda reply: reply.finished) if matching else None


def quoted(values: Iterable[str]) -> str:
    return ",".join("'" + value.replace("'", "''") + "'" for value in values)


def secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def span(values: list[float]) -> str:
    if not values:
        return "none"
    low, high = min(values), max(values)
    return f"{low:.1f} s" if high - low < 0.05 else f"{low:.1f}-{high:.1f} s"


def complete_answer(reply: Reply) -> bool:
    """An HTTP status and the whole JSON body: a connection cut mid-answer leaves no status (the client
    reads to the end of the declared length) or a body that does not parse."""
    return reply.status is not None and isinstance(reply.body, dict)


def registrations_kept(
    stack: Stack, attempted: list[str], acknowledged: list[str]
) -> tuple[int, int, list[str], list[str]]:
    """Whether each attempted registration is all or nothing in the database (user, audit row,
    verification token and mail together), and which acknowledged ones are missing: (whole, absent,
    half-applied, lost)."""
    if not attempted:
        return 0, 0, [], list(acknowledged)
    rows = stack.psql(
        "SELECT e.email, u.id IS NOT NULL, "
        "(SELECT count(*) FROM audit_events a WHERE a.user_id = u.id AND a.event = 'user.registered'), "
        "(SELECT count(*) FROM account_tokens t WHERE t.user_id = u.id AND t.purpose = 'verify_email'), "
        "(SELECT count(*) FROM mail_outbox m WHERE m.recipient = e.email AND m.kind = 'verify_email') "
        f"FROM unnest(ARRAY[{quoted(attempted)}]::text[]) AS e(email) LEFT JOIN users u ON u.email = e.email"
    )
    complete = absent = 0
    half: list[str] = []
    for email, exists, audits, tokens, mails in rows:
        if exists == "t" and (audits, tokens, mails) == ("1", "1", "1"):
            complete += 1
        elif exists == "f" and mails == "0":
            absent += 1
        else:
            half.append(f"{email}: user={exists} audit={audits} token={tokens} mail={mails}")
    present = {row[0] for row in rows if row[1] == "t"}
    return complete, absent, half, [email for email in acknowledged if email not in present]


# -- 1. database stopped under load ---------------------------------------------------------------------


def db_stopped_under_load(ctx: Context) -> Outcome:
    outcome = Outcome("1", "database stopped under load")
    stack, api = ctx.stack, ctx.api
    account = ctx.account("db")
    before = stack.state("api")
    steps: list[Callable[[], Reply]] = [
        lambda: api.login(account.email, account.password, timeout=30),
        lambda: api.me(account.access_token, timeout=30),
        lambda: api.live(timeout=10),
        lambda: api.ready(timeout=10),
    ]
    with Load(steps, max_seconds=OUTAGE_SECONDS + RECOVERY_BOUND + 30, pause=0.05) as load:
        time.sleep(2.0)
        stop_issued = time.time()
        stack.compose("stop", "db")
        stopped = time.time()
        time.sleep(OUTAGE_SECONDS)
        start_issued = time.time()
        stack.compose("start", "db")
        started = time.time()
        deadline = time.monotonic() + RECOVERY_BOUND + 10
        while time.monotonic() < deadline:
            seen = load.snapshot()
            if first_after(seen, started, lambda r: r.kind == "ready" and r.status == 200) and first_after(
                seen, started, lambda r: r.kind == "login" and r.issued_token
            ):
                break
            time.sleep(0.2)
        replies = load.stop()
    after = stack.state("api")

    def kinds(selection: list[Reply], kind: str) -> list[Reply]:
        return [reply for reply in selection if reply.kind == kind]

    warmup = [reply for reply in replies if reply.finished < stop_issued]
    outage = [reply for reply in replies if reply.started >= stopped and reply.finished <= start_issued]
    for kind, status in (("login", 200), ("me", 200), ("live", 200), ("ready", 200)):
        outcome.expect(
            any(reply.status == status for reply in kinds(warmup, kind)),
            f"no {kind} {status} before the stop",
        )
    refused = kinds(outage, "login") + kinds(outage, "me")
    issued = [reply for reply in outage if reply.issued_token]
    sessions_while_down = int(
        stack.scalar(
            "SELECT count(*) FROM auth_sessions WHERE created_at > to_timestamp("
            f"{stopped}) AND created_at < to_timestamp({start_issued})"
        )
    )
    live = kinds(outage, "live")
    ready = kinds(outage, "ready")
    outcome.expect(
        bool(refused) and all(reply.generic_503 for reply in refused),
        f"while down, login and /users/me answered {show(tally(refused))}, not only the generic 503",
    )
    # A session's created_at is its login's auth_time: when the request began. A login that began while the
    # db was down, waited for a connection and was answered after the restart dates its session inside the
    # outage although its row was written after it; any other session dated there would be a real one.
    spanning = [
        reply
        for reply in kinds(replies, "login")
        if stopped <= reply.started < start_issued and reply.finished > start_issued and reply.issued_token
    ]
    outcome.expect(
        not issued and sessions_while_down <= len(spanning),
        f"{len(issued)} tokens issued, {sessions_while_down} sessions created while the db was down "
        f"({len(spanning)} by logins that began then and were answered after the restart)",
    )
    outcome.expect(
        bool(live) and all(reply.status == 200 for reply in live),
        f"/health/live answered {show(tally(live))} while the db was down",
    )
    outcome.expect(
        bool(ready) and all(reply.status == 503 for reply in ready),
        f"/health/ready answered {show(tally(ready))} while the db was down",
    )
    first_503 = first_after(replies, stop_issued, lambda r: r.kind == "ready" and r.status == 503)
    ready_back = first_after(replies, started, lambda r: r.kind == "ready" and r.status == 200)
    token_back = first_after(replies, started, lambda r: r.kind == "login" and r.issued_token)
    ready_after = ready_back.finished - started if ready_back else None
    token_after = token_back.finished - started if token_back else None
    outcome.expect(
        ready_after is not None and ready_after <= RECOVERY_BOUND,
        f"/health/ready not 200 within {RECOVERY_BOUND:.0f} s of the db start",
    )
    outcome.expect(
        token_after is not None and token_after <= RECOVERY_BOUND,
        f"no token issued within {RECOVERY_BOUND:.0f} s of the db start",
    )
    outcome.expect(
        after.started_at == before.started_at and after.restart_count == before.restart_count,
        "the api container was restarted",
    )
    errors = server_errors(replies)
    unanswered = [reply for reply in replies if reply.status is None]
    outcome.expect(not errors, f"server errors: {show(tally(errors))}")
    outcome.expect(not unanswered, f"requests without an answer: {show(tally(unanswered))}")
    outcome.figures += [
        f"{len(replies)} requests on 4 workers; db down {start_issued - stopped:.1f} s",
        f"while down: login+/users/me generic 503 x{len(refused)}, tokens issued {len(issued)} "
        f"(sessions in db {sessions_while_down}), live 200 x{len(live)}, ready 503 x{len(ready)}",
        f"ready 503 after the stop: {secs(first_503.finished - stop_issued if first_503 else None)}",
        f"recovered after db start: ready {secs(ready_after)}, token {secs(token_after)} "
        f"(bound {RECOVERY_BOUND:.0f} s)",
        f"api StartedAt unchanged: {after.started_at == before.started_at}, restarts {after.restart_count}",
        f"all answers: {show(tally(replies))}",
    ]
    return outcome


# -- 2. pool exhausted ----------------------------------------------------------------------------------


def pool_exhausted(ctx: Context) -> Outcome:
    """Every pooled connection of every worker is held by a refresh that waits on a row lock taken from
    outside (psql, SELECT ... FOR UPDATE): the real pool, at its shipped size, with its real timeout."""
    outcome = Outcome("2", "pool exhausted")
    stack, api, settings = ctx.stack, ctx.api, ctx.settings
    pool_size, overflow = int(settings["pool_size"]), int(settings["max_overflow"])
    pool_timeout, ready_timeout = settings["pool_timeout"], settings["ready_timeout"]
    capacity = ctx.workers * (pool_size + overflow)
    victim, prober = ctx.account("pool-lock"), ctx.account("pool-probe")
    api_ip = stack.ip_address("api")

    def activity() -> tuple[int, int, int]:
        row = stack.psql(
            "SELECT count(*), count(*) FILTER (WHERE state <> 'idle'), "
            "count(*) FILTER (WHERE wait_event_type = 'Lock') "
            f"FROM pg_stat_activity WHERE client_addr = '{api_ip}'"
        )[0]
        return int(row[0]), int(row[1]), int(row[2])

    baseline = activity()
    holder = stack.psql_background(
        "BEGIN;\n"
        f"SELECT 1 FROM refresh_tokens WHERE session_id = '{victim.session_id}' AND used_at IS NULL\n"
        "FOR UPDATE;\nSELECT pg_sleep(90);\nROLLBACK;\n",
        "faults-lock",
    )
    lock_sessions = "FROM pg_stat_activity WHERE application_name = 'faults-lock'"
    holding = f"SELECT count(*) {lock_sessions} AND query LIKE '%pg_sleep%'"
    deadline = time.monotonic() + 20
    while stack.scalar(holding) != "1" and time.monotonic() < deadline:
        time.sleep(0.2)

    limit = 3 * capacity
    blocked: list[Future[Reply]] = []
    probes: list[Reply] = []
    peak = baseline
    with ThreadPoolExecutor(max_workers=limit + 8) as pool:

        def launch(number: int) -> None:
            for _ in range(number):
                blocked.append(pool.submit(api.refresh, victim.refresh_token, 150))

        # Requests spread unevenly over the workers: send more until every connection waits on the lock.
        # Those that find their worker's pool full already answer 503 after DB_POOL_TIMEOUT.
        launch(capacity)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(1.0)
            peak = activity()
            if peak[2] >= capacity:
                break
            launch(min(capacity - peak[2], limit - len(blocked)))
        held = peak[2] >= capacity
        outcome.expect(held, f"only {peak[2]} of {capacity} connections waiting on the lock after 30 s")
        if held:
            probe_calls: list[Callable[[], Reply]] = [
                *[lambda: api.me(prober.access_token, timeout=pool_timeout + 60)] * 2,
                *[lambda: api.login(prober.email, prober.password, timeout=pool_timeout + 60)] * 2,
                *[lambda: api.ready(timeout=pool_timeout + 60)] * 2,
                *[lambda: api.live(timeout=10)] * 2,
            ]
            probes = in_parallel(probe_calls, barrier=False)
            still = activity()
            outcome.expect(still[2] >= capacity, f"connections were released during the probes ({still[2]})")
        stack.psql(f"SELECT pg_terminate_backend(pid) {lock_sessions}")
        holder.wait(timeout=30)
        wait(blocked, timeout=120)
    outcomes = [future.result() for future in blocked if future.done()]

    deadline = time.monotonic() + 20
    after = activity()
    while (after[1] or after[2] or after[0] > ctx.workers * pool_size) and time.monotonic() < deadline:
        time.sleep(0.5)
        after = activity()
    lock_gone = stack.scalar(f"SELECT count(*) {lock_sessions}") == "0"
    healthy = api.me(prober.access_token)

    me = [reply for reply in probes if reply.kind == "me"]
    login = [reply for reply in probes if reply.kind == "login"]
    ready = [reply for reply in probes if reply.kind == "ready"]
    live = [reply for reply in probes if reply.kind == "live"]
    bound = pool_timeout + POOL_SLACK
    if held:
        refused = me + login
        outcome.expect(all(reply.generic_503 for reply in refused), f"probes answered {show(tally(refused))}")
        outcome.expect(
            all(reply.duration <= bound for reply in refused),
            f"a probe took {max(r.duration for r in refused):.1f} s (bound {bound:.0f} s)",
        )
        outcome.expect(
            all(reply.status == 503 and reply.duration <= ready_timeout + POOL_SLACK for reply in ready),
            f"/health/ready answered {show(tally(ready))} in {span([r.duration for r in ready])}",
        )
        outcome.expect(
            all(reply.status == 200 for reply in live), f"/health/live answered {show(tally(live))}"
        )
    statuses = tally(outcomes)
    outcome.expect(
        len(outcomes) == len(blocked), f"{len(blocked) - len(outcomes)} blocked requests never ended"
    )
    outcome.expect(statuses.get("200", 0) == 1, f"blocked refreshes answered {show(statuses)} (want one 200)")
    outcome.expect(set(statuses) <= {"200", "400", "503"}, f"blocked refreshes answered {show(statuses)}")
    outcome.expect(
        not after[1] and not after[2] and after[0] <= ctx.workers * pool_size and lock_gone,
        f"pg_stat_activity did not settle: {after[0]} connections, {after[1]} busy, {after[2]} waiting",
    )
    outcome.expect(healthy.status == 200, f"/users/me after the release answered {healthy.status}")
    pool_503 = [reply.duration for reply in outcomes if reply.status == 503]
    outcome.figures += [
        f"capacity {ctx.workers} workers x ({pool_size}+{overflow}) = {capacity} connections; waiting on "
        f"the lock: {peak[2]} ({len(blocked)} refreshes sent)",
        f"probes while held: /users/me {show(tally(me))} in {span([r.duration for r in me])}, "
        f"token {show(tally(login))} in {span([r.duration for r in login])} "
        f"(DB_POOL_TIMEOUT {pool_timeout:g} s, bound {bound:g} s)",
        f"ready {show(tally(ready))} in {span([r.duration for r in ready])} "
        f"(DB_READY_TIMEOUT {ready_timeout:g} s), live {show(tally(live))} "
        f"in {span([r.duration for r in live])}",
        f"blocked refreshes after release: {show(statuses)}; pool timeouts among them after {span(pool_503)}",
        f"pg_stat_activity (api): before {baseline[0]} conns/{baseline[1]} busy -> held {peak[0]}/{peak[2]} "
        f"waiting -> after {after[0]}/{after[1]} busy/{after[2]} waiting "
        f"(idle pool <= {ctx.workers * pool_size})",
    ]
    return outcome


# -- 3. SIGTERM during load ----------------------------------------------------------------------------


def sigterm_during_load(ctx: Context) -> Outcome:
    outcome = Outcome("3", "SIGTERM during load (restart api)")
    stack, api = ctx.stack, ctx.api
    grace = stack.stop_grace_seconds("api")
    families = [ctx.account("term-family") for _ in range(3)]
    load_registrations = Registrations(ctx, "term", timeout=grace + 30)
    attempted, register = load_registrations.attempted, load_registrations.register

    def refresher(account: Account) -> Callable[[], Reply]:
        current = [account.refresh_token]

        def step() -> Reply:
            reply = api.refresh(current[0], timeout=grace + 30)
            if reply.status == 200:
                current[0] = str(reply.field("refresh_token"))
            return reply

        return step

    steps = [register, register, register, *(refresher(account) for account in families)]
    with Load(steps, max_seconds=grace + 120) as load:
        time.sleep(1.5)
        signalled = time.time()
        stack.compose("restart", "api", timeout=grace + 120)
        restarted = time.time()
        back = stack.wait_ready(90)
        time.sleep(1.0)
        replies = load.stop()
    exit_codes = stack.exit_codes("api", signalled - 1, time.time())
    logs = stack.logs_since("api", signalled)
    clean_shutdowns = logs.count("shutdown: database engine disposed")

    registrations = {reply.kind: reply for reply in replies if reply.kind not in ("refresh",)}
    acknowledged = [email for email, reply in registrations.items() if reply.status == 201]
    complete, absent, half, lost = registrations_kept(stack, attempted, acknowledged)

    family_rows = stack.psql(
        "SELECT s.id, count(*) FILTER (WHERE r.used_at IS NULL), "
        "count(*) FILTER (WHERE r.used_at IS NOT NULL), "
        "(SELECT count(*) FROM audit_events a WHERE a.session_id = s.id AND a.event = 'token.refreshed') "
        "FROM auth_sessions s JOIN refresh_tokens r ON r.session_id = s.id "
        f"WHERE s.id IN ({quoted(account.session_id for account in families)}) GROUP BY s.id"
    )
    broken = [row for row in family_rows if row[1] != "1" or row[2] != row[3]]
    rotations = sum(int(row[2]) for row in family_rows)

    in_flight = [reply for reply in replies if reply.started <= signalled < reply.finished]
    cut_off = [reply for reply in in_flight if not complete_answer(reply)]
    unanswered = [reply for reply in replies if reply.status is None]
    slowest = max((reply.duration for reply in replies), default=0.0)
    outcome.expect(bool(in_flight), "no request was in flight at SIGTERM")
    outcome.expect(
        not cut_off,
        f"{len(cut_off)} of {len(in_flight)} requests in flight at SIGTERM got no complete answer: "
        f"{show(tally(cut_off))}",
    )
    outcome.expect(not server_errors(replies), f"server errors: {show(tally(server_errors(replies)))}")
    outcome.expect(slowest <= grace, f"a request took {slowest:.1f} s, over the {grace:g} s grace period")
    outcome.expect(
        exit_codes == [0], f"the api process exited with {exit_codes} (137 = killed after the grace)"
    )
    outcome.expect(
        clean_shutdowns >= ctx.workers, f"{clean_shutdowns} of {ctx.workers} workers logged a clean shutdown"
    )
    outcome.expect(not half, f"half-applied registrations: {half[:3]}")
    outcome.expect(not lost, f"acknowledged registrations missing: {lost[:3]}")
    outcome.expect(
        len(family_rows) == len(families) and not broken,
        f"refresh families not whole: {broken or family_rows}",
    )
    outcome.figures += [
        f"restart took {restarted - signalled:.1f} s (grace {grace:g} s), old process exit code "
        f"{','.join(map(str, exit_codes)) or '?'}, {clean_shutdowns}/{ctx.workers} workers shut down "
        f"cleanly, ready {back:.1f} s later",
        f"{len(replies)} requests; {len(in_flight)} in flight at SIGTERM: {show(tally(in_flight))}, "
        f"{len(in_flight) - len(cut_off)} of them answered completely",
        f"all answers: {show(tally(replies))}; no answer (refused/reset) x{len(unanswered)}; "
        f"slowest {slowest:.1f} s",
        f"registrations: {len(attempted)} sent, {len(acknowledged)} acknowledged; in db all-or-nothing: "
        f"{complete} whole (user+audit+token+mail), {absent} absent, {len(half)} half-applied, "
        f"{len(lost)} lost",
        f"refresh families: {len(family_rows)} with exactly one live token; "
        f"{rotations} rotations = audit rows",
    ]
    return outcome


# -- 4. kill -9 of the database container ---------------------------------------------------------------


def committed_rows_digest(stack: Stack, user_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Count and digest of every row the given accounts have in the tables a registration and a login
    write, each row taken whole (`row::text`), so that a lost, torn or rolled-back row shows. The mail
    outbox is left out: the worker updates its rows on its own schedule."""
    ids = f"ARRAY[{quoted(user_ids)}]::uuid[]"
    tables = {
        "users": f"FROM users t WHERE t.id = ANY({ids})",
        "sessions": f"FROM auth_sessions t WHERE t.user_id = ANY({ids})",
        "refresh tokens": "FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id "
        f"WHERE s.user_id = ANY({ids})",
        "audit rows": f"FROM audit_events t WHERE t.user_id = ANY({ids})",
        "account tokens": f"FROM account_tokens t WHERE t.user_id = ANY({ids})",
    }
    sql = "\nUNION ALL ".join(
        f"SELECT '{name}', count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') {rest}"
        for name, rest in tables.items()
    )
    return {row[0]: (row[1], row[2]) for row in stack.psql(sql + ";")}


def postgres_killed(ctx: Context) -> Outcome:
    """SIGKILL to the db container itself (`docker kill`): Postgres is its PID 1, so the kernel kills
    every process in it at once (postmaster, backends, WAL writer, checkpointer), with registrations
    still arriving. Every acknowledged row must come back through crash recovery."""
    outcome = Outcome("4", "kill -9 of the database container")
    stack, api = ctx.stack, ctx.api
    before = stack.state("api")
    with ThreadPoolExecutor(max_workers=4) as pool:
        accounts = list(pool.map(lambda _: ctx.account("kill"), range(ACKNOWLEDGED_REGISTRATIONS)))
    digest_before = committed_rows_digest(stack, (a.user_id for a in accounts))

    load_registrations = Registrations(ctx, "kill-load", timeout=60)
    attempted, register = load_registrations.attempted, load_registrations.register

    db = stack.state("db")
    with Load([register, register], max_seconds=150, pause=0.05) as load:
        # Kill once some registrations under load have been acknowledged (a loaded machine hashes slowly).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(r.status == 201 for r in load.snapshot()) < 3:
            time.sleep(0.1)
        killed = time.time()
        stack.run("docker", "kill", "--signal", "KILL", db.id)
        dead = stack.wait_stopped("db")
        stack.compose("start", "db")
        db_back = stack.wait_db()
        api_back = stack.wait_ready(90)
        time.sleep(1.0)
        replies = load.stop()
    exit_codes = stack.exit_codes("db", killed - 1, time.time())
    recovered = "automatic recovery in progress" in stack.logs_since("db", killed)
    digest_after = committed_rows_digest(stack, (a.user_id for a in accounts))
    changed = [name for name in digest_before if digest_before[name] != digest_after.get(name)]
    acknowledged = [reply.kind for reply in replies if reply.status == 201]
    complete, absent, half, lost = registrations_kept(stack, attempted, acknowledged)
    with ThreadPoolExecutor(max_workers=4) as pool:
        refreshed = list(pool.map(lambda account: api.refresh(account.refresh_token), accounts))
    after = stack.state("api")
    n = len(accounts)
    acked_before_kill = sum(1 for reply in replies if reply.status == 201 and reply.finished < killed)
    outcome.expect(
        dead is not None and not dead.running and dead.exit_code == 137,
        f"the db container was not killed: {dead}",
    )
    outcome.expect(137 in exit_codes, f"db container exit codes {exit_codes}, expected 137 (SIGKILL)")
    outcome.expect(recovered, "Postgres did not log a crash recovery after the kill")
    outcome.expect(not changed, f"rows of the {n} acknowledged accounts changed or lost: {changed}")
    outcome.expect(acked_before_kill > 0, "no registration was acknowledged under load before the kill")
    outcome.expect(not lost, f"{len(lost)} registrations acknowledged under load are missing: {lost[:3]}")
    outcome.expect(not half, f"half-applied registrations: {half[:3]}")
    outcome.expect(
        all(reply.issued_token for reply in refreshed), f"refreshes answered {show(tally(refreshed))}"
    )
    outcome.expect(not server_errors(replies), f"server errors: {show(tally(server_errors(replies)))}")
    kept = ", ".join(f"{name} {count}" for name, (count, _) in digest_before.items())
    outcome.figures += [
        f"{n} registrations + logins acknowledged, then `docker kill -s KILL` of the db container under "
        f"load (container exit {dead.exit_code if dead else '?'}, die events "
        f"{','.join(map(str, exit_codes)) or '?'}); crash recovery ran: {'yes' if recovered else 'no'}",
        f"db accepting again {db_back:.1f} s after start, api ready {api_back:.1f} s later "
        f"(api restarted: {after.started_at != before.started_at})",
        f"rows of the {n} accounts identical before/after (whole-row digests): {kept}",
        f"under load: {len(attempted)} registrations sent, {len(acknowledged)} acknowledged "
        f"({acked_before_kill} before the kill), all answers {show(tally(replies))}; in db {complete} whole, "
        f"{absent} absent, {len(half)} half-applied, {len(lost)} acknowledged but lost",
        f"refresh with the {n} accounts' tokens: {show(tally(refreshed))}",
    ]
    return outcome


# -- login throttling: the only SQL that knows how failed logins are stored ------------------------------
# Its table is reshaped by the login-throttling work (issue 9, item 2); keep every query of it here.

LOGIN_THROTTLE_DIGEST = (
    "SELECT 'login throttles', count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) "
    "FROM login_throttles t"
)


def failed_logins(stack: Stack, email: str) -> str:
    """The failed-login counter of the account with this email, as text ('' when there is none)."""
    return stack.scalar(f"SELECT failures FROM login_throttles WHERE email = '{email}' AND kind = 'login'")


# -- 5. make down / make up ----------------------------------------------------------------------------

SNAPSHOT = f"""
SELECT 'users', count(*), md5(string_agg(id::text || email || password_hash || is_active::text
    || is_verified::text || roles::text, ',' ORDER BY id)) FROM users
UNION ALL SELECT 'sessions', count(*), md5(string_agg(id::text || coalesce(revoked_at::text, '-')
    || coalesce(revoked_reason, '-') || last_used_at::text, ',' ORDER BY id)) FROM auth_sessions
UNION ALL SELECT 'revoked sessions', count(*), '' FROM auth_sessions WHERE revoked_at IS NOT NULL
UNION ALL SELECT 'refresh tokens', count(*), md5(string_agg(encode(token_hash, 'hex')
    || coalesce(used_at::text, '-'), ',' ORDER BY token_hash)) FROM refresh_tokens
UNION ALL {LOGIN_THROTTLE_DIGEST}
UNION ALL SELECT 'rate-limit windows', count(*), md5(string_agg(key || window_start::text || hits::text,
    ',' ORDER BY key, window_start)) FROM rate_limit_hits;
"""


def down_up(ctx: Context) -> Outcome:
    outcome = Outcome("5", "make down / make up")
    stack, api = ctx.stack, ctx.api
    keeper = ctx.account("keep")
    logged_out = api.login(keeper.email, keeper.password)
    revoked = api.login(keeper.email, keeper.password)
    api.logout(str(logged_out.field("access_token")))
    api.revoke(str(revoked.field("refresh_token")))
    throttled = ctx.account("throttle")
    for _ in range(3):
        api.login(throttled.email, "not the password at all")
    failures_before = failed_logins(stack, throttled.email)
    before = {row[0]: (row[1], row[2]) for row in stack.psql(SNAPSHOT)}

    volumes_before = stack.volumes()
    down_seconds = stack.make("down")
    stopped = not stack.state("api").running and not stack.state("db").running
    # `make down` only stops, so that `docker compose logs` still shows the shutdown; a developer's
    # cleanup after it removes the containers but never the volume.
    stack.compose("--profile", "test", "--profile", "faults", "down", "--remove-orphans", timeout=180)
    containers_left = stack.containers()
    volumes_between = stack.volumes()
    up_seconds = stack.make("up")
    after = {row[0]: (row[1], row[2]) for row in stack.psql(SNAPSHOT)}  # before any new request

    changed = [name for name in before if before[name] != after.get(name)]
    me = api.me(keeper.access_token)
    refresh = api.refresh(keeper.refresh_token)
    logged_out_me = api.me(str(logged_out.field("access_token")))
    revoked_refresh = api.refresh(str(revoked.field("refresh_token")))
    api.login(throttled.email, "not the password at all")
    failures_after = failed_logins(stack, throttled.email)
    outcome.expect(stopped, "make down left containers running")
    outcome.expect(not containers_left, f"containers left after compose down: {containers_left}")
    outcome.expect(
        bool(volumes_before) and volumes_between == volumes_before,
        f"volumes before {volumes_before}, after the containers were removed {volumes_between}",
    )
    outcome.expect(not changed, f"changed across make down/up: {changed}")
    outcome.expect(
        me.status == 200 and refresh.issued_token,
        f"the live session answered /users/me {me.status}, refresh {refresh.status}",
    )
    outcome.expect(
        logged_out_me.status == 401, f"a logged-out session's token answered {logged_out_me.status}"
    )
    outcome.expect(
        revoked_refresh.status == 400, f"a revoked refresh token answered {revoked_refresh.status}"
    )
    outcome.expect(
        failures_before == "3" and failures_after == "4",
        f"throttle counter {failures_before} -> {failures_after}, expected 3 -> 4",
    )
    kept = ", ".join(f"{name} {count}" for name, (count, _) in before.items())
    outcome.figures += [
        f"make down {down_seconds:.1f} s (all stopped: {stopped}), then compose down without -v: "
        f"{len(containers_left)} containers left, volume kept: {', '.join(volumes_between) or 'none'}; "
        f"make up {up_seconds:.1f} s",
        f"identical before/after (row digests): {kept}",
        f"after: live session /users/me {me.status}, refresh {refresh.status}; logged-out token "
        f"{logged_out_me.status}; revoked refresh token {revoked_refresh.status}; failed-login counter "
        f"{failures_before} -> {failures_after} on the next failure",
    ]
    return outcome


# -- 6. concurrency ------------------------------------------------------------------------------------


def concurrency(ctx: Context) -> Outcome:
    outcome = Outcome("6", "concurrency")
    stack, api = ctx.stack, ctx.api

    email = ctx.email("same")
    registrations = tally(in_parallel([lambda: api.register(email, ctx.password)] * 50))
    accounts = stack.scalar(f"SELECT count(*) FROM users WHERE email = '{email}'")
    outcome.expect(
        registrations == Counter({"201": 1, "409": 49}) and accounts == "1",
        f"50 registrations of one email: {show(registrations)}, {accounts} accounts",
    )

    racer = ctx.account("race")
    refreshes = in_parallel([lambda: api.refresh(racer.refresh_token)] * 20)
    winners = [reply for reply in refreshes if reply.issued_token]
    live_tokens, live_sessions = stack.psql(
        "SELECT (SELECT count(*) FROM refresh_tokens"
        f" WHERE session_id = '{racer.session_id}' AND used_at IS NULL),"
        f" (SELECT count(*) FROM auth_sessions WHERE user_id = '{racer.user_id}' AND revoked_at IS NULL)"
    )[0]
    follow_up = api.refresh(str(winners[0].field("refresh_token"))) if len(winners) == 1 else None
    outcome.expect(
        tally(refreshes) == Counter({"200": 1, "400": 19}),
        f"20 refreshes of one token: {show(tally(refreshes))}",
    )
    outcome.expect(
        live_tokens == "1" and live_sessions == "1",
        f"after the race: {live_tokens} live tokens, {live_sessions} live sessions",
    )
    outcome.expect(
        follow_up is not None and follow_up.issued_token, "the winner's refresh token did not work"
    )

    victim = ctx.account("wrong")
    logins = in_parallel([lambda: api.login(victim.email, "not the password at all")] * 100)
    invalid = sum(1 for reply in logins if reply.status == 400 and reply.field("error") == "invalid_grant")
    counted = failed_logins(stack, victim.email)
    audited = stack.scalar(
        f"SELECT count(*) FROM audit_events WHERE user_id = '{victim.user_id}' AND event = 'login.failed'"
    )
    outcome.expect(
        invalid == 100 and counted == "100" and audited == "100",
        f"100 wrong passwords: {show(tally(logins))}, counted {counted}, audited {audited}",
    )
    right_password = api.login(victim.email, victim.password)
    free_attempts = int(ctx.settings["login_free_attempts"])
    max_failures = int(ctx.settings["login_max_failures"])
    # LOGIN_MAX_FAILURES reached: a client the account has not seen is refused even with the password;
    # the owner's client, presenting the device token of its earlier login (where the API hands them
    # out), is not.
    outcome.expect(
        right_password.status in (400, 429) and not right_password.issued_token,
        f"after {max_failures} failures an unknown client with the right password got "
        f"{right_password.status} {right_password.field('error') or ''}, not a refusal",
    )
    known_device = (
        api.login(victim.email, victim.password, device_token=victim.device_token)
        if victim.device_token
        else None
    )
    outcome.expect(
        known_device is None or known_device.issued_token,
        f"the owner's device token did not get tokens: {known_device and known_device.status}",
    )
    outcome.figures += [
        f"50 parallel registrations of one email: {show(registrations)}; accounts with it: {accounts}",
        f"20 parallel refreshes of one token: {show(tally(refreshes))}; live tokens in the family "
        f"{live_tokens}, live sessions {live_sessions}; the winner's new token refreshes: "
        f"{follow_up.status if follow_up else 'not tried'}",
        f"100 parallel wrong passwords (LOGIN_FREE_ATTEMPTS={free_attempts}: each one is checked): "
        f"{show(tally(logins))}; failures counted {counted}, audited {audited}; then the right password: "
        f"{right_password.status} {right_password.field('error') or ''} (LOGIN_MAX_FAILURES={max_failures}); "
        "with the owner's device token: "
        + (f"{known_device.status}" if known_device else "no device token handed out"),
    ]
    return outcome


CHECKS: list[Callable[[Context], Outcome]] = [
    db_stopped_under_load,
    pool_exhausted,
    sigterm_during_load,
    postgres_killed,
    down_up,
    concurrency,
]
