"""`GET /users/me` writes its body without pydantic (`user_json`): the same bytes as `UserRead`'s own
`model_dump_json`, for every kind of value its columns hold."""

import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.users.schemas import UserRead, user_json

NAMES = [
    None,
    "",
    "Ada",
    'quote " backslash \\ slash /',
    "é ü ß 😀 \u2028 \u2029",
    "".join(chr(code) for code in range(32)) + "\x7f\x80\x9f",
    "<script>&'",
    "\ud7ff\ue000\uffff",
]
TIMES = [
    dt.datetime(2026, 12, 4, 16, 45, 26, 0, dt.UTC),
    dt.datetime(2026, 12, 4, 16, 45, 26, 123456, dt.UTC),
    dt.datetime(2026, 12, 4, 16, 45, 26, 100, dt.UTC),
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
]


def _row(name: str | None, at: dt.datetime, roles: list[str], user_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": user_id,
        "email": "ada@example.org",
        "display_name": name,
        "is_active": True,
        "is_verified": False,
        "roles": roles,
        "created_at": at,
        "updated_at": at + dt.timedelta(microseconds=1),
    }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("at", TIMES)
@pytest.mark.parametrize("roles", [[], ["user"], ["user", "admin"]])
def test_user_json_is_pydantic_s_json(name: str | None, at: dt.datetime, roles: list[str]) -> None:
    row = _row(name, at, roles, uuid.uuid4())
    assert user_json(row) == UserRead.model_validate(row).model_dump_json().encode()


async def test_user_json_of_a_driver_row_is_pydantic_s_json(connection: AsyncConnection) -> None:
    """asyncpg's own UUID class and timestamptz values, as a users row arrives from the driver."""
    driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
    row = await driver.fetchrow(
        "SELECT gen_random_uuid() AS id, 'ada@example.org' AS email, NULL::text AS display_name,"
        " true AS is_active, true AS is_verified, ARRAY['user']::text[] AS roles,"
        " now() AS created_at, date_trunc('second', now()) AS updated_at, 'x' AS password_hash"
    )
    assert type(row["id"]) is not uuid.UUID  # asyncpg's own
    assert user_json(row) == UserRead.model_validate(dict(row)).model_dump_json().encode()
    assert b"password_hash" not in user_json(row)  # UserRead's fields only, whatever the row holds


def test_user_json_refuses_a_type_userread_does_not_have() -> None:
    row = _row("Ada", TIMES[0], [], uuid.uuid4()) | {"email": object()}
    with pytest.raises(TypeError):
        user_json(row)
