"""CPU time per request of `make bench`'s runs, from the containers' cgroup counters.

bench/run.sh hands the driver the ids of the containers that do the work (BENCH_CONTAINERS, e.g.
`api=<id> db=<id> select=<id> …`) and compose.bench.yaml mounts the host's cgroup tree read-only into the
load generator (BENCH_CGROUP_ROOT, /host/cgroup). Around each measured run the driver reads every
container's CPU counter; the difference over the run's answered requests is each container's CPU time per
request. Both cgroup versions, with Docker's cgroupfs and systemd drivers:

- v1: `cpuacct/docker/<id>/cpuacct.usage` (or `cpuacct/system.slice/docker-<id>.scope/`): nanoseconds;
- v2: `system.slice/docker-<id>.scope/cpu.stat` (or `docker/<id>/`): its `usage_usec` line, microseconds.

A counter counts everything its container ran in the window: the requests, and whatever else ran there
(a healthcheck, the tail of requests in flight when wrk stopped). A container whose counter is not found
is left out of the report, and the driver says so once.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path(os.environ.get("BENCH_CGROUP_ROOT", "/host/cgroup"))
# What each label of BENCH_CONTAINERS is, in the report.
LABELS = {
    "api": "API",
    "db": "Postgres",
    "json": "constant-JSON ceiling",
    "select": "raw-SELECT ceiling",
    "rotation": "rotation ceiling",
    "argon2": "argon2id ceiling",
    "api_64mib": "API at 64 MiB",
    "argon2_64mib": "argon2id ceiling at 64 MiB",
}
# The container that answered a scenario, where it is not the API under test (`api`).
SCENARIO_SERVERS = {"login-64mib": "api_64mib", "register-64mib": "api_64mib"}
# The container doing a ceiling's work: the ceiling's name in the report -> its label in BENCH_CONTAINERS.
CEILING_CONTAINERS = {
    "json": "json",
    "select": "select",
    "rotation": "rotation",
    "argon2_verify": "argon2",
    "argon2_hash": "argon2",
    "argon2_verify_64mib": "argon2_64mib",
    "argon2_hash_64mib": "argon2_64mib",
}
# The ceilings that use the database: for the others, Postgres's counter is only what else ran meanwhile.
CEILINGS_USING_THE_DATABASE = frozenset({"select", "rotation"})


def parse_containers(value: str) -> dict[str, str]:
    """BENCH_CONTAINERS: space-separated `label=<container id>` (an empty id, of a container that is not
    running, is left out)."""
    containers = {}
    for item in value.split():
        label, _, container_id = item.partition("=")
        if label and container_id:
            containers[label] = container_id
    return containers


def counter_candidates(root: Path, container_id: str) -> list[Path]:
    """Where a container's CPU counter may be, cgroup v1 first, each with both Docker cgroup drivers."""
    scope = f"docker-{container_id}.scope"
    return [
        root / "cpuacct" / "docker" / container_id / "cpuacct.usage",
        root / "cpuacct" / "system.slice" / scope / "cpuacct.usage",
        root / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage",
        root / "cpu,cpuacct" / "system.slice" / scope / "cpuacct.usage",
        root / "system.slice" / scope / "cpu.stat",
        root / "docker" / container_id / "cpu.stat",
    ]


def find_counter(root: Path, container_id: str) -> Path | None:
    return next((path for path in counter_candidates(root, container_id) if path.is_file()), None)


def usage_nanoseconds(path: Path) -> int:
    """The CPU time a cgroup has used, in nanoseconds: v1's `cpuacct.usage` (nanoseconds), or the
    `usage_usec` line of v2's `cpu.stat` (microseconds)."""
    text = path.read_text()
    if path.name == "cpuacct.usage":
        return int(text.strip())
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) * 1000
    raise ValueError(f"{path}: no usage_usec line")


