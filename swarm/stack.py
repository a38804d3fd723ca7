"""The Swarm stack as the scale check drives it: the docker CLI, the tasks of a service, SQL in the db
task, a service's rolling update or scaling waited out, and the CPU time each task's container used.

CPU time comes from the containers' cgroup counters on the host (both cgroup versions, Docker's cgroupfs
and systemd drivers): cgroup v1 `cpuacct/docker/<id>/cpuacct.usage` in nanoseconds, v2
`system.slice/docker-<id>.scope/cpu.stat` `usage_usec`. A counter that is not found reads as None.
"""

import os
import subprocess
import time
from pathlib import Path

STACK = os.environ.get("SWARM_STACK", "pyauth-swarm")
CGROUP_ROOT = Path(os.environ.get("SCALE_CGROUP_ROOT", "/sys/fs/cgroup"))


def docker(*args: str, timeout: float = 60) -> str:
    # The docker CLI on PATH, with arguments of this script's own: no shell, no outside input.
    command = ["docker", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout).stdout  # noqa: S603


def task_containers(service: str) -> list[str]:
    """The running containers of the stack's service, as full ids."""
    return docker(
        "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={STACK}_{service}"
    ).split()


def sql(query: str) -> str:
    """One query in the db task, as Postgres's superuser over its local socket; the unaligned result."""
    container = task_containers("db")[0]
    return docker(
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
        query,
    ).strip()


def task_logs(service: str, since: float) -> dict[str, list[str]]:
    """The log lines since the Unix time `since` of every container the service's tasks have run in on
    this node, running or exited, by task name (`<stack>_<service>.<slot>.<task id>`). Read with
    `docker logs` from each container's local log: `docker service logs` goes through the Swarm's log
    streaming, which on this engine can hang even with `--since` (a CI run waited 60 s on it)."""
    listed = docker(
        "ps", "-a", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={STACK}_{service}",
        "--format", '{{.ID}} {{.Label "com.docker.swarm.task.name"}}',
    )  # fmt: skip
    lines: dict[str, list[str]] = {}
    for container, task in (row.split(" ", 1) for row in listed.splitlines()):
        command = ["docker", "logs", "--since", f"{since:.0f}", container]
        # The processes log to stderr, which `docker logs` passes on as its own stderr; the docker CLI on
        # PATH with this script's own arguments.
        done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)  # noqa: S603
        lines.setdefault(task, []).extend((done.stdout + done.stderr).splitlines())
    return lines


def healthy_replicas(service: str) -> str:
    """`running/desired` as `docker service ls` shows it, e.g. 3/3."""
    return docker("service", "ls", "--filter", f"name={STACK}_{service}", "--format", "{{.Replicas}}").strip()


def update_service(service: str, *args: str, timeout: float = 300) -> float:
    """`docker service update` with the arguments, waited until its rolling update completes; seconds."""
    started = time.monotonic()
    docker("service", "update", "--detach", *args, f"{STACK}_{service}")
    while time.monotonic() - started < timeout:
        state = docker(
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            f"{STACK}_{service}",
        ).strip()
        if state in ("completed", ""):
            return time.monotonic() - started
        if state.startswith("rollback") or state == "paused":
            raise RuntimeError(f"{service}: update {state}")
        time.sleep(1)
    raise RuntimeError(f"{service}: update not done after {timeout:.0f} s")


def scale_service(service: str, replicas: int, timeout: float = 120) -> float:
    """Scale the service and wait until exactly that many tasks run and are healthy; seconds."""
    started = time.monotonic()
    docker("service", "scale", "--detach", f"{STACK}_{service}={replicas}")
    while time.monotonic() - started < timeout:
        running = task_containers(service)
        if healthy_replicas(service) == f"{replicas}/{replicas}" and len(running) == replicas:
            return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError(f"{service}: {healthy_replicas(service)} after {timeout:.0f} s (want {replicas})")


def cpu_seconds(container: str) -> float | None:
    """CPU time the container has used so far, in seconds; None when its counter is not found."""
    for path in (
        CGROUP_ROOT / "cpuacct" / "docker" / container / "cpuacct.usage",
        CGROUP_ROOT / "cpuacct" / "system.slice" / f"docker-{container}.scope" / "cpuacct.usage",
    ):
        if path.is_file():
            return int(path.read_text()) / 1e9
    for path in (
        CGROUP_ROOT / "system.slice" / f"docker-{container}.scope" / "cpu.stat",
        CGROUP_ROOT / "docker" / container / "cpu.stat",
    ):
        if path.is_file():
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "usage_usec":
                    return int(value) / 1e6
    return None
