"""HTTP interface of the audit log: `GET /admin/audit` for administrators, `GET /users/me/events` for
everyone's own events. Both page newest first with an opaque cursor (keyset on time and id), which
stays correct while new events arrive."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BeforeValidator

from app.audit import service
from app.audit.events import AuditEvent
from app.audit.models import AuditEntry
from app.audit.repository import MAX_CURSOR_LENGTH, InvalidCursor
from app.audit.schemas import AuditEventRead, AuditPage, OwnEventRead, OwnEventsPage
from app.auth.dependencies import CurrentAdmin, CurrentAuth
from app.auth.errors import ADMIN_GUARD
from app.core.dependencies import SessionDep, no_store
from app.core.errors import UNAVAILABLE, error_responses


def _not_a_number(value: object) -> object:
    """pydantic also reads numbers as Unix times; the API documents RFC 3339 date-times only."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("expected an RFC 3339 date-time with a timezone, e.g. 2026-01-31T12:00:00Z")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]

admin_router = APIRouter(prefix="/admin/audit", tags=["admin"], dependencies=[Depends(no_store)])
own_router = APIRouter(prefix="/users/me/events", tags=["users"], dependencies=[Depends(no_store)])

CursorQuery = Annotated[
    str | None, Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page.")
]


@admin_router.get(
    "",
    response_model=AuditPage,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, InvalidCursor)),
)
async def list_events(
    _: CurrentAdmin,
    db: SessionDep,
    user_id: Annotated[uuid.UUID | None, Query(description="The account the events are about.")] = None,
    actor_id: Annotated[uuid.UUID | None, Query(description="The administrator who acted.")] = None,
    event: Annotated[
        list[AuditEvent] | None, Query(description="One or several; repeat the parameter.")
    ] = None,
    since: Annotated[Rfc3339 | None, Query(description="Inclusive, with a timezone.")] = None,
    until: Annotated[Rfc3339 | None, Query(description="Exclusive, with a timezone.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
) -> AuditPage:
    """Security events, newest first, filtered by user, administrator, event type and time range."""
    rows, next_cursor = await service.search(
        db,
        limit=limit,
        cursor=cursor,
        user_id=user_id,
        actor_id=actor_id,
        events=event or (),
        since=since,
        until=until,
    )
    return AuditPage(items=[AuditEventRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@own_router.get(
    "",
    response_model=OwnEventsPage,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(InvalidCursor,)),
)
async def list_own_events(
    auth: CurrentAuth,
    db: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorQuery = None,
) -> OwnEventsPage:
    """The caller's own recent security events, newest first."""
    rows, next_cursor = await service.search(db, limit=limit, cursor=cursor, user_id=auth.user.id)
    return OwnEventsPage(items=[_own_view(row) for row in rows], next_cursor=next_cursor)


def _own_view(row: AuditEntry) -> OwnEventRead:
    by_administrator = row.actor_id is not None
    # An administrator's row records the administrator's session and client: not the user's to see.
    return OwnEventRead(
        occurred_at=row.occurred_at,
        event=row.event,
        reason=row.reason,
        by_administrator=by_administrator,
        session_id=None if by_administrator else row.session_id,
        ip_address=None if by_administrator else row.ip_address,
        user_agent=None if by_administrator else row.user_agent,
    )
