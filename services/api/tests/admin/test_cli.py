"""`python -m app.admin.cli create-admin EMAIL`, as `make admin` runs it, against the test database, the
password on stdin. The process itself is started on a terminal (which only a process of its own has); the
other tests run its `main` in this process (tests/cli.py). Its commits are real; `purge_live_accounts`
removes them."""

import asyncio
import os
import pty
import re
import sys
from datetime import UTC

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.models import AuditEntry
from app.core.config import Settings
from app.users.models import User
from tests.auth.helpers import PASSWORD, live_email
from tests.cli import PROJECT, WEB_STACK, cli_environment, run_cli_in_process

PROMPTS = (b"Password for the new admin: ", b"Repeat the password: ")
# A line of `python -X importtime` on the terminal: "import time: self [us] | cumulative | package".
IMPORT_TIME = re.compile(rb"import time:[^\n]*\n")

pytestmark = pytest.mark.usefixtures("purge_live_accounts")


async def _cli(settings: Settings, *args: str, stdin: bytes | None) -> tuple[int, str, str]:
    return await run_cli_in_process(settings, "app.admin.cli", *args, stdin=stdin)


async def _user(engine: AsyncEngine, email: str) -> User | None:
    async with engine.connect() as connection:
        row = (await connection.execute(select(User).where(User.email == email))).one_or_none()
    return User(**row._mapping) if row else None


async def _created_events(engine: AsyncEngine, user: User) -> list[AuditEntry]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(AuditEntry).where(AuditEntry.user_id == user.id, AuditEntry.event == "admin.created")
        )
        return [AuditEntry(**row._mapping) for row in rows]


async def test_create_admin_reads_the_password_from_stdin(engine: AsyncEngine, settings: Settings) -> None:
    email = live_email("cli-admin")
    code, out, err = await _cli(settings, "create-admin", email.upper(), stdin=f"{PASSWORD}\n".encode())
    assert code == 0, err
    assert out.startswith(f"admin created: {email} (id ")
    assert PASSWORD not in out + err

    user = await _user(engine, email)
    assert user is not None
    assert user.roles == ["user", "admin"]
    assert user.password_hash.startswith("$argon2id$")
    [event] = await _created_events(engine, user)
    assert (event.reason, event.actor_id, event.details) == ("cli", None, {"promoted": False})


async def test_the_new_admin_can_log_in_with_that_password(engine: AsyncEngine, settings: Settings) -> None:
    """The password from stdin is the one hashed: the trailing newline is not part of it."""
    from app.passwords.hashing import PasswordHasher  # noqa: PLC0415

    email = live_email("cli-login")
    code, _, err = await _cli(settings, "create-admin", email, stdin=f"{PASSWORD}\r\n".encode())
    assert code == 0, err
    user = await _user(engine, email)
    assert user is not None
    hasher = PasswordHasher(settings)
    try:
        assert await hasher.verify(user.password_hash, PASSWORD)
    finally:
        hasher.shutdown()


async def test_a_weak_password_is_refused_with_its_code(engine: AsyncEngine, settings: Settings) -> None:
    email = live_email("cli-weak")
    code, out, err = await _cli(settings, "create-admin", email, stdin=b"short\n")
    assert code == 1
    assert "password_too_short" in err
    assert "short\n" not in out
    assert await _user(engine, email) is None

    code, _, err = await _cli(settings, "create-admin", email, stdin=b"1234567890qwertyuiop\n")
    assert code == 1
    assert "password_too_common" in err
    assert await _user(engine, email) is None


async def test_an_empty_stdin_is_refused(engine: AsyncEngine, settings: Settings) -> None:
    email = live_email("cli-empty")
    code, _, err = await _cli(settings, "create-admin", email, stdin=b"")
    assert code == 1
    assert "password_required" in err
    assert await _user(engine, email) is None


async def test_an_invalid_email_is_refused(settings: Settings) -> None:
    code, _, err = await _cli(settings, "create-admin", "not-an-email", stdin=f"{PASSWORD}\n".encode())
    assert code == 1
    assert "invalid_email" in err


