"""What the client admin API and CLI accept and return. A secret appears in a response exactly once:
when it is created (`ClientCreated`, `SecretRotated`)."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool

from app.clients.models import ClientType, GrantType, SigningAlgorithm
from app.clients.redirect_uris import MAX_REDIRECT_URI_LENGTH, MAX_REDIRECT_URIS
from app.core.schemas import StrictModel

ClientName = Annotated[str, Field(min_length=1, max_length=200)]
RedirectUri = Annotated[str, Field(min_length=1, max_length=MAX_REDIRECT_URI_LENGTH)]
ScopeName = Annotated[str, Field(min_length=1, max_length=128)]
Audience = Annotated[str, Field(min_length=1, max_length=256)]
GrantTypeName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:/-]+$",  # a name, or an extension grant's absolute URI (RFC 6749 §4.5)
        description="A grant type the token endpoint serves (discovery's `grant_types_supported`).",
    ),
]
AccessTokenTtl = Annotated[int, Field(ge=60, le=86400)]
RefreshTokenTtl = Annotated[int, Field(ge=300, le=400 * 86400)]

REDIRECT_URIS_DOC = (
    "Matched exactly. Absolute `https` URIs, or `http` on a loopback host (127.0.0.1, [::1], localhost); "
    "no fragment, no user:password, no wildcard."
)
DEFAULT_GRANT_TYPES = (GrantType.AUTHORIZATION_CODE.value, GrantType.REFRESH_TOKEN.value)
MAX_GRANT_TYPES = 16
DEFAULT_SCOPES = ("openid",)


class ClientCreate(StrictModel):
    name: ClientName
    type: ClientType = Field(
        description="`confidential`: a server-side app that keeps a secret (one is generated and shown "
        "once); `public`: an app on the user's device or in a browser, without a secret."
    )
    redirect_uris: list[RedirectUri] = Field(
        default_factory=list, max_length=MAX_REDIRECT_URIS, description=REDIRECT_URIS_DOC
    )
    post_logout_redirect_uris: list[RedirectUri] = Field(
        default_factory=list, max_length=MAX_REDIRECT_URIS, description=REDIRECT_URIS_DOC
    )
    grant_types: list[GrantTypeName] = Field(
        default_factory=lambda: list(DEFAULT_GRANT_TYPES),
        max_length=MAX_GRANT_TYPES,
        description="Default `authorization_code` and `refresh_token`. `password` only when listed "
        "(RFC 9700 §2.4 says not to use it); `client_credentials` only for confidential clients.",
    )
    scopes: list[ScopeName] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES), max_length=50, description="Scopes it may ask for."
    )
    # Strict: JSON `true`/`false` only (lax pydantic would take 0, 1 or "yes", which the schema does not).
    first_party: StrictBool = Field(False, description="One of the service's own apps: no consent screen.")
    id_token_signed_response_alg: SigningAlgorithm = SigningAlgorithm.ES256
    access_token_audience: Audience | None = Field(
        None, description="`aud` of its access tokens; unset: JWT_AUDIENCE."
    )
    access_token_ttl_seconds: AccessTokenTtl | None = Field(
        None, description="Unset: ACCESS_TOKEN_TTL_SECONDS."
    )
    refresh_token_ttl_seconds: RefreshTokenTtl | None = Field(
        None, description="Unset: SESSION_ABSOLUTE_TTL_SECONDS."
    )


class ClientUpdate(StrictModel):
    """PATCH: only the fields sent change. The type cannot change (register a new client instead)."""

    name: ClientName | None = None
    redirect_uris: list[RedirectUri] | None = Field(None, max_length=MAX_REDIRECT_URIS)
    post_logout_redirect_uris: list[RedirectUri] | None = Field(None, max_length=MAX_REDIRECT_URIS)
    grant_types: list[GrantTypeName] | None = Field(None, max_length=MAX_GRANT_TYPES)
    scopes: list[ScopeName] | None = Field(None, max_length=50)
    first_party: StrictBool | None = None
    id_token_signed_response_alg: SigningAlgorithm | None = None
    access_token_audience: Audience | None = None
    access_token_ttl_seconds: AccessTokenTtl | None = None
    refresh_token_ttl_seconds: RefreshTokenTtl | None = None
    disabled: StrictBool | None = Field(
        None, description="A disabled client gets no token: its requests answer `invalid_client`."
    )


class SecretRead(BaseModel):
    """A live secret, without the secret: when it was created and until when it works (null: until the
    next rotation)."""

    created_at: datetime
    expires_at: datetime | None


class ClientRead(BaseModel):
    client_id: str
    name: str
    type: ClientType
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scopes: list[str]
    first_party: bool
    id_token_signed_response_alg: SigningAlgorithm
    access_token_audience: str | None
    access_token_ttl_seconds: int | None
    refresh_token_ttl_seconds: int | None
    disabled: bool
    built_in: bool = Field(description="The built-in client of token requests without client credentials.")
    token_endpoint_auth_methods: list[str] = Field(
        description="How it authenticates at the token endpoint: `client_secret_basic` and "
        "`client_secret_post` (confidential), or `none` (public)."
    )
    secrets: list[SecretRead] = Field(description="Its live secrets, oldest first: two during a rotation.")
    created_at: datetime
    updated_at: datetime


class ClientCreated(ClientRead):
    client_secret: str | None = Field(
        description="Confidential clients: the secret, shown this once and never again. Public: null."
    )


class ClientPage(BaseModel):
    items: list[ClientRead]
    total: int
    limit: int
    offset: int


class SecretRotated(BaseModel):
    client_id: str
    client_secret: str = Field(description="The new secret, shown this once and never again.")
    secrets: list[SecretRead] = Field(
        description="The live secrets: the previous one keeps working until its `expires_at`."
    )
