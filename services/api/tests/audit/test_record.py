"""`record()`: one row in the caller's transaction, with the client, and never a secret."""

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.audit.service import AuditEvent, record
from app.core.clock import ManualClock
from app.core.context import RequestContext
from app.users import repository as users_repository
from app.users.models import User
from tests.auth.helpers import unique_email


async def _rows(db_session: AsyncSession, user_id: uuid.UUID) -> list[AuditEntry]:
    return list(await db_session.scalars(select(AuditEntry).where(AuditEntry.user_id == user_id)))


async def test_an_event_is_written_with_its_context(db_session: AsyncSession, clock: ManualClock) -> None:
    user_id, actor_id, session_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await record(
        db_session,
        AuditEvent.LOGIN_FAILED,
        ctx=RequestContext(now=clock.now(), ip_address="203.0.113.7", user_agent="curl/8.5"),
        user_id=user_id,
        actor_id=actor_id,
        session_id=session_id,
        reason="wrong_password",
        details={"attempt": 3, "request": uuid.UUID(int=1)},
    )
    [row] = await _rows(db_session, user_id)
    assert row.event == "login.failed"
    assert (row.occurred_at, row.actor_id, row.session_id) == (clock.now(), actor_id, session_id)
    assert (row.ip_address, row.user_agent, row.reason) == ("203.0.113.7", "curl/8.5", "wrong_password")
    assert row.details == {"attempt": 3, "request": str(uuid.UUID(int=1))}


async def test_an_event_rolls_back_with_the_change_it_describes(
    db_session: AsyncSession, clock: ManualClock
) -> None:
    user_id = uuid.uuid4()
    savepoint = await db_session.begin_nested()
    await record(
        db_session, AuditEvent.PASSWORD_CHANGED, ctx=RequestContext.background(clock.now()), user_id=user_id
    )
    await savepoint.rollback()
    assert await _rows(db_session, user_id) == []


async def test_secret_looking_details_are_redacted(db_session: AsyncSession, clock: ManualClock) -> None:
    user_id = uuid.uuid4()
    await record(
        db_session,
        AuditEvent.PASSWORD_RESET,
        ctx=RequestContext.background(clock.now()),
        user_id=user_id,
        details={
            "new_password": "hunter2-hunter2-hunter2",
            "nested": {"refresh_token": "kq3-abc", "kept": 1},
            "items": [{"Client_Secret": "s3cr3t"}],
        },
    )
    [row] = await _rows(db_session, user_id)
    assert row.details == {
        "new_password": "[redacted]",
        "nested": {"refresh_token": "[redacted]", "kept": 1},
        "items": [{"Client_Secret": "[redacted]"}],
    }


async def test_oversized_details_are_not_stored(db_session: AsyncSession, clock: ManualClock) -> None:
    user_id = uuid.uuid4()
    await record(
        db_session,
        AuditEvent.LOGIN_FAILED,
        ctx=RequestContext.background(clock.now()),
        user_id=user_id,
        details={"x": "y" * 5000},
    )
    [row] = await _rows(db_session, user_id)
    assert row.details == {"truncated": True}


async def test_long_client_fields_are_clipped(db_session: AsyncSession, clock: ManualClock) -> None:
    user_id = uuid.uuid4()
    ctx = RequestContext(now=clock.now(), ip_address="1" * 100, user_agent="a" * 1000)
    await record(db_session, AuditEvent.LOGIN_FAILED, ctx=ctx, user_id=user_id, reason="r" * 100)
    [row] = await _rows(db_session, user_id)
    assert (len(row.ip_address or ""), len(row.user_agent or ""), len(row.reason or "")) == (64, 512, 64)


async def test_events_outlive_the_user_they_are_about(db_session: AsyncSession, clock: ManualClock) -> None:
    user = await users_repository.insert_if_absent(db_session, unique_email(), "$argon2id$x")
    assert user is not None
    await record(
        db_session, AuditEvent.USER_REGISTERED, ctx=RequestContext.background(clock.now()), user_id=user.id
    )
    await db_session.flush()
    await db_session.execute(delete(User).where(User.id == user.id))
    [row] = await _rows(db_session, user.id)
    assert row.event == "user.registered"
