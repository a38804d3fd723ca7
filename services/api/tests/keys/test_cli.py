"""`python -m app.keys.cli rotate|list`, as the Makefile runs it, against the test database: `list` as a
process of its own, `rotate` through its `main` in this process (tests/cli.py). Its commits are real, so
the table is set aside and restored around the test."""

from datetime import timedelta

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


def _new_kids(output: str) -> dict[str, str]:
    """`rotate` prints a `kid algorithm` line per new key: the kids by algorithm."""
    return {algorithm: kid for kid, algorithm in (line.split() for line in output.splitlines())}


async def _cli_process(settings: Settings, *args: str) -> str:
    status, stdout, stderr, imported = await run_cli_process(settings, "app.keys.cli", *args)
    assert status == 0, stderr
    assert imported.isdisjoint(WEB_STACK)
    return stdout


@pytest.mark.usefixtures("committed_keys_set_aside")
async def test_rotate_prints_the_new_kids_and_list_shows_them(
    engine: AsyncEngine, settings: Settings
) -> None:
    first = _new_kids(await _cli(settings, "rotate"))
    async with engine.connect() as connection:
        rows = {row.kid: row for row in await connection.execute(select(SigningKey))}
    assert first.keys() == {settings.JWT_ALGORITHM, "RS256"}
    lead = timedelta(seconds=settings.KEY_PUBLICATION_LEAD_SECONDS)
    for algorithm, kid in first.items():
        # Published now, signing after the lead time.
        assert rows[kid].algorithm == algorithm
        assert rows[kid].active_from == rows[kid].created_at + lead

    # `--now` (a compromised key): the new keys sign at once, the previous ones stop.
    second = _new_kids(await _cli(settings, "rotate", "--now"))
    async with engine.connect() as connection:
        rows = {row.kid: row for row in await connection.execute(select(SigningKey))}
    assert rows.keys() == {*first.values(), *second.values()}
    for algorithm in first:
        old, new = rows[first[algorithm]], rows[second[algorithm]]
        assert (old.algorithm, new.algorithm) == (algorithm, algorithm)
        assert new.active_from == new.created_at
        assert old.retired_at == new.created_at
        assert new.retired_at is None

    listing = [line.split() for line in (await _cli_process(settings, "list")).splitlines()]
    assert listing[0] == ["kid", "alg", "created", "signs_from", "retired"]
    at = {row.kid: row for row in rows.values()}

    def listed(kid: str) -> list[str]:
        row = at[kid]
        retired = row.retired_at.isoformat(timespec="seconds") if row.retired_at else "-"
        return [
            kid,
            row.algorithm,
            row.created_at.isoformat(timespec="seconds"),
            row.active_from.isoformat(timespec="seconds"),
            retired,
        ]

    assert sorted(listing[1:]) == sorted(listed(kid) for kid in rows)
