"""Bodies of introspection (RFC 7662 §2.2) and UserInfo (OIDC Core §5.3.2)."""

from pydantic import BaseModel, Field


class IntrospectionResponse(BaseModel):
    """`active` alone when the token is not active (or not the caller's to see)."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    iss: str | None = None
    aud: str | list[str] | None = None
    jti: str | None = None
    token_type: str | None = Field(None, description="`Bearer` (an access token) or `refresh_token`.")


class UserInfoResponse(BaseModel):
    sub: str
    email: str | None = Field(None, description="With the `email` scope.")
    email_verified: bool | None = Field(None, description="With the `email` scope.")
    name: str | None = Field(None, description="With the `profile` scope, when the user set a display name.")
    locale: str | None = Field(None, description="With the `profile` scope.")
    updated_at: int | None = Field(None, description="With the `profile` scope (seconds since the epoch).")
