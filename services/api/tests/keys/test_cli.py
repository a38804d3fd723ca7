"""`python -m app.keys.cli rotate|list`, run as the Makefile runs it: a separate process against the
test database. Its commits are real, so the table is set aside and restored around the test."""

import asyncio
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.keys.models import SigningKey

PROJECT = Path(__file__).resolve().parents[2]


async def _cli(settings: Settings, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": settings.DATABASE_URL,
        "KEY_ENCRYPTION_KEY": settings.KEY_ENCRYPTION_KEY.get_secret_value(),
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.keys.cli", *args,
        cwd=PROJECT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest.mark.usefixtures("committed_keys_set_aside")
async def test_rotate_prints_the_new_kid_and_list_shows_it(engine: AsyncEngine, settings: Settings) -> None:
    first = (await _cli(settings, "rotate")).strip()
    second = (await _cli(settings, "rotate")).strip()

    async with engine.connect() as connection:
        rows = {row.kid: row for row in await connection.execute(select(SigningKey))}
    assert rows.keys() == {first, second}
    assert rows[first].retired_at is not None
    assert rows[second].retired_at is None
    assert rows[second].algorithm == settings.JWT_ALGORITHM

    listing = [line.split() for line in (await _cli(settings, "list")).splitlines()]
    assert listing == [
        ["kid", "alg", "created", "retired"],
        [
            first,
            "ES256",
            rows[first].created_at.isoformat(timespec="seconds"),
            rows[first].retired_at.isoformat(timespec="seconds"),
        ],
        [second, "ES256", rows[second].created_at.isoformat(timespec="seconds"), "-"],
    ]
