"""Request and response bodies of `/users/me/mfa` and `/auth/mfa`."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TotpEnrolmentRead(BaseModel):
    secret: str = Field(description="The base32 secret, for typing into an authenticator app.")
    otpauth_uri: str = Field(description="The same as an `otpauth://totp/...` URI (for a QR code).")
    digits: int = 6
    period: int = 30
    algorithm: Literal["SHA1"] = "SHA1"


class TotpConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=6, max_length=16, description="A current code of the authenticator app.")


class RecoveryCodesRead(BaseModel):
    recovery_codes: list[str] = Field(
        description="Ten single-use codes, shown only now: each signs in once in place of the authenticator."
    )


class FactorRead(BaseModel):
    type: Literal["totp"] = Field(description="The kind of factor.")
    created_at: datetime = Field(description="When it was confirmed.")


class FactorsRead(BaseModel):
    factors: list[FactorRead] = Field(description="The active factors; no secrets.")
    recovery_codes_remaining: int
    methods: list[str] = Field(
        description="What a login of this account can complete its second step with (empty: the password "
        "alone signs in)."
    )


class WebAuthnOptionsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(min_length=1, max_length=128, description="From the mfa_required answer.")
