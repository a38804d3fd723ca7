"""`python -m app.admin.cli create-admin EMAIL [--force]`: create an administrator, or grant the role to
an existing account.

For a new account the password is asked twice on a terminal (getpass, never echoed), or read as one
line from stdin when stdin is not a terminal (`echo "$PW" | make admin EMAIL=...`). It must pass the
full password policy. An existing account is granted the admin role and nothing else about it changes:
no password is asked or read. The password is never printed, logged or passed on the command line.

Registration is open, so an existing account under the expected address may be an attacker's. Its
creation time and verification state are printed before anything is granted, and an account whose
address was never verified is refused unless --force (`make admin EMAIL=... FORCE=1`) says that the
operator knows who registered it.

Exit status: 0 on success, 1 when the email or password is refused (the error code is printed) or the
database cannot be reached, 2 on a usage error.
"""

import argparse
import asyncio
import getpass
import sys
from datetime import UTC
from typing import TextIO

from sqlalchemy.exc import InterfaceError, OperationalError

from app.admin.first_admin import Outcome, create_or_promote
from app.core.clock import SystemClock
from app.core.config import Settings, get_settings
from app.core.context import RequestContext
from app.core.database import build_engine, build_sessionmaker
from app.core.errors import PyauthError
from app.core.logging import configure_logging
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import check_new_password
from app.users import repository as users_repository
from app.users.emails import canonicalize_email
from app.users.models import User

SOURCE = "cli"


class PasswordRequired(PyauthError):
    status_code = 422
    code = "password_required"
    message = "No password was given on stdin."


class PasswordsDoNotMatch(PyauthError):
    status_code = 422
    code = "passwords_do_not_match"
    message = "The two passwords are not the same."


def read_password(stdin: TextIO, settings: Settings) -> str:
    """From the terminal, asked twice; otherwise the first line of stdin without its line ending."""
    if stdin.isatty():
        first = getpass.getpass("Password for the new admin: ")
        if first != getpass.getpass("Repeat the password: "):
            raise PasswordsDoNotMatch()
        password = first
    else:
        # Bounded read: the policy refuses anything longer anyway, before any hashing.
        line = stdin.readline(4 * settings.PASSWORD_MAX_LENGTH + 2)
        password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise PasswordRequired()
    return password


def describe_account(user: User) -> str:
    """What an operator needs to judge an existing account before making it admin."""
    created = user.created_at.astimezone(UTC).isoformat(timespec="seconds")
    verified = "verified" if user.is_verified else "NOT verified"
    active = "active" if user.is_active else "deactivated"
    return f"existing account {user.email} (id {user.id}): created {created}, email {verified}, {active}"


async def create_admin(
    settings: Settings, raw_email: str, stdin: TextIO, *, force: bool = False, out: TextIO | None = None
) -> Outcome:
    """Create the admin or grant the role. Raises `PyauthError` for a refused email or password, and
    `AccountNotVerified` for an existing unverified account unless `force`. An existing account is
    described on `out` before anything is granted."""
    out = out or sys.stdout
    email = canonicalize_email(raw_email)
    clock = SystemClock()
    engine = build_engine(settings)
    hasher: PasswordHasher | None = None
    try:
        sessionmaker = build_sessionmaker(engine)
        async with sessionmaker() as db:
            existing = await users_repository.get_by_email(db, email)
        password_hash: str | None = None
        if existing is None:
            password = await check_new_password(
                read_password(stdin, settings), settings=settings, email=email
            )
            hasher = PasswordHasher(settings)
            password_hash = await hasher.hash(password)

        async def vet(user: User) -> bool:
            print(describe_account(user), file=out, flush=True)
            if force and not user.is_verified and not user.is_admin:
                print("warning: --force: promoting an account whose address was never verified", file=out)
            return True

        async with sessionmaker() as db, db.begin():
            return await create_or_promote(
                db,
                email,
                password_hash=password_hash,
                ctx=RequestContext.background(clock.now()),
                source=SOURCE,
                vet=vet,
                require_verified=not force,
            )
    finally:
        if hasher is not None:
            hasher.shutdown()
        await engine.dispose()


def main(argv: list[str] | None = None, stdin: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.admin.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-admin", help="create an admin (password from the terminal or stdin) or promote a user"
    )
    create.add_argument("email")
    create.add_argument(
        "--force",
        action="store_true",
        help="promote an existing account even though its email address was never verified",
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging(settings)
    try:
        outcome = asyncio.run(create_admin(settings, args.email, stdin or sys.stdin, force=args.force))
    except PyauthError as exc:
        print(f"error: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, EOFError):
        print("\naborted: nothing changed", file=sys.stderr)
        return 1
    except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
        print(
            f"error: database unavailable at {settings.database_target} ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 1
    user = outcome.user
    if outcome.result == "created":
        print(f"admin created: {user.email} (id {user.id})")
    elif outcome.result == "promoted":
        print(f"admin role granted to the existing account {user.email} (id {user.id})")
    else:
        print(f"{user.email} (id {user.id}) is already an admin; nothing changed")
    if not user.is_active:
        print("note: this account is deactivated; it cannot log in until it is activated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
