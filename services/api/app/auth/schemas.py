"""Bodies of the token, revocation and session endpoints."""

import uuid
from datetime import datetime

import orjson
from pydantic import BaseModel, Field


class TokenResponse(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6749 token type, not a secret
    expires_in: int
    refresh_token: str | None = Field(None, description="Not for client_credentials (RFC 6749 §4.4.3).")
    scope: str | None = Field(None, description="The scopes granted, space-separated (RFC 6749 §5.1).")
    device_token: str | None = Field(
        None,
        description="Password grant only: send it back with later logins (`device_token` field) if you do "
        "not keep the device cookie; each successful login replaces it.",
    )
    id_token: str | None = Field(
        None,
        description="With the `openid` scope, from the authorization code grant and a refresh of its "
        "tokens: the OpenID Connect ID token.",
    )


_OPTIONAL_TOKEN_FIELDS = ("refresh_token", "scope", "device_token", "id_token")


def token_response_json(
    *,
    access_token: str,
    expires_in: int,
    refresh_token: str | None = None,
    scope: str | None = None,
    device_token: str | None = None,
    id_token: str | None = None,
) -> bytes:
    """`TokenResponse(...).model_dump_json(exclude_none=True)`, the same bytes (tests/auth/
    test_token_response.py), written by orjson without building and validating the model first."""
    body: dict[str, str | int] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }
    optional = (refresh_token, scope, device_token, id_token)
    for name, value in zip(_OPTIONAL_TOKEN_FIELDS, optional, strict=True):
        if value is not None:
            body[name] = value
    return orjson.dumps(body)


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2."""

    error: str
    error_description: str


class MfaRequiredBody(OAuthErrorBody):
    """403 `mfa_required`: the password was right; finish with the mfa grant."""

    mfa_token: str = Field(
        description="Single use, valid MFA_TOKEN_TTL_SECONDS, for this client only: the mfa grant's "
        "`mfa_token`."
    )
    methods: list[str] = Field(
        description="What can finish the login, each the name of the mfa grant's field: `otp`, "
        "`recovery_code`."
    )


class SessionRead(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip_address: str | None
    current: bool
