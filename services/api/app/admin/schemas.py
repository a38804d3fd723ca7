"""What the admin endpoints accept and return. Users are returned as `app.users.schemas.UserRead`."""

from pydantic import BaseModel, Field

from app.core.schemas import StrictModel
from app.users.models import ROLES
from app.users.schemas import UserRead


class UserPage(BaseModel):
    """One page of users, newest first. `total` counts every user that matches the filters."""

    items: list[UserRead]
    total: int
    limit: int
    offset: int


class RolesUpdate(StrictModel):
    # Stated for generated clients, not enforced here: an unknown role stays a 422 `unknown_role`.
    roles: list[str] = Field(
        max_length=8,
        examples=[["user", "admin"]],
        json_schema_extra={"items": {"type": "string", "enum": list(ROLES)}},
    )


class SessionsEnded(BaseModel):
    sessions_ended: int
