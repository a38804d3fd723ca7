"""What the admin endpoints accept and return. Users are returned as `app.users.schemas.UserRead`."""

from pydantic import BaseModel, Field

from app.core.schemas import StrictModel
from app.users.schemas import UserRead


class UserPage(BaseModel):
    """One page of users, newest first. `total` counts every user that matches the filters."""

    items: list[UserRead]
    total: int
    limit: int
    offset: int


class RolesUpdate(StrictModel):
    roles: list[str] = Field(max_length=8, examples=[["user", "admin"]])


class SessionsEnded(BaseModel):
    sessions_ended: int
