"""`python -m app.clients.cli create|list|rotate-secret|delete`: register and manage OAuth clients from
the command line (`make client ARGS="..."`), through the same rules and audit events as `/admin/clients`.

A confidential client's secret is printed once, by `create` and by `rotate-secret`, and never again:
only its digest is stored. The audit rows of the CLI have no actor and carry the reason `cli`.

Exit status: 0 on success, 1 when the request is refused (the error code is printed) or the database
cannot be reached, 2 on a usage error.
"""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TextIO, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import service
from app.clients.models import ClientType, SigningAlgorithm
from app.clients.schemas import DEFAULT_GRANT_TYPES, DEFAULT_SCOPES, ClientCreate
from app.clients.service import ClientChange, ClientWithSecrets
from app.core.clock import SystemClock
from app.core.config import Settings, get_settings
from app.core.context import RequestContext
from app.core.database import build_engine, build_sessionmaker
from app.core.errors import PyauthError
from app.core.logging import configure_logging

SOURCE = "cli"
T = TypeVar("T")


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = build_engine(settings)
    try:
        async with build_sessionmaker(engine)() as db, db.begin():
            return await work(db)
    finally:
        await engine.dispose()


def _describe(found: ClientWithSecrets) -> str:
    client = found.client
    lines = [
        f"client_id:     {client.client_id}",
        f"name:          {client.name}",
        f"type:          {client.client_type}{' (disabled)' if client.is_disabled else ''}",
        f"grant_types:   {' '.join(client.grant_types) or '-'}",
        f"redirect_uris: {' '.join(client.redirect_uris) or '-'}",
        f"scopes:        {' '.join(client.scopes) or '-'}",
        f"id_token_alg:  {client.id_token_signed_response_alg}",
    ]
    for secret in found.secrets:
        until = secret.expires_at.isoformat(timespec="seconds") if secret.expires_at else "next rotation"
        lines.append(
            f"secret:        created {secret.created_at.isoformat(timespec='seconds')}, works until {until}"
        )
    return "\n".join(lines)


async def run(settings: Settings, args: argparse.Namespace, out: TextIO) -> None:
    change = ClientChange(ctx=RequestContext.background(SystemClock().now()), source=SOURCE)
    if args.command == "create":
        body = ClientCreate(
            name=args.name,
            type=args.type,
            redirect_uris=args.redirect_uri,
            post_logout_redirect_uris=args.post_logout_redirect_uri,
            grant_types=args.grant_type or list(DEFAULT_GRANT_TYPES),
            scopes=args.scope or list(DEFAULT_SCOPES),
            first_party=args.first_party,
            id_token_signed_response_alg=args.id_token_alg,
            access_token_audience=args.audience,
        )
        found, secret = await _in_transaction(settings, lambda db: service.create_client(db, body, change))
        print(_describe(found), file=out)
        if secret is not None:
            print(f"client_secret: {secret}", file=out)
            print("Store the secret now: it is shown this once and never again.", file=out)
    elif args.command == "list":
        found_all, _ = await _in_transaction(
            settings, lambda db: service.list_clients(db, limit=1000, offset=0, now=change.now)
        )
        print("\n\n".join(_describe(found) for found in found_all), file=out)
    elif args.command == "rotate-secret":
        overlap = timedelta(seconds=settings.CLIENT_SECRET_ROTATION_OVERLAP_SECONDS)
        found, secret = await _in_transaction(
            settings, lambda db: service.rotate_secret(db, args.client_id, change, overlap=overlap)
        )
        print(_describe(found), file=out)
        print(f"client_secret: {secret}", file=out)
        print(
            "Store the new secret now: it is shown this once. The previous one works until the time above.",
            file=out,
        )
    elif args.command == "delete":
        await _in_transaction(settings, lambda db: service.delete_client(db, args.client_id, change))
        print(f"client {args.client_id} deleted, with its secrets and sessions", file=out)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.clients.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create", help="register a client; prints a confidential client's secret once"
    )
    create.add_argument("--name", required=True)
    create.add_argument(
        "--type", choices=[t.value for t in ClientType], default=ClientType.CONFIDENTIAL.value
    )
    create.add_argument("--redirect-uri", action="append", default=[], help="repeat for several")
    create.add_argument("--post-logout-redirect-uri", action="append", default=[], help="repeat for several")
    create.add_argument(
        "--grant-type",
        action="append",
        help="repeat for several; default authorization_code and refresh_token; the names are those of "
        "discovery's grant_types_supported",
    )
    create.add_argument("--scope", action="append", help="repeat for several; default openid")
    create.add_argument(
        "--first-party", action="store_true", help="one of the service's own apps: no consent"
    )
    create.add_argument("--id-token-alg", choices=[a.value for a in SigningAlgorithm], default="ES256")
    create.add_argument("--audience", help="aud of its access tokens; default JWT_AUDIENCE")
    commands.add_parser("list", help="every client, with its live secrets' dates (never the secrets)")
    rotate = commands.add_parser(
        "rotate-secret", help="a new secret, printed once; the previous one overlaps"
    )
    rotate.add_argument("client_id")
    delete = commands.add_parser("delete", help="delete a client, its secrets and its sessions")
    delete.add_argument("client_id")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    try:
        asyncio.run(run(settings, args, out or sys.stdout))
    except PyauthError as exc:
        print(f"error: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: validation_error: {problems}", file=sys.stderr)
        return 1
    except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
        print(
            f"error: database unavailable at {settings.database_target} ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
