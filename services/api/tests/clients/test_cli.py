"""`python -m app.clients.cli`, as `make client` runs it, against the test database. Its first command
runs as a process of its own; the others run its `main` in this process (tests/cli.py). Its commits are
real: the clients it makes, and their audit rows, are deleted afterwards."""

import base64
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.models import AuditEntry
from app.clients.models import ClientSecret, OAuthClient
from app.clients.service import new_client_id
from app.core.config import Settings
from app.core.opaque_tokens import digest
from tests.cli import WEB_STACK, run_cli_in_process, run_cli_process

NAME_PREFIX = "cli-test-"


async def _cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    return await run_cli_in_process(settings, "app.clients.cli", *args)


def _field(output: str, name: str) -> list[str]:
    return re.findall(rf"^{name}:\s+(\S+)$", output, re.MULTILINE)


@pytest.fixture
async def cli_clients_deleted(admin_engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    async with admin_engine.begin() as connection:
        # Every client the CLI created here, deleted since or not, by the name its creation recorded.
        ids = (
            "SELECT details->>'client_id' FROM audit_events "
            "WHERE event = 'admin.client_created' AND details->>'name' LIKE :prefix"
        )
        prefix = {"prefix": f"{NAME_PREFIX}%"}
        await connection.execute(text("DELETE FROM oauth_clients WHERE name LIKE :prefix"), prefix)
        await connection.execute(
            text(f"DELETE FROM audit_events WHERE details->>'client_id' IN ({ids})"),  # noqa: S608 - constant
            prefix,
        )


@pytest.mark.usefixtures("cli_clients_deleted")
async def test_cli_creates_lists_rotates_and_deletes_a_client_printing_each_secret_once(
    engine: AsyncEngine, settings: Settings
) -> None:
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:8]}"
    code, out, err, imported = await run_cli_process(
        settings,
        "app.clients.cli",
        "create",
        "--name",
        name,
        "--redirect-uri",
        "https://app.example.com/cb",
        "--scope",
        "openid",
        "--id-token-alg",
        "RS256",
    )
    assert code == 0, err
    assert imported.isdisjoint(WEB_STACK)
    [client_id], [secret] = _field(out, "client_id"), _field(out, "client_secret")
    async with engine.connect() as connection:
        client = (
            await connection.execute(select(OAuthClient).where(OAuthClient.client_id == client_id))
        ).one()
        hashes = list(
            await connection.scalars(
                select(ClientSecret.secret_hash).where(ClientSecret.client_id == client_id)
            )
        )
    assert (client.name, client.client_type, client.redirect_uris) == (
        name,
        "confidential",
        ["https://app.example.com/cb"],
    )
    assert client.grant_types == ["authorization_code", "refresh_token"]
    assert client.id_token_signed_response_alg == "RS256"  # issue 11: RS256 ID tokens
    assert _field(out, "id_token_alg") == ["RS256"]
    assert hashes == [digest(secret)]

    code, listing, err = await _cli(settings, "list")
    assert code == 0, err
    assert client_id in _field(listing, "client_id") and "pyauth" in _field(listing, "client_id")
    assert secret not in listing

    code, out, err = await _cli(settings, "rotate-secret", client_id)
    assert code == 0, err
    [new_secret] = _field(out, "client_secret")
    assert new_secret != secret
    assert len(re.findall(r"^secret:", out, re.MULTILINE)) == 2  # the previous one overlaps

    code, out, err = await _cli(settings, "delete", client_id)
    assert code == 0, err
    async with engine.connect() as connection:
        assert (
            await connection.scalar(select(OAuthClient.client_id).where(OAuthClient.client_id == client_id))
            is None
        )
        events = (
            await connection.execute(
                select(AuditEntry.event, AuditEntry.reason, AuditEntry.actor_id)
                .where(AuditEntry.details["client_id"].astext == client_id)
                .order_by(AuditEntry.id)
            )
        ).all()
    assert [tuple(row) for row in events] == [
        ("admin.client_created", "cli", None),
        ("admin.client_secret_rotated", "cli", None),
        ("admin.client_deleted", "cli", None),
    ]


@pytest.mark.usefixtures("cli_clients_deleted")
async def test_cli_refusals_print_the_error_code_and_exit_1(settings: Settings) -> None:
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:8]}"
    code, out, err = await _cli(
        settings, "create", "--name", name, "--redirect-uri", "http://app.example.com/cb"
    )
    assert (code, out) == (1, "")
    assert err.startswith("error: invalid_redirect_uri:")
    code, _, err = await _cli(settings, "delete", "pyauth")
    assert code == 1
    assert err.startswith("error: builtin_client_protected:")
    code, _, err = await _cli(settings, "rotate-secret", "no-such-client")
    assert code == 1
    assert err.startswith("error: client_not_found:")
    code, _, err = await _cli(settings, "create", "--name", "x" * 201, "--type", "public")
    assert code == 1
    assert err.startswith("error: validation_error:")
    code, _, _ = await _cli(settings, "create")
    assert code == 2  # usage: --name is required


def test_client_ids_never_start_with_a_dash_so_a_command_line_takes_them_as_arguments() -> None:
    """1 in 64 URL-safe ids would begin with `-`, which argparse reads as an option: `rotate-secret <id>`
    then failed at random. 2,000 draws meet one all but surely (1 - (63/64)^2000 > 0.999999)."""
    ids = [new_client_id() for _ in range(2000)]
    assert not [client_id for client_id in ids if client_id.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(client_id + "==")) == 16 for client_id in ids)
