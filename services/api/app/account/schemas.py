"""Bodies of the account-lifecycle endpoints. Unknown fields are refused."""

from pydantic import BaseModel, Field

from app.core.schemas import StrictModel
from app.passwords.policy import CurrentPassword, NewPassword


class EmailRequest(StrictModel):
    email: str = Field(max_length=320, examples=["alice@example.com"])


class TokenConfirm(StrictModel):
    token: str = Field(min_length=1, max_length=512)


class PasswordReset(StrictModel):
    token: str = Field(min_length=1, max_length=512)
    new_password: NewPassword


class EmailChangeRequest(StrictModel):
    new_email: str = Field(max_length=320)
    current_password: CurrentPassword


class Accepted(BaseModel):
    """The same answer whether or not an account matched: nothing to enumerate."""

    status: str = "accepted"
    detail: str


class EmailChangeCancelled(BaseModel):
    status: str = "cancelled"
    pending_changes_cancelled: int
    detail: str
