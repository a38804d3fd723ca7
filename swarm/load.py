"""Load through the edge for the scale check: a steady mixed load to hold while something happens (an
update, a killed task), and closed-loop runs that measure throughput and CPU time per request.

`MixedLoad` offers RATE requests a second in total, open loop: THREADS threads each on a fixed schedule
(a slow answer does not lower the offer; the thread catches up) over a kept-alive connection (the edge
balances each request), mixed 16:3:1 `GET /users/me`, refresh and password login (a login costs about
40 times a `/users/me`), each thread cycling through the mix from another place. Each thread has a session
of its own (one login before the load starts) and carries its refresh chain on: a lost rotation would
break the chain (a thread whose refresh failed signs in again and carries the new session on). Every
login that answered 200 is a session that must be in the database afterwards. The threads share the
accounts, at most LOGINS_PER_ACCOUNT threads to one: login throttling reserves an attempt before the
password check, so more concurrent logins to one account than its free attempts are refused.

`closed_loop` runs one kind of request back to back on THREADS threads, each over a kept-alive connection,
and reads the CPU counters of every task of the API, PgBouncer, Postgres and the edge around it.
"""

import math
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from client import Edge, Reply
from stack import cpu_seconds, task_containers

MIX = ("me",) * 16 + ("refresh",) * 3 + ("login",)
LOGINS_PER_ACCOUNT = 4


@dataclass
class Chain:
    """One thread's session: its access token and the newest refresh token of its chain."""

    access_token: str
    refresh_token: str
    rotations: int = 0

    def take_tokens(self, reply: Reply) -> None:
        """Go on with the tokens of a login's or a refresh's 200."""
        self.access_token = str(reply.field("access_token"))
        self.refresh_token = str(reply.field("refresh_token"))


def start_chain(edge: Edge, email: str, password: str) -> Chain:
    reply = edge.login(email, password)
    if reply.status != 200:
        raise RuntimeError(f"login for a load session answered {reply.status} {reply.body}")
    return Chain(str(reply.field("access_token")), str(reply.field("refresh_token")))


def step(edge: Edge, kind: str, chain: Chain, email: str, password: str) -> Reply:
    """One request of the kind on the chain's session; a refresh moves the chain on."""
    if kind == "me":
        return edge.me(chain.access_token)
    if kind == "login":
        return edge.login(email, password)
    reply = edge.refresh(chain.refresh_token)
    if reply.status == 200:
        chain.take_tokens(reply)
        chain.rotations += 1
    return reply


class MixedLoad:
    def __init__(
        self, edge: Edge, accounts: list[tuple[str, str]], *, rate: float = 200.0, threads: int = 20
    ) -> None:
        self.edge, self.rate, self.threads = edge, rate, threads
        self.accounts = [accounts[index % len(accounts)] for index in range(threads)]
        self.chains = [start_chain(edge, *account) for account in self.accounts]
        self.statuses: Counter[str] = Counter()
        self.failures: list[str] = []
        self.logins = threads  # the sessions made so far, the chains' own logins included
        self.latest_lag = 0.0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers = [
            threading.Thread(target=self._run, args=(index,), daemon=True) for index in range(threads)
        ]
        self.started = self.seconds = 0.0

    def _run(self, index: int) -> None:
        chain, period = self.chains[index], self.threads / self.rate
        due = self.started + index * period / self.threads
        slot = 0
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            kind = MIX[(slot + index) % len(MIX)]
            reply = step(self.edge, kind, chain, *self.accounts[index])
            # A refresh that failed leaves the chain without a token that works (the rotation may have
            # been committed by a task that died before it answered): as a client would, the thread
            # signs in again and goes on with the new session, so one lost answer is one failure.
            renewed = None
            if kind == "refresh" and reply.status != 200:
                renewed = self.edge.login(*self.accounts[index])
                if renewed.status == 200:
                    chain.take_tokens(renewed)
            with self.lock:
                self.statuses[f"{kind} {reply.status}"] += 1
                self.latest_lag = max(self.latest_lag, time.monotonic() - due - reply.seconds)
                if reply.status != 200:
                    self.failures.append(f"{kind} {reply.status}@{reply.served_by}: {str(reply.body)[:80]}")
                elif kind == "login":
                    self.logins += 1
                if renewed is not None:
                    self.statuses[f"login {renewed.status}"] += 1
                    if renewed.status == 200:
                        self.logins += 1
                    else:
                        self.failures.append(
                            f"login {renewed.status}@{renewed.served_by} after a failed refresh"
                        )
            slot += 1
            due += period

    def __enter__(self) -> "MixedLoad":
        self.started = time.monotonic()
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=40)
        self.seconds = time.monotonic() - self.started

    def broken_chains(self) -> list[str]:
        """Each chain's newest refresh token once more: any but 200 is a rotation that did not stick."""
        broken = []
        for number, chain in enumerate(self.chains):
            reply = self.edge.refresh(chain.refresh_token)
            if reply.status != 200:
                broken.append(f"chain {number} after {chain.rotations} rotations: {reply.status}")
        return broken

    @property
    def answered_rate(self) -> float:
        return self.answered() / max(self.seconds, 0.001)

    def answered(self) -> int:
        """Answers so far, while the load runs."""
        with self.lock:
            return sum(self.statuses.values())

    def rate_so_far(self) -> float:
        """Answers a second since the load started, while it runs."""
        return self.answered() / max(time.monotonic() - self.started, 0.001)

    def summary(self) -> str:
        total = self.answered()
        return (
            f"{total} requests in {self.seconds:.0f} s ({self.answered_rate:.0f}/s of "
            f"{self.rate:.0f}/s offered; the schedule's worst lag {self.latest_lag:.2f} s): "
            f"{dict(sorted(self.statuses.items()))}; {sum(chain.rotations for chain in self.chains)} "
            f"rotations over {len(self.chains)} chains"
        )


