"""The CLIs as an operator runs them: `python -m <module>` in a process of its own, in the project folder,
with only what it needs in its environment (the test settings' database and key-encryption key)."""

import asyncio
import os
import sys
from pathlib import Path

from app.core.config import Settings

PROJECT = Path(__file__).resolve().parents[1]


def cli_environment(settings: Settings) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": settings.DATABASE_URL,
        "KEY_ENCRYPTION_KEY": settings.KEY_ENCRYPTION_KEY.get_secret_value(),
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    }


async def run_cli(
    settings: Settings, module: str, *args: str, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """`python -m module args…` with `stdin` (None: no input at all); its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        cwd=PROJECT, env=cli_environment(settings),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate(stdin)
    return process.returncode or 0, stdout.decode(), stderr.decode()
