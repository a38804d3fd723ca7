"""`python -m app.keys.cli rotate|list`: rotate the signing key, or list the stored keys.

Running API processes pick a rotation up within their refresh interval; tokens signed with the
retired key keep verifying until they expire.
"""

import argparse
import asyncio
import sys

from sqlalchemy import select

from app.core.clock import SystemClock
from app.core.config import Settings, get_settings
from app.core.database import build_engine, build_sessionmaker
from app.core.logging import configure_logging
from app.keys.models import SigningKey
from app.keys.storage import rotate_signing_key


async def rotate(settings: Settings) -> str:
    engine = build_engine(settings)
    try:
        async with build_sessionmaker(engine).begin() as session:
            return await rotate_signing_key(session, settings, SystemClock())
    finally:
        await engine.dispose()


async def list_keys(settings: Settings) -> list[SigningKey]:
    engine = build_engine(settings)
    try:
        async with build_sessionmaker(engine)() as session:
            result = await session.execute(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid))
            return list(result.scalars())
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.keys.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rotate", help="generate a new signing key and retire the current one")
    commands.add_parser("list", help="print kid, algorithm, created and retired time of every key")
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging(settings)
    if args.command == "rotate":
        print(asyncio.run(rotate(settings)))
        return 0
    rows = asyncio.run(list_keys(settings))
    print(f"{'kid':<24} {'alg':<6} {'created':<25} retired")
    for row in rows:
        created = row.created_at.isoformat(timespec="seconds")
        retired = row.retired_at.isoformat(timespec="seconds") if row.retired_at else "-"
        print(f"{row.kid:<24} {row.algorithm:<6} {created:<25} {retired}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
