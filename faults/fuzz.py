"""schemathesis against the OpenAPI document the faults stack serves, inside its compose network.

It runs in the `fuzz` service of compose.faults.yaml (the test image) with faults/schemathesis.toml: every
check, a bounded number of examples per operation and a time budget. Authenticated operations use an
administrator this module creates with `python -m app.admin.cli create-admin`; the password reaches the
CLI on stdin and schemathesis through the environment, never a command line.

Two passes: every operation against `api`, then the hot routes' paths (`HOT_PATH_PATHS`, answered by the
exact-path dispatch in `api`) against `api-routed`, the same API with HOT_PATHS_ENABLED=false, so both
ways of serving them are fuzzed.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from checks import Context, Outcome

NOISE = ("HypothesisWarning", "self._fallback", "if getattr(user_settings")


HOT_PATH_PATHS = ("/users/me", "/auth/token", "/.well-known/jwks.json")
ROUTED_SERVICE = "api-routed"


def schemathesis(ctx: Context) -> Outcome:
    outcome = Outcome("7", "schemathesis, all checks")
    stack = ctx.stack
    email = ctx.email("fuzz-admin")
    stack.compose(
        "exec",
        "-T",
        "api",
        "python3",
        "-m",
        "app.admin.cli",
        "create-admin",
        email,
        input_text=ctx.password + "\n",
    )
    _fuzz(ctx, outcome, email, service="api", name="every operation")
    stack.compose(
        "--profile", "faults", "up", "--detach", "--wait", "--no-deps", "--no-build", ROUTED_SERVICE
    )
    only_hot_paths = [argument for path in HOT_PATH_PATHS for argument in ("--include-path", path)]
    _fuzz(
        ctx,
        outcome,
        email,
        service=ROUTED_SERVICE,
        name="the hot paths through FastAPI",
        extra=only_hot_paths,
    )
    return outcome


def _fuzz(
    ctx: Context, outcome: Outcome, email: str, *, service: str, name: str, extra: list[str] | None = None
) -> None:
    """One schemathesis run against `service`, its verdict and figures added to `outcome`."""
    stack = ctx.stack
    started = time.time()
    result = stack.compose(
        "--profile",
        "faults",
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "-e",
        "FUZZ_ADMIN_EMAIL",
        "-e",
        "FUZZ_ADMIN_PASSWORD",
        "-e",
        "API_URL",
        "fuzz",
        "schemathesis",
        "--config-file",
        "/faults/schemathesis.toml",
        "run",
        f"http://{service}:8000/openapi.json",
        *(extra or []),
        "--no-color",
        check=False,
        timeout=900,
        extra_env={
            "FUZZ_ADMIN_EMAIL": email,
            "FUZZ_ADMIN_PASSWORD": ctx.password,
            "API_URL": f"http://{service}:8000",
        },
    )
    output = "\n".join(
        line
        for line in (result.stdout + result.stderr).splitlines()
        if not any(noise in line for noise in NOISE)
    )
    report = Path(tempfile.gettempdir()) / f"pyauth-faults-schemathesis-{service}-{ctx.run_id}.txt"
    report.write_text(output + "\n")
    unhandled = stack.logs_since(service, started).count("unhandled ")

    def find(pattern: str) -> str:
        match = re.search(pattern, output)
        return match.group(1).strip() if match else "?"

    failures = (
        re.findall(r"❌ (ST\d+ [^:\n]+: \d+)", output.split("Failures:", 1)[-1])
        if "Failures:" in output
        else []
    )
    operations = find(r"Operations:\s+(\d+) selected")
    cases = find(r"Test cases:\s*\n\s*(\d+) generated")
    logins = find(r"Re-authenticated (\d+) times")
    seed = find(r"Seed: (\d+)")
    passed = result.returncode == 0 and unhandled == 0
    outcome.expect(
        result.returncode == 0,
        f"{name}: schemathesis exited {result.returncode}: {'; '.join(failures) or 'see above'}",
    )
    outcome.expect(unhandled == 0, f"{name}: {unhandled} unhandled exceptions in the {service} log")
    outcome.figures += [
        f"{name} ({service}): {operations} operations, {cases} test cases in {time.time() - started:.0f} s "
        "(phases examples, coverage, fuzzing, stateful)",
        f"failures: {'; '.join(failures) or 'none'}; unhandled exceptions in the {service} log: {unhandled}",
        f"re-authenticated {logins} times; seed {seed}; full output: {report}",
    ]
    if not passed:
        # The FAILURES section, without its banner and blank lines: each failure with its curl line.
        section = output.split(" FAILURES ", 1)[-1].split("\n", 1)[-1].split("=== WARNINGS ===", 1)[0]
        lines = [line for line in section.splitlines() if line.strip()]
        outcome.problems.append(f"schemathesis failures ({name}):\n" + "\n".join(lines[:150]))
