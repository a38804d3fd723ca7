"""The faults stack: compose.yaml + compose.test.yaml + compose.faults.yaml as a compose project of its own.

Everything here shells out to the docker CLI, as a developer would; nothing talks to the engine's socket.
The project name and both host ports are the stack's own (FAULTS_PROJECT, FAULTS_API_PORT,
FAULTS_POSTGRES_PORT), so the developer's `pyauth` project, its volume and its ports are never touched.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = ("compose.yaml", "compose.test.yaml", "compose.faults.yaml")
# psql in the db container, as the database's owner, over TCP (the image asks for scram-sha-256).
PSQL = 'PGPASSWORD="$POSTGRES_PASSWORD" exec psql -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'


class StackError(RuntimeError):
    """A docker or compose command failed, or the stack did not become ready in time."""


def free_port() -> int:
    """A port nothing listens on right now. Fixed for the whole run: Docker gives a container a new
    random host port on every start, and the checks restart containers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class ContainerState:
    id: str
    started_at: str
    restart_count: int
    running: bool
    exit_code: int


class Stack:
    def __init__(self, project: str, api_port: int, db_port: int) -> None:
        self.project = project
        self.api_port = api_port
        self.db_port = db_port
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": project,
            "API_PORT": str(api_port),
            "POSTGRES_PORT": str(db_port),
        }
        # `make up` / `make down` of the Makefile, on this project and with the faults overlay.
        self.make_compose = "docker compose " + " ".join(f"-f {name}" for name in COMPOSE_FILES)

    # -- commands ---------------------------------------------------------------------------------

    def run(
        self,
        *args: str,
        input_text: str | None = None,
        timeout: float = 300,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args),
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            raise StackError(f"`{' '.join(args)}` exited {result.returncode}:\n{tail}")
        return result

    def compose(
        self,
        *args: str,
        input_text: str | None = None,
        timeout: float = 300,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        files = [part for name in COMPOSE_FILES for part in ("-f", name)]
        return self.run(
            "docker",
            "compose",
            *files,
            *args,
            input_text=input_text,
            timeout=timeout,
            check=check,
            extra_env=extra_env,
        )

    def make(self, target: str, timeout: float = 600) -> float:
        """Run a Makefile target against this stack; returns its duration in seconds."""
        started = time.monotonic()
        self.run(
            os.environ.get("MAKE", "make"),
            "--no-print-directory",
            target,
            f"COMPOSE={self.make_compose}",
            timeout=timeout,
        )
        return time.monotonic() - started

    def up(self) -> None:
        self.compose("--profile", "test", "build", "tests", timeout=900)
        self.compose("up", "--build", "--detach", "--wait", timeout=900)

    def down(self) -> None:
        """Remove every container, network and volume of this project."""
        self.compose(
            "--profile",
            "test",
            "--profile",
            "faults",
            "down",
            "--volumes",
            "--remove-orphans",
            timeout=180,
            check=False,
        )

    def logs(self, *services: str, tail: int = 60) -> str:
        result = self.compose("logs", "--no-color", "--tail", str(tail), *services, check=False)
        return (result.stdout + result.stderr).replace("\x1b[2K", "")

    def logs_since(self, service: str, since: float) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 1))
        result = self.compose("logs", "--no-color", "--since", stamp, service, check=False)
        return (result.stdout + result.stderr).replace("\x1b[2K", "")

    # -- containers -------------------------------------------------------------------------------

    def container_id(self, service: str) -> str:
        container = self.compose("ps", "--all", "--quiet", service).stdout.strip()
        if not container:
            raise StackError(f"no {service} container in project {self.project}")
        return container.splitlines()[0]

    def state(self, service: str) -> ContainerState:
        container = self.container_id(service)
        fmt = "{{.State.StartedAt}}|{{.RestartCount}}|{{.State.Running}}|{{.State.ExitCode}}"
        started_at, restarts, running, exit_code = (
            self.run("docker", "inspect", "--format", fmt, container).stdout.strip().split("|")
        )
        return ContainerState(container, started_at, int(restarts), running == "true", int(exit_code))

    def wait_stopped(self, service: str, timeout: float = 30.0) -> ContainerState | None:
        """The service's container state once it no longer runs; None if it still runs after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(service)
            if not state.running:
                return state
            time.sleep(0.1)
        return None

    def containers(self) -> list[str]:
        """Every container of this project, running or not, in any profile."""
        label = f"label=com.docker.compose.project={self.project}"
        return self.run("docker", "ps", "--all", "--quiet", "--filter", label).stdout.split()

    def volumes(self) -> list[str]:
        """The names of this project's volumes. (Whether the data in them is the same, the checks prove
        with digests of its rows: a volume's CreatedAt moves with its directory's mtime.)"""
        label = f"label=com.docker.compose.project={self.project}"
        return sorted(self.run("docker", "volume", "ls", "--quiet", "--filter", label).stdout.split())

    def ip_address(self, service: str) -> str:
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        return self.run("docker", "inspect", "--format", fmt, self.container_id(service)).stdout.split()[0]

    def exit_codes(self, service: str, since: float, until: float) -> list[int]:
        """Exit codes of the service's container between two times (`docker events`, `die`)."""
        result = self.run(
            "docker",
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{until:.3f}",
            "--filter",
            f"container={self.container_id(service)}",
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.Attributes.exitCode}}",
            timeout=30,
        )
        return [int(code) for code in result.stdout.split()]

    def stop_grace_seconds(self, service: str) -> float:
        config = json.loads(self.compose("config", "--format", "json").stdout)
        value = str(config["services"][service].get("stop_grace_period", "10s"))
        return _duration(value)

    # -- readiness --------------------------------------------------------------------------------

    def ready(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health/ready", timeout=timeout) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds until /health/ready answers 200; StackError after `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.2)
        raise StackError(f"the API was not ready within {timeout:.0f} s")

    def wait_db(self, timeout: float = 60.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            probe = self.compose(
                "exec",
                "-T",
                "db",
                "sh",
                "-c",
                'pg_isready -q -h 127.0.0.1 -U "$POSTGRES_USER"',
                check=False,
                timeout=15,
            )
            if probe.returncode == 0:
                return time.monotonic() - started
            time.sleep(0.2)
        raise StackError(f"the database did not accept connections within {timeout:.0f} s")

    # -- the database, as its owner, through psql in the db container -----------------------------

    def psql(self, sql: str, timeout: float = 60) -> list[list[str]]:
        """Run SQL (stops at the first error); returns the rows of the last statement as text columns."""
        result = self.compose(
            "exec",
            "-T",
            "db",
            "sh",
            "-c",
            PSQL + " -v ON_ERROR_STOP=1 -X -A -t -q -F '|'",
            input_text=sql,
            timeout=timeout,
        )
        return [line.split("|") for line in result.stdout.splitlines() if line]

    def scalar(self, sql: str) -> str:
        rows = self.psql(sql)
        return rows[0][0] if rows and rows[0] else ""

    def psql_background(self, sql: str, application_name: str) -> subprocess.Popen[str]:
        """A psql session that keeps running (e.g. holding a lock) until it ends or is terminated."""
        files = [part for name in COMPOSE_FILES for part in ("-f", name)]
        process = subprocess.Popen(
            [
                "docker",
                "compose",
                *files,
                "exec",
                "-T",
                "-e",
                f"PGAPPNAME={application_name}",
                "db",
                "sh",
                "-c",
                PSQL + " -X -q",
            ],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdin is not None
        process.stdin.write(sql)
        process.stdin.close()
        return process

    def settings(self) -> dict[str, float]:
        """The settings the running API really has, read inside its container."""
        script = (
            "import json; from app.core.config import get_settings; s = get_settings(); print(json.dumps({"
            "'workers': s.api_workers, 'pool_size': s.DB_POOL_SIZE, 'max_overflow': s.DB_MAX_OVERFLOW,"
            "'pool_timeout': s.DB_POOL_TIMEOUT, 'ready_timeout': s.DB_READY_TIMEOUT,"
            "'login_free_attempts': s.LOGIN_FREE_ATTEMPTS, 'login_max_failures': s.LOGIN_MAX_FAILURES,"
            "'reuse_grace': s.REFRESH_REUSE_GRACE_SECONDS}))"
        )
        values: dict[str, float] = json.loads(
            self.compose("exec", "-T", "api", "python3", "-c", script).stdout
        )
        return values


def _duration(value: str) -> float:
    """Compose durations such as `25s`, `1m30s`, `1500ms`."""
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    index = 0
    while index < len(value):
        char = value[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = value[index : index + 2] if value[index : index + 2] in ("ms", "us") else char
        total += float(number or 0) * units[unit]
        number = ""
        index += len(unit)
    return total + (float(number) if number else 0.0)
