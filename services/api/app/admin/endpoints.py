"""HTTP interface of administration: `/admin/users`, for callers holding the admin role (403 otherwise).

Responses carry `Cache-Control: no-store`: they hold other people's account data.
"""

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status

from app.admin import service
from app.admin.schemas import RolesUpdate, SessionsEnded, UserPage
from app.admin.service import (
    AdminAction,
    CannotDeactivateSelf,
    CannotDeleteSelf,
    CannotRemoveOwnAdminRole,
    UnknownRole,
    UserNotFound,
)
from app.auth.dependencies import CurrentAdmin
from app.auth.errors import ADMIN_GUARD
from app.core.dependencies import ContextDep, SessionDep, SettingsDep, no_store
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, error_responses
from app.users.schemas import UserRead

router = APIRouter(prefix="/admin/users", tags=["admin"], dependencies=[Depends(no_store)])

RoleName = Literal["user", "admin"]  # app.users.models.ROLES


def _action(admin: CurrentAdmin, ctx: ContextDep) -> AdminAction:
    return AdminAction(admin=admin, ctx=ctx)


Action = Annotated[AdminAction, Depends(_action)]


@router.get("", response_model=UserPage, responses=error_responses(401, 422, UNAVAILABLE, raises=ADMIN_GUARD))
async def list_users(
    _: CurrentAdmin,
    db: SessionDep,
    email: Annotated[
        str | None, Query(max_length=320, description="Case-insensitive substring of the email.")
    ] = None,
    role: RoleName | None = None,
    is_active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> UserPage:
    """Users, newest first, with offset pagination and the total that match the filters."""
    users, total = await service.list_users(
        db, limit=limit, offset=offset, email=email, role=role, is_active=is_active
    )
    return UserPage(
        items=[UserRead.model_validate(user) for user in users], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{user_id}",
    response_model=UserRead,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, UserNotFound)),
)
async def get_user(user_id: uuid.UUID, _: CurrentAdmin, db: SessionDep) -> UserRead:
    return UserRead.model_validate(await service.get_user(db, user_id))


@router.post(
    "/{user_id}/activate",
    response_model=UserRead,
    responses=error_responses(*GUARD_ERRORS, 401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, UserNotFound)),
)
async def activate_user(user_id: uuid.UUID, action: Action, db: SessionDep) -> UserRead:
    return UserRead.model_validate(await service.set_active(db, action, user_id, active=True))


@router.post(
    "/{user_id}/deactivate",
    response_model=UserRead,
    responses=error_responses(
        *GUARD_ERRORS, 401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, UserNotFound, CannotDeactivateSelf)
    ),
)
async def deactivate_user(user_id: uuid.UUID, action: Action, db: SessionDep) -> UserRead:
    """Every session of the user ends at once: their access tokens stop working on pyauth's endpoints
    and their refresh tokens are refused. Administrators cannot deactivate themselves (409)."""
    return UserRead.model_validate(await service.set_active(db, action, user_id, active=False))


@router.put(
    "/{user_id}/roles",
    response_model=UserRead,
    responses=error_responses(
        *GUARD_ERRORS,
        401,
        422,
        UNAVAILABLE,
        raises=(*ADMIN_GUARD, UserNotFound, CannotRemoveOwnAdminRole, UnknownRole),
    ),
)
async def set_roles(user_id: uuid.UUID, body: RolesUpdate, action: Action, db: SessionDep) -> UserRead:
    """Replace the roles: known roles only, `user` is always kept. Administrators cannot remove their
    own admin role (409). New access tokens carry the roles from the next refresh or login."""
    return UserRead.model_validate(await service.set_roles(db, action, user_id, body.roles))


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, UserNotFound, CannotDeleteSelf)),
)
async def delete_user(user_id: uuid.UUID, action: Action, db: SessionDep) -> None:
    """Delete the account and, with it, its sessions. Its audit events are kept. Administrators cannot
    delete themselves (409)."""
    await service.delete_user(db, action, user_id)


@router.post(
    "/{user_id}/sessions/revoke",
    response_model=SessionsEnded,
    responses=error_responses(*GUARD_ERRORS, 401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, UserNotFound)),
)
async def end_sessions(user_id: uuid.UUID, action: Action, db: SessionDep) -> SessionsEnded:
    """End every session of the user."""
    return SessionsEnded(sessions_ended=await service.end_sessions(db, action, user_id))


@router.delete(
    "/{user_id}/mfa",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, UserNotFound)),
)
async def reset_mfa(user_id: uuid.UUID, action: Action, db: SessionDep, settings: SettingsDep) -> None:
    """Remove the user's second factors: TOTP authenticator, recovery codes and passkeys (the password
    alone signs in again). Audited as `admin.mfa_reset`; the user is mailed when anything was removed."""
    await service.reset_mfa(db, action, user_id, settings=settings)
