"""HTTP interface of introspection (`POST /oauth2/introspect`), revocation (`POST /oauth2/revoke`, and
`/auth/revoke` where it always was) and UserInfo (`GET/POST /oauth2/userinfo`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse

from app.auth.dependencies import bearer_token
from app.auth.endpoints import NO_STORE, OAUTH_ERRORS
from app.auth.grants.client_auth import token_endpoint_responses
from app.auth.grants.registry import FORM, GRANTS
from app.auth.schemas import OAuthErrorBody
from app.core.config import Settings
from app.core.dependencies import ContextDep, SessionDep, SettingsDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, OAuthError, error_responses
from app.core.parameters import refuse_repeated
from app.keys.dependencies import KeyRingDep
from app.keys.tokens import InvalidAccessToken, MissingAccessToken
from app.oauth import service
from app.oauth.discovery import server_metadata
from app.oauth.schemas import IntrospectionResponse, UserInfoResponse
from app.ratelimit.dependencies import RateLimit
from app.ratelimit.service import TokenEndpointRateLimited

router = APIRouter()
# Tagged `keys`, as when the key ring's package served them: their operationIds stay the same.
discovery_router = APIRouter(tags=["keys"])
# Discovery changes with a deployment, not with a rotation: five minutes of caching, as before.
CACHE_CONTROL = {"Cache-Control": "public, max-age=300"}

# The token and client fields these endpoints read; the client authenticates as at the token endpoint.
Token = Annotated[str | None, Form(max_length=8192)]
TokenTypeHint = Annotated[str | None, Form(max_length=64)]
ClientId = Annotated[str | None, Form(max_length=256)]
ClientSecret = Annotated[str | None, Form(max_length=256)]


def _token_request_doc(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    properties = {
        "token": {"type": "string", "minLength": 1},
        # RFC 7009 §2.1 / RFC 7662 §2.1: a hint; `access_token` or `refresh_token`, any other value is
        # ignored (the token's form tells the kinds apart), so the schema names them without an enum.
        "token_type_hint": {
            "type": "string",
            "maxLength": 64,
            "description": "`access_token` or `refresh_token`; another value is ignored.",
        },
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
        **(extra or {}),
    }
    return {
        "requestBody": {
            "required": True,
            "content": {FORM: {"schema": {"required": ["token"], "properties": properties}}},
        }
    }


def _required_token(token: str | None) -> str:
    if not token:
        raise OAuthError("token is required.")
    return token


@router.post(
    "/oauth2/introspect",
    tags=["oauth"],
    dependencies=[RateLimit("introspect", "RATE_LIMIT_INTROSPECT", TokenEndpointRateLimited)],
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    responses={**OAUTH_ERRORS, **token_endpoint_responses()},
    openapi_extra=_token_request_doc(),
)
async def introspect(
    db: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
    token: Token = None,
    token_type_hint: TokenTypeHint = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> dict[str, Any]:
    """RFC 7662 token introspection, for confidential clients (HTTP Basic or `client_secret_post`). An
    access or refresh token is `active` with its metadata only if it is valid, unexpired, its session
    live, and the caller may see it: it was issued to the caller, or its `aud` is the caller's registered
    `access_token_audience`. Anything else answers `{"active": false}`."""
    refuse_repeated((await request.form()).multi_items())  # the form FastAPI parsed, kept
    form = {"client_id": client_id, "client_secret": client_secret}
    caller = await service.authenticate_confidential_client(
        db, form, request.headers.get("authorization"), ctx=ctx
    )
    answer = await service.introspect(
        db,
        caller=caller,
        token=_required_token(token),
        token_type_hint=token_type_hint,
        keyring=keyring,
        settings=settings,
        ctx=ctx,
    )
    response.headers.update(NO_STORE)
    return dict(answer)


REVOKE: dict[str, Any] = {
    "dependencies": [RateLimit("revoke", "RATE_LIMIT_REVOKE", TokenEndpointRateLimited)],
    "response_class": Response,  # 200 without a body
    "responses": {**OAUTH_ERRORS, **token_endpoint_responses()},
    "openapi_extra": _token_request_doc(),
}


async def _revoke(
    db: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    ctx: ContextDep,
    request: Request,
    token: Token,
    client_id: ClientId,
    client_secret: ClientSecret,
) -> Response:
    refuse_repeated((await request.form()).multi_items())  # the form FastAPI parsed, kept
    form = {"client_id": client_id, "client_secret": client_secret}
    caller = await service.authenticate_revoking_client(
        db, form, request.headers.get("authorization"), ctx=ctx
    )
    await service.revoke(
        db, caller=caller, token=_required_token(token), keyring=keyring, settings=settings, ctx=ctx
    )
    return Response(status_code=200, headers=NO_STORE)


@router.post("/oauth2/revoke", tags=["oauth"], **REVOKE)
async def revoke(
    db: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    ctx: ContextDep,
    request: Request,
    token: Token = None,
    token_type_hint: TokenTypeHint = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> Response:
    """RFC 7009 revocation of one of the client's refresh or access tokens, which ends its session. The
    client authenticates as at the token endpoint (no credentials: the built-in client). Answers 200 for
    an unknown, expired or another client's token too, and changes nothing then (§2.2)."""
    return await _revoke(db, keyring, settings, ctx, request, token, client_id, client_secret)


