"""Registration: canonical emails, one account per email, the password policy, no mass assignment."""

import asyncio

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.users.models import User
from tests.auth.helpers import PASSWORD, live_email, register, unique_email
from tests.statements import statements_on

# What a registration writes besides the account: its verification link, the link's mail, its audit row.
WRITTEN_WITH_THE_ACCOUNT = """
SELECT (SELECT count(*) FROM account_tokens WHERE email = :e AND purpose = 'verify_email'),
       (SELECT count(*) FROM mail_outbox WHERE recipient = :e AND kind = 'verify_email'),
       (SELECT count(*) FROM audit_events a JOIN users u ON u.id = a.user_id
        WHERE u.email = :e AND a.event = 'user.registered')
"""


async def test_register_returns_the_user_without_the_hash(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await register(client, email)
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == email
    assert body["is_active"] is True
    assert body["is_verified"] is False
    assert "password" not in response.text
    assert "argon2" not in response.text


async def test_a_registration_writes_the_account_its_link_mail_and_audit_row_in_one_statement(
    client: httpx.AsyncClient, db_session: AsyncSession, connection: AsyncConnection
) -> None:
    """One round trip after the hash, all or nothing: a taken email writes no second link, mail or row."""
    email = unique_email()
    driver = (await connection.get_raw_connection()).driver_connection
    tables = ("users", "account_tokens", "mail_outbox", "audit_events")
    with statements_on(*tables, driver=driver) as statements:
        response = await register(client, email)
        assert response.status_code == 201, response.text
    assert len(statements) == 1, statements
    assert all(f"INSERT INTO {table}" in statements[0] for table in tables), statements
    assert tuple(await db_session.execute(text(WRITTEN_WITH_THE_ACCOUNT), {"e": email})) == ((1, 1, 1),)

    taken = await register(client, email)
    assert taken.status_code == 409, taken.text
    assert tuple(await db_session.execute(text(WRITTEN_WITH_THE_ACCOUNT), {"e": email})) == ((1, 1, 1),)


@pytest.mark.real_password_cost  # its subject is the cost the stored hash names
async def test_the_stored_hash_is_argon2id_at_the_configured_cost(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    stored = await db_session.scalar(select(User.password_hash).where(User.email == email))
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


async def test_emails_are_canonicalised(client: httpx.AsyncClient) -> None:
    local = unique_email().split("@")[0]
    response = await register(client, f"  {local.upper()}@EXAMPLE.ORG ")
    assert response.status_code == 201
    assert response.json()["email"] == f"{local}@example.org"
    again = await register(client, f"{local}@example.org")
    assert again.status_code == 409
    assert again.json()["error"] == "email_already_registered"


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "@example.org", "x" * 400 + "@example.org"])
async def test_invalid_emails_are_refused(client: httpx.AsyncClient, email: str) -> None:
    response = await register(client, email)
    assert response.status_code == 422
    assert response.json()["error"] in {"invalid_email", "validation_error"}


@pytest.mark.parametrize("field", ["is_superuser", "is_verified", "id", "is_active", "password_hash"])
async def test_unknown_fields_are_refused(client: httpx.AsyncClient, field: str) -> None:
    response = await client.post(
        "/auth/register", json={"email": unique_email(), "password": PASSWORD, field: True}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert field in body["detail"]


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short-pass", "password_too_short"),
        ("x" * 129, "password_too_long"),
        ("qwerty123456789", "password_too_common"),
        ("my-pyauth-password-is-long", "password_contains_context"),
    ],
)
async def test_password_policy_refusals_have_their_own_codes(
    client: httpx.AsyncClient, password: str, code: str
) -> None:
    response = await register(client, unique_email(), password)
    assert response.status_code == 422
    assert response.json()["error"] == code


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("football1234567890", "password_too_guessable"),  # a common word and a run of digits
        ("qazwsxedcrfvtgbyhn", "password_too_guessable"),  # a keyboard walk
        ("monkeymonkeymonkey", "password_too_guessable"),  # a repeated word
        ("momsanaladventure", "password_too_common"),  # breached, in no list of most common ones
    ],
)
async def test_registration_names_why_a_password_is_refused(
    client: httpx.AsyncClient, password: str, code: str
) -> None:
    response = await register(client, unique_email(), password)
    assert response.status_code == 422
    assert response.json()["error"] == code
    assert password not in response.text


async def test_the_email_local_part_is_refused_in_the_password(client: httpx.AsyncClient) -> None:
    email = unique_email("marjorie")
    response = await register(client, email, f"{email.split('@')[0]}-and-more-words")
    assert response.status_code == 422
    assert response.json()["error"] == "password_contains_context"


async def test_a_64_character_password_is_accepted(client: httpx.AsyncClient) -> None:
    response = await register(client, unique_email(), "correct horse battery staple " * 2 + "ab1234")
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"email": ' * 5000,
        b"[]",
        b'"just a string"',
        b'{"email": 5, "password": []}',
    ],
)
async def test_malformed_bodies_get_4xx_never_500(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/auth/register", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert "Traceback" not in response.text
    # Issue 10 item 10 adds `fields` to a validation error's body; the shape is otherwise unchanged.
    assert set(response.json()) - {"fields"} == {"error", "detail"}


async def test_concurrent_registrations_of_one_email_create_one_account(
    live_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Fifty requests at once, committed for real: exactly one 201, forty-nine 409, no 500."""
    email = live_email("race")
    responses = await asyncio.gather(*(register(live_client, email) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1
    assert statuses.count(409) == 49
    assert all(r.json()["error"] == "email_already_registered" for r in responses if r.status_code == 409)
    async with engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(User).where(User.email == email))
    assert count == 1
