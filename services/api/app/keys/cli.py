"""`python -m app.keys.cli rotate|list`: rotate the signing keys, or list the stored keys.

A rotation makes a new access-token key and a new RSA (RS256 ID-token) key. Running API processes publish
them within their refresh interval, and sign with them from KEY_PUBLICATION_LEAD_SECONDS on (`--now`: at
once, for a key that must stop signing now); tokens signed with the retired keys keep verifying until they
expire.
"""

import argparse
import asyncio
import sys
from datetime import timedelta

from sqlalchemy import select

from app.core.clock import SystemClock
from app.core.config import Settings, get_settings
from app.core.database import build_engine, build_sessionmaker
from app.core.logging import configure_logging
from app.keys.models import SigningKey
from app.keys.storage import rotate_signing_key


async def rotate(settings: Settings, *, now: bool = False) -> dict[str, str]:
    engine = build_engine(settings)
    try:
        async with build_sessionmaker(engine).begin() as session:
            return await rotate_signing_key(
                session, settings, SystemClock(), lead=timedelta(0) if now else None
            )
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
    rotate_command = commands.add_parser(
        "rotate", help="generate new signing keys (published now, signing after the lead time)"
    )
    rotate_command.add_argument(
        "--now",
        action="store_true",
        help="sign with the new keys at once (a compromised key); relying parties meet an unknown kid",
    )
    commands.add_parser(
        "list", help="print kid, algorithm, created, signing-from and retired time of every key"
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging(settings)
    if args.command == "rotate":
        # One line per new key: its kid and algorithm (`list` says when each signs).
        for algorithm, kid in asyncio.run(rotate(settings, now=args.now)).items():
            print(f"{kid} {algorithm}")
        return 0
    rows = asyncio.run(list_keys(settings))
    print(f"{'kid':<24} {'alg':<6} {'created':<25} {'signs_from':<25} retired")
    for row in rows:
        created = row.created_at.isoformat(timespec="seconds")
        active_from = row.active_from.isoformat(timespec="seconds")
        retired = row.retired_at.isoformat(timespec="seconds") if row.retired_at else "-"
        print(f"{row.kid:<24} {row.algorithm:<6} {created:<25} {active_from:<25} {retired}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
