"""The current user's own account: read it, update it, change the password."""

from fastapi import APIRouter, Response

from app.auth.dependencies import CurrentAuth
from app.core.database import SessionDep
from app.core.dependencies import ClientDep, ClockDep, SettingsDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, error_responses
from app.passwords.dependencies import HasherDep
from app.passwords.policy import NEW_PASSWORD_ERRORS
from app.ratelimit.dependencies import RateLimit
from app.users import service
from app.users.schemas import PasswordChange, UserRead, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserRead, responses=error_responses(401, UNAVAILABLE))
async def read_me(auth: CurrentAuth, response: Response) -> UserRead:
    response.headers["Cache-Control"] = "no-store"
    return UserRead.model_validate(auth.user)


@router.patch("/me", response_model=UserRead, responses=error_responses(*GUARD_ERRORS, 401, 422, UNAVAILABLE))
async def update_me(auth: CurrentAuth, changes: UserUpdate, db: SessionDep, response: Response) -> UserRead:
    user = await service.update_profile(db, auth.user, changes)
    response.headers["Cache-Control"] = "no-store"
    return UserRead.model_validate(user)


@router.post(
    "/me/password",
    dependencies=[RateLimit("current_password", "RATE_LIMIT_CURRENT_PASSWORD")],
    status_code=204,
    responses=error_responses(
        *GUARD_ERRORS,
        401,
        422,
        429,
        UNAVAILABLE,
        raises=(
            service.InvalidCurrentPassword,
            service.CurrentPasswordLocked,
            service.CurrentPasswordThrottled,
            *NEW_PASSWORD_ERRORS,
        ),
    ),
)
async def change_password(
    auth: CurrentAuth,
    body: PasswordChange,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
) -> Response:
    """Requires the current password, whose checks are throttled per account (429 with Retry-After; 403
    `password_reset_required` after LOGIN_MAX_FAILURES) and audited. Every other session of the user
    ends; this one stays."""
    await service.change_password(
        db,
        user=auth.user,
        current_session_id=auth.session.id,
        current_password=body.current_password,
        new_password=body.new_password,
        hasher=hasher,
        settings=settings,
        now=clock.now(),
        client=client,
    )
    return Response(status_code=204)
