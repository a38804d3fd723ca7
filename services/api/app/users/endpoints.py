"""The current user's own record: read it, update the profile. (Changing the password is the account
lifecycle's: `app.account.endpoints`.)"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.auth.dependencies import CurrentAuth, bearer, caller_profile
from app.core.dependencies import SessionDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, error_responses
from app.users import service
from app.users.schemas import UserRead, UserUpdate, user_json

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserRead, responses=error_responses(401, UNAVAILABLE))
async def read_me(request: Request, _token: Annotated[str | None, Depends(bearer)]) -> Response:
    """The caller's account. (`_token` declares the Bearer scheme in the OpenAPI document; `me` reads it.)"""
    return await me(request)


async def me(request: Request) -> Response:
    """`GET /users/me`, for the FastAPI route above and for the exact-route dispatch (`app.main`) alike."""
    body = user_json(await caller_profile(request))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.patch("/me", response_model=UserRead, responses=error_responses(*GUARD_ERRORS, 401, 422, UNAVAILABLE))
async def update_me(auth: CurrentAuth, changes: UserUpdate, db: SessionDep, response: Response) -> UserRead:
    user = await service.update_profile(db, auth.user, changes)
    response.headers["Cache-Control"] = "no-store"
    return UserRead.model_validate(user)
