"""The current user's own record: read it, update the profile. (Changing the password is the account
lifecycle's: `app.account.endpoints`.)"""

from fastapi import APIRouter, Response

from app.auth.dependencies import CurrentAuth
from app.core.dependencies import SessionDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, error_responses
from app.users import service
from app.users.schemas import UserRead, UserUpdate

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
