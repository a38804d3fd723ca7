"""`make faults`: fault injection and schemathesis against the real stack, with a table of the results.

Brings up its own compose project (FAULTS_PROJECT, default pyauth-faults: compose.yaml + compose.test.yaml
+ compose.faults.yaml, its own volume, two free host ports), runs the checks of issue 5 in order, then
schemathesis inside the compose network, prints one line per check as it ends and a table at the end, and
removes the project with its volume. The developer's `pyauth` project is never touched.

The driver runs on the host, with the standard library only, because it must both send the load and
stop, kill and restart containers with precise timing between the two; the test image has no docker CLI,
and the engine's socket is not handed to a container. schemathesis runs inside the compose network.

    python3 faults/run.py [--only 1,3] [--no-fuzz] [--keep]

Exit status: 0 when every check passed, 1 otherwise, 2 when the stack could not be brought up.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks import CHECKS, Context, Outcome
from fuzz import schemathesis
from stack import Stack, StackError, free_port

WIDTH = 118


def say(message: str) -> None:
    print(f"faults: {message}", flush=True)


def _terminate(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def heal(stack: Stack) -> None:
    """After a failed check, put the stack back (db and api running and ready) for the next check."""
    if stack.ready():
        return
    stack.compose("start", "db", "api", check=False)
    stack.wait_ready(90)


def run_check(check: Callable[[Context], Outcome], ctx: Context) -> Outcome:
    started = time.monotonic()
    try:
        outcome = check(ctx)
    except Exception as exc:  # a check that cannot finish is a failed check, with its reason
        outcome = Outcome("?", check.__name__.replace("_", " "), passed=False)
        outcome.problems.append(f"{type(exc).__name__}: {exc}")
        outcome.problems.append(traceback.format_exc(limit=4))
    outcome.seconds = time.monotonic() - started
    mark = "PASS" if outcome.passed else "FAIL"
    print(
        f"{mark}  {outcome.number} {outcome.name} ({outcome.seconds:.0f} s): " + "; ".join(outcome.figures),
        flush=True,
    )
    for problem in outcome.problems:
        print(textwrap.indent(problem, "      ! "), flush=True)
    return outcome


def table(outcomes: list[Outcome]) -> str:
    name_width = max(len(outcome.name) for outcome in outcomes) + 2
    indent = 4 + name_width + 8
    rule = "-" * WIDTH
    lines = [rule, f"{'#':<4}{'check':<{name_width}}{'result':<8}figures", rule]
    for outcome in outcomes:
        figures = [
            wrapped
            for figure in outcome.figures or ["(no figures)"]
            for wrapped in textwrap.wrap(figure, WIDTH - indent, subsequent_indent="  ")
        ]
        result = "PASS" if outcome.passed else "FAIL"
        lines.append(f"{outcome.number:<4}{outcome.name:<{name_width}}{result:<8}{figures[0]}")
        lines += [" " * indent + line for line in figures[1:]]
        lines.append(rule)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Fault injection and schemathesis on a throw-away stack.")
    parser.add_argument("--only", help="comma-separated check numbers to run, e.g. 1,3 (7 = schemathesis)")
    parser.add_argument("--no-fuzz", action="store_true", help="skip schemathesis")
    parser.add_argument("--keep", action="store_true", help="leave the faults stack running afterwards")
    args = parser.parse_args()
    selected = set(args.only.split(",")) if args.only else None

    signal.signal(signal.SIGTERM, _terminate)
    project = os.environ.get("FAULTS_PROJECT", "pyauth-faults")
    if project == "pyauth":
        print("FAULTS_PROJECT must not be the development project 'pyauth'", file=sys.stderr)
        return 2
    stack = Stack(
        project,
        api_port=int(os.environ.get("FAULTS_API_PORT") or free_port()),
        db_port=int(os.environ.get("FAULTS_POSTGRES_PORT") or free_port()),
    )
    began = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        say(f"compose project {project}: removing leftovers, building and starting it")
        stack.down()
        try:
            stack.up()
            stack.wait_ready(90)
            settings = stack.settings()
        except (StackError, OSError) as exc:
            print(f"faults: the stack did not come up: {exc}", file=sys.stderr)
            print(stack.logs("db", "migrate", "api"), file=sys.stderr)
            return 2
        workers, pool = (
            int(settings["workers"]),
            f"{int(settings['pool_size'])}+{int(settings['max_overflow'])}",
        )
        say(
            f"up in {time.monotonic() - began:.0f} s at {stack.api_url}: {workers} workers, pool {pool}, "
            f"pool timeout {settings['pool_timeout']:g} s"
        )
        ctx = Context(stack, settings)
        checks: list[Callable[[Context], Outcome]] = [*CHECKS] + ([] if args.no_fuzz else [schemathesis])
        for number, check in enumerate(checks, start=1):
            if selected is not None and str(number) not in selected:
                continue
            outcome = run_check(check, ctx)
            outcome.number = str(number)
            outcomes.append(outcome)
            if not outcome.passed:
                saved = Path(tempfile.gettempdir()) / f"pyauth-faults-{ctx.run_id}-check{number}-logs.txt"
                saved.write_text(stack.logs(tail=5000))
                print(textwrap.indent(stack.logs("api", "db", tail=20), "      | "), flush=True)
                say(f"the stack's logs: {saved}")
                heal(stack)
    except KeyboardInterrupt as exc:
        say(f"interrupted ({exc or 'Ctrl-C'})")
        outcomes.append(Outcome("-", "interrupted", passed=False))
    finally:
        if args.keep:
            say(f"--keep: project {project} left running at {stack.api_url}")
        else:
            say(f"removing compose project {project} and its volume")
            stack.down()
    print()
    print(table(outcomes) if outcomes else "faults: no check ran")
    failed = [outcome for outcome in outcomes if not outcome.passed]
    verdict = "all passed" if not failed else f"{len(failed)} of {len(outcomes)} failed"
    say(f"{verdict} in {time.monotonic() - began:.0f} s")
    return 1 if failed or not outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