async def test_an_existing_verified_user_is_promoted_without_a_password(
    engine: AsyncEngine, settings: Settings
) -> None:
    email = live_email("cli-promote")
    async with engine.begin() as connection:
        await connection.execute(
            insert(User).values(email=email, password_hash="$argon2id$unchanged", is_verified=True)
        )

    code, out, err = await _cli(settings, "create-admin", email, stdin=None)
    assert code == 0, err
    described, granted = out.splitlines()
    assert described.startswith(f"existing account {email} (id ")
    assert granted.startswith(f"admin role granted to the existing account {email}")
    user = await _user(engine, email)
    assert user is not None
    assert user.roles == ["user", "admin"]
    assert user.password_hash == "$argon2id$unchanged"
    [event] = await _created_events(engine, user)
    assert event.details == {"promoted": True, "before": ["user"]}

    code, out, _ = await _cli(settings, "create-admin", email, stdin=None)
    assert code == 0
    assert "already an admin; nothing changed" in out
    assert len(await _created_events(engine, user)) == 1


async def test_an_unverified_account_is_not_promoted_and_is_shown_first(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Registration is open: an account under the address an operator means to promote may be an
    attacker's. Its creation time and verification state are shown, and it is refused without --force."""
    email = live_email("cli-squatted")
    async with engine.begin() as connection:
        await connection.execute(insert(User).values(email=email, password_hash="$argon2id$squatter"))
    user = await _user(engine, email)
    assert user is not None

    code, out, err = await _cli(settings, "create-admin", email, stdin=None)

    assert code == 1
    created = user.created_at.astimezone(UTC).isoformat(timespec="seconds")
    assert out.strip() == (
        f"existing account {email} (id {user.id}): created {created}, email NOT verified, active"
    )
    assert "account_not_verified" in err
    assert "FORCE=1" in err
    refused = await _user(engine, email)
    assert refused is not None
    assert refused.roles == ["user"]
    assert await _created_events(engine, refused) == []


async def test_force_promotes_an_unverified_account_and_the_audit_row_says_so(
    engine: AsyncEngine, settings: Settings
) -> None:
    email = live_email("cli-forced")
    async with engine.begin() as connection:
        await connection.execute(insert(User).values(email=email, password_hash="$argon2id$known"))

    code, out, err = await _cli(settings, "create-admin", email, "--force", stdin=None)

    assert code == 0, err
    assert "email NOT verified" in out
    assert "warning: --force" in out
    assert f"admin role granted to the existing account {email}" in out
    user = await _user(engine, email)
    assert user is not None
    assert user.roles == ["user", "admin"]
    [event] = await _created_events(engine, user)
    assert event.details == {"promoted": True, "before": ["user"], "unverified": True}


async def test_a_missing_email_is_a_usage_error(settings: Settings) -> None:
    code, _, err = await _cli(settings, "create-admin", stdin=None)
    assert code == 2
    assert "email" in err


async def _on_terminal(settings: Settings, email: str, answers: list[str]) -> tuple[int, bytes, set[str]]:
    """Run the CLI on a pseudo-terminal, answering each prompt in turn; return its status, everything the
    terminal showed, and the top-level packages it imported (`-X importtime`'s lines, taken out of what
    the terminal showed)."""
    master, slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", "app.admin.cli", "create-admin", email,
        cwd=PROJECT, env=cli_environment(settings),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    shown = b""

    def read() -> bytes:
        try:
            return os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return b""

    try:
        async with asyncio.timeout(60):
            for prompt, answer in zip(PROMPTS, answers, strict=True):
                while prompt not in shown:
                    chunk = await asyncio.to_thread(read)
                    assert chunk, shown
                    shown += chunk
                os.write(master, answer.encode() + b"\n")
            while chunk := await asyncio.to_thread(read):
                shown += chunk
            code = await process.wait()
    finally:
        os.close(master)
    imported = {
        line.rsplit(b"|", 1)[-1].strip().split(b".")[0].decode() for line in IMPORT_TIME.findall(shown)
    }
    return code, IMPORT_TIME.sub(b"", shown), imported


async def test_on_a_terminal_the_password_is_asked_twice_and_never_echoed(
    engine: AsyncEngine, settings: Settings
) -> None:
    email = live_email("cli-tty")
    code, shown, imported = await _on_terminal(settings, email, [PASSWORD, PASSWORD])
    assert code == 0, shown
    assert imported.isdisjoint(WEB_STACK)
    assert b"admin created" in shown
    assert PASSWORD.encode() not in shown
    user = await _user(engine, email)
    assert user is not None
    assert user.roles == ["user", "admin"]


async def test_on_a_terminal_two_different_passwords_are_refused(
    engine: AsyncEngine, settings: Settings
) -> None:
    email = live_email("cli-mismatch")
    code, shown, _ = await _on_terminal(settings, email, [PASSWORD, PASSWORD + "x"])
    assert code == 1
    assert b"passwords_do_not_match" in shown
    assert await _user(engine, email) is None
