"""The CLIs as an operator runs them, two ways.

`run_cli_process`: `python -m <module>` in a process of its own, in the project folder, with only what it
needs in its environment (the test settings' database and key-encryption key). Each CLI keeps a test or
two that runs it this way, proving the real entry point: the module runs, its exit status is the
process's, and it does not load the web stack (FastAPI, httpx).

`run_cli_in_process`: the same module's `main(argv)` in this process, for the tests whose subject is what a
command does: the same argument parsing, settings from the same environment variables, the same database,
its stdin, stdout, stderr and exit status captured as the process's would be. A process costs a second or
two (interpreter, imports, the password lists loaded afresh), which the CLI tests paid dozens of times.
"""

import asyncio
import contextlib
import importlib
import io
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from app.core.config import Settings

PROJECT = Path(__file__).resolve().parents[1]
# Modules a CLI must not load: the web stack is the API's, and a CLI that imported it would start slower and
# break in an image without it.
WEB_STACK = ("fastapi", "httpx")


def cli_environment(settings: Settings) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": settings.DATABASE_URL,
        "KEY_ENCRYPTION_KEY": settings.KEY_ENCRYPTION_KEY.get_secret_value(),
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    }


async def run_cli_process(
    settings: Settings, module: str, *args: str, stdin: bytes | None = None
) -> tuple[int, str, str, set[str]]:
    """`python -m module args…` with `stdin` (None: no input at all): its exit status, stdout, stderr, and
    the top-level packages it imported (from `-X importtime`, whose lines are taken out of its stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", module, *args,
        cwd=PROJECT, env=cli_environment(settings),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate(stdin)
    imported: set[str] = set()
    err: list[str] = []
    for line in stderr.decode().splitlines(keepends=True):
        if line.startswith("import time:"):
            # "import time: self [us] | cumulative | imported package", the package indented by depth
            imported.add(line.rsplit("|", 1)[-1].strip().split(".")[0])
        else:
            err.append(line)
    return process.returncode or 0, stdout.decode(), "".join(err), imported


async def run_cli_in_process(
    settings: Settings, module: str, *args: str, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """`module`'s `main([args…])` run here as `python -m module args…` would run (exit status, stdout,
    stderr), in a thread of its own: `main` runs its own event loop (`asyncio.run`), as in its process."""
    main = importlib.import_module(module).main
    return await asyncio.to_thread(_run_main, main, settings, list(args), stdin or b"")


def _run_main(main: object, settings: Settings, argv: list[str], stdin: bytes) -> tuple[int, str, str]:
    assert callable(main)
    # Like the interpreter's stdin on a pipe: UTF-8, lines split at "\n" only, so "\r\n" keeps its "\r".
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", newline="\n")
    out, err = io.StringIO(), io.StringIO()
    with (
        _environment(cli_environment(settings)),
        _logging_restored(),
        _stdin(fake_stdin),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors and --help
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except Exception:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
    return code or 0, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """What Settings reads from the environment as it is in the CLI's process: `values`, and none of this
    process's other setting variables. Put back afterwards."""
    fields = {name.upper() for name in Settings.model_fields}
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.upper() in fields and name not in values:
            del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """The CLI configures logging (`dictConfig`) as its process would; this process's logging (pytest's
    capture handlers, levels) is as it was afterwards."""
    manager = logging.Logger.manager
    loggers = [
        logging.getLogger(),
        *(lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    saved = {lg: (lg.level, lg.propagate, lg.disabled, list(lg.handlers)) for lg in loggers}
    try:
        yield
    finally:
        for lg in [logging.getLogger(), *manager.loggerDict.values()]:
            if isinstance(lg, logging.Logger):
                level, propagate, disabled, handlers = saved.get(lg, (logging.NOTSET, True, False, []))
                lg.setLevel(level)
                lg.propagate, lg.disabled, lg.handlers = propagate, disabled, handlers


@contextlib.contextmanager
def _stdin(stream: io.TextIOWrapper) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = stream
    try:
        yield
    finally:
        sys.stdin = saved