class CpuMeter:
    """Reads the CPU counters of the containers named in BENCH_CONTAINERS."""

    def __init__(self, root: Path, containers: Mapping[str, str]) -> None:
        self.counters: dict[str, Path] = {}
        self.missing: list[str] = []
        for label, container_id in containers.items():
            path = find_counter(root, container_id)
            if path is None:
                self.missing.append(label)
            else:
                self.counters[label] = path

    @classmethod
    def from_environment(cls) -> "CpuMeter":
        return cls(CGROUP_ROOT, parse_containers(os.environ.get("BENCH_CONTAINERS", "")))

    def describe(self) -> str:
        """One line for the driver's output: which containers are measured, which are not."""
        if not self.counters:
            return (
                f"no container's CPU counter found under {CGROUP_ROOT} (BENCH_CONTAINERS "
                f"{'names ' + ', '.join(self.missing) if self.missing else 'is empty'}): no CPU per request"
            )
        found = ", ".join(
            f"{label} ({path.parent.parent.name}/{path.name})" for label, path in self.counters.items()
        )
        return f"CPU per request from {found}" + (
            f"; no counter for {', '.join(self.missing)}" if self.missing else ""
        )

    def read(self) -> dict[str, int]:
        """Every measured container's counter now, in nanoseconds (a container gone since: left out)."""
        now = {}
        for label, path in self.counters.items():
            try:
                now[label] = usage_nanoseconds(path)
            except (OSError, ValueError):
                continue
        return now


def per_request_ms(before: Mapping[str, int], after: Mapping[str, int], requests: int) -> dict[str, float]:
    """Each container's CPU milliseconds per request between two readings (only containers read both
    times; nothing without requests)."""
    if requests <= 0:
        return {}
    return {
        label: round((after[label] - before[label]) / 1e6 / requests, 3)
        for label in after
        if label in before and after[label] >= before[label]
    }


def cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def markdown(report: Mapping[str, Any], ceiling_names: Mapping[str, str]) -> list[str]:
    """The report's section: each scenario's and ceiling's rate next to the CPU milliseconds per request of
    the container that answered it (the API, or the ceiling's own) and of Postgres."""
    rows: list[tuple[str, float, str, Mapping[str, float]]] = []
    for name, row in report["scenarios"].items():
        answered_by = SCENARIO_SERVERS.get(name, "api")
        rows.append((f"`{name}`", row["requests_per_second"], answered_by, row.get("cpu_ms_per_request", {})))
    mixed = report.get("mixed")
    if mixed and mixed.get("cpu_ms_per_request"):
        rate = mixed["login"]["requests_per_second"] + mixed["me"]["requests_per_second"]
        rows.append(("mixed (`login` + `me`)", rate, "api", mixed["cpu_ms_per_request"]))
    for name, ceiling in report["ceilings"].items():
        if name in CEILING_CONTAINERS:
            label = CEILING_CONTAINERS[name]
            title = f"ceiling: {ceiling_names.get(name, name)}"
            measured = ceiling.get("cpu_ms_per_request", {})
            if name not in CEILINGS_USING_THE_DATABASE:
                measured = {key: value for key, value in measured.items() if key != "db"}
            rows.append((title, ceiling["per_second"], label, measured))
    if not any(cpu for *_, cpu in rows):
        return []
    lines = [
        "",
        "## CPU time per request (cgroup counters)",
        "",
        "Each container's CPU time during the measured run (its cgroup's counter before and after) over the "
        "requests answered (argon2id: per hash or verify, warm-up included in both). *Server*: the container "
        "that answered (the API, or the ceiling's own app); *Postgres*: the database container, which also "
        "counts anything else that used it meanwhile (— for the ceilings that do not use it).",
        "",
        "| run | per second | server | server ms CPU/req | Postgres ms CPU/req | sum ms |",
        "|---|--:|---|--:|--:|--:|",
    ]
    for name, rate, label, cpu in rows:
        server, database = cpu.get(label), cpu.get("db")
        total = None if server is None or database is None else server + database
        lines.append(
            f"| {name} | {rate:,.1f} | {LABELS.get(label, label)} | {cell(server)} | {cell(database)} "
            f"| {cell(total)} |"
        )
    return lines


def console(cpu: Mapping[str, float], labels: tuple[str, ...]) -> str:
    """`api 2.104 ms, db 0.301 ms` for the driver's line after a run."""
    return ", ".join(f"{label} {cpu[label]:.3f} ms" for label in labels if label in cpu)
