"""`python -m app.keys.cli rotate|list`, as the Makefile runs it, against the test database: `list` as a
process of its own, `rotate` through its `main` in this process (tests/cli.py). Its commits are real, so
the table is set aside and restored around the test."""

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.keys.models import SigningKey
from tests.cli import WEB_STACK, run_cli_in_process, run_cli_process


async def _cli(settings: Settings, *args: str) -> str:
    status, stdout, stderr = await run_cli_in_process(settings, "app.keys.cli", *args)
    assert status == 0, stderr
    return stdout


async def _cli_process(settings: Settings, *args: str) -> str:
    status, stdout, stderr, imported = await run_cli_process(settings, "app.keys.cli", *args)
    assert status == 0, stderr
    assert imported.isdisjoint(WEB_STACK)
    return stdout


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

    listing = [line.split() for line in (await _cli_process(settings, "list")).splitlines()]
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
