"""What the API accepts and returns about users. Request models forbid unknown fields, so fields such
as `is_verified` or `id` can never be set by a client."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.schemas import StrictModel
from app.passwords.policy import CurrentPassword, NewPassword


class UserCreate(StrictModel):
    email: str = Field(max_length=320, examples=["alice@example.com"])
    # The policy counts code points after NFC; validation only stops absurd bodies early.
    password: NewPassword


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str | None
    is_active: bool
    is_verified: bool
    roles: list[str]
    created_at: datetime
    updated_at: datetime


class UserUpdate(StrictModel):
    display_name: str | None = Field(default=None, max_length=100)


class PasswordChange(StrictModel):
    current_password: CurrentPassword
    new_password: NewPassword