def mixed_capacity(
    edge: Edge, accounts: list[tuple[str, str]], *, threads: int, seconds: float, warm_up: float = 2.0
) -> tuple[float, list[str]]:
    """The mix back to back (an unbounded offer) on THREADS threads: the answers a second over SECONDS
    after WARM_UP (tasks just started are slower at first), with the load generator on the same cores;
    and the failed requests."""
    probe = MixedLoad(edge, accounts, rate=math.inf, threads=threads)
    with probe:
        time.sleep(warm_up)
        answered_before, started = probe.answered(), time.monotonic()
        time.sleep(seconds)
        rate = (probe.answered() - answered_before) / (time.monotonic() - started)
    return rate, probe.failures


# The services whose CPU counters a closed-loop run reads, each task's container separately.
MEASURED_SERVICES = ("api", "pgbouncer", "db", "edge")


@dataclass
class Run:
    """One closed-loop run: answers, failures, and CPU seconds per container over the run."""

    kind: str
    threads: int
    seconds: float = 0.0
    answered: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    served: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # service -> container -> seconds
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.answered / max(self.seconds, 0.001)

    def cpu_ms_per_request(self, service: str) -> float | None:
        used = self.cpu.get(service)
        return None if not used or not self.answered else 1000 * sum(used.values()) / self.answered

    def cores(self, service: str) -> float:
        return sum(self.cpu.get(service, {}).values()) / max(self.seconds, 0.001)


def _counters() -> dict[str, dict[str, float | None]]:
    return {service: {c: cpu_seconds(c) for c in task_containers(service)} for service in MEASURED_SERVICES}


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def closed_loop(kind: str, request: Callable[[Edge, int], Reply], *, threads: int, seconds: float) -> Run:
    """THREADS threads each sending `request(edge, thread_index)` back to back for SECONDS, on kept-alive
    connections; the counters read right before and after."""
    edge = Edge(keep_alive=True)
    edge.served = Counter()
    run = Run(kind, threads)
    stop = threading.Event()
    lock = threading.Lock()

    def work(index: int) -> None:
        while not stop.is_set():
            reply = request(edge, index)
            with lock:
                if reply.status == 200:
                    run.answered += 1
                else:
                    run.failures[f"{reply.status} {str(reply.body)[:60]}"] += 1

    workers = [threading.Thread(target=work, args=(index,), daemon=True) for index in range(threads)]
    before, client_before = _counters(), _client_cpu()
    started = time.monotonic()
    for worker in workers:
        worker.start()
    stop.wait(seconds)
    stop.set()
    for worker in workers:
        worker.join(timeout=40)
    run.seconds = time.monotonic() - started
    after, run.client_cpu = _counters(), _client_cpu() - client_before
    for service, containers in after.items():
        run.cpu[service] = {
            container[:12]: end - start
            for container, end in containers.items()
            if end is not None and (start := before[service].get(container)) is not None
        }
    run.served = edge.served
    return run
