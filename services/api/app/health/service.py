"""What "ready" means: the database answers `SELECT 1` within a short bound and its schema is at the
Alembic head this build ships."""

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

SERVICE_ROOT = Path(__file__).resolve().parents[2]


def alembic_config() -> Config:
    """The Alembic configuration shipped next to the `app` package."""
    config = Config(str(SERVICE_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(SERVICE_ROOT / "migrations"))
    return config


def schema_head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@dataclass(frozen=True)
class Readiness:
    database: str
    schema: str

    @property
    def ready(self) -> bool:
        return self.database == "ok" and self.schema == "ok"


async def check_readiness(engine: AsyncEngine, expected_head: str | None, bound: float) -> Readiness:
    try:
        async with asyncio.timeout(bound), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            current = None
            if (await connection.execute(text("SELECT to_regclass('alembic_version')"))).scalar():
                current = (
                    await connection.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar_one_or_none()
    except TimeoutError:
        return Readiness(database="timeout", schema="unknown")
    except Exception as exc:
        return Readiness(database=f"unreachable: {type(exc).__name__}", schema="unknown")
    if current != expected_head:
        return Readiness(database="ok", schema=f"behind: at {current}, expected {expected_head}")
    return Readiness(database="ok", schema="ok")