# Named `revoke` as before, so its operationId stays `auth_revoke`.
@router.post("/auth/revoke", tags=["auth"], name="revoke", **REVOKE)
async def auth_revoke(
    db: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    ctx: ContextDep,
    request: Request,
    token: Token = None,
    token_type_hint: TokenTypeHint = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> Response:
    """The revocation endpoint at its first path: the same as `POST /oauth2/revoke`."""
    return await _revoke(db, keyring, settings, ctx, request, token, client_id, client_secret)


USERINFO_ERRORS = {
    **error_responses(*GUARD_ERRORS, 422, UNAVAILABLE),
    **error_responses(400, model=OAuthErrorBody, raises=(OAuthError,)),
    **error_responses(raises=(InvalidAccessToken, service.InsufficientScope)),
}


async def _userinfo(
    db: SessionDep, keyring: KeyRingDep, settings: SettingsDep, ctx: ContextDep, token: str | None
) -> dict[str, Any]:
    if not token:
        raise MissingAccessToken()
    return dict(await service.userinfo(db, token=token, keyring=keyring, settings=settings, ctx=ctx))


@router.get(
    "/oauth2/userinfo",
    tags=["oauth"],
    response_model=UserInfoResponse,
    response_model_exclude_none=True,
    responses=USERINFO_ERRORS,
)
async def userinfo_get(
    db: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """OpenID Connect UserInfo: `sub` and the claims the access token's scopes grant (`email`:
    `email`, `email_verified`; `profile`: `name`, `locale`, `updated_at`). The token goes in the
    `Authorization: Bearer` header; it needs the `openid` scope."""
    response.headers.update(NO_STORE)
    return await _userinfo(db, keyring, settings, ctx, bearer_token(request))


@router.post(
    "/oauth2/userinfo",
    tags=["oauth"],
    response_model=UserInfoResponse,
    response_model_exclude_none=True,
    responses=USERINFO_ERRORS,
)
async def userinfo_post(
    db: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    ctx: ContextDep,
    request: Request,
    response: Response,
    access_token: Token = None,
) -> dict[str, Any]:
    """UserInfo by POST: the token in the `Authorization: Bearer` header, or as `access_token` in a
    form body (RFC 6750 §2.2), never both (§2)."""
    header = bearer_token(request)
    if header and access_token:
        raise OAuthError("Send the access token one way: the Authorization header or the form body.")
    response.headers.update(NO_STORE)
    return await _userinfo(db, keyring, settings, ctx, header or access_token)


@discovery_router.get(
    "/.well-known/openid-configuration", summary="OpenID Provider metadata (OIDC Discovery)"
)
async def openid_configuration(keyring: KeyRingDep, settings: SettingsDep) -> JSONResponse:
    await keyring.maybe_refresh()
    return JSONResponse(_metadata(settings, keyring.id_token_algorithms()), headers=CACHE_CONTROL)


@discovery_router.get(
    "/.well-known/oauth-authorization-server", summary="Authorization server metadata (RFC 8414)"
)
async def oauth_authorization_server(keyring: KeyRingDep, settings: SettingsDep) -> JSONResponse:
    """The same document as `/.well-known/openid-configuration`."""
    await keyring.maybe_refresh()
    return JSONResponse(_metadata(settings, keyring.id_token_algorithms()), headers=CACHE_CONTROL)


def _metadata(settings: Settings, id_token_algorithms: list[str]) -> dict[str, Any]:
    return server_metadata(settings, id_token_algorithms, GRANTS.served_grant_types(settings))
