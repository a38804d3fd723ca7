"""HTTP interface of authentication: registration, the RFC 6749 token endpoint, RFC 7009 revocation,
logout, and the user's sessions."""

import uuid
from ipaddress import ip_address
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request, Response, status

from app.account import service as account_service
from app.account.pending import end_pending_tokens
from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth import repository, service
from app.auth.dependencies import CurrentAuth
from app.auth.schemas import OAuthErrorBody, SessionRead, TokenResponse
from app.core.config import Settings
from app.core.database import SessionDep
from app.core.dependencies import ClientDep, ClockDep, HasherDep, KeyRingDep, SettingsDep
from app.core.errors import (
    GUARD_ERRORS,
    UNAVAILABLE,
    ErrorBody,
    OAuthError,
    PyauthError,
    error_responses,
)
from app.passwords.policy import NEW_PASSWORD_ERRORS, PasswordTooLong
from app.ratelimit.dependencies import RateLimit
from app.ratelimit.service import TokenEndpointRateLimited
from app.users import service as user_service
from app.users.emails import InvalidEmail
from app.users.schemas import UserCreate, UserRead

router = APIRouter(prefix="/auth", tags=["auth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The token and revocation endpoints answer in RFC 6749 §5.2's shape; only the request guard's refusal of
# a malformed body (400), and statuses no RFC shape covers (413, 415, 422, 503), use the common one.
OAUTH_ERRORS = {
    **error_responses(*GUARD_ERRORS, 422, UNAVAILABLE),
    **error_responses(400, model=OAuthErrorBody | ErrorBody, raises=(OAuthError,)),
    **error_responses(429, model=OAuthErrorBody),
}
FORM = "application/x-www-form-urlencoded"
# What the form fields' types cannot say (they stay optional so that a missing one gets RFC 6749's error
# rather than a validation error): which fields each grant requires. Added to the generated schema.
TOKEN_REQUEST_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "oneOf": [
                        {
                            "title": "Password grant",
                            "required": ["grant_type", "username", "password"],
                            "properties": {
                                "grant_type": {"const": "password"},
                                "username": {"type": "string", "minLength": 1},
                                "password": {"type": "string"},
                                "device_token": {
                                    "type": "string",
                                    "description": "The device token of an earlier successful login, "
                                    "for clients that do not keep the device cookie.",
                                },
                            },
                        },
                        {
                            "title": "Refresh token grant",
                            "required": ["grant_type", "refresh_token"],
                            "properties": {
                                "grant_type": {"const": "refresh_token"},
                                "refresh_token": {"type": "string", "minLength": 1},
                            },
                        },
                    ]
                }
            }
        },
    }
}
REVOKE_REQUEST_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {"required": ["token"], "properties": {"token": {"type": "string", "minLength": 1}}}
            }
        },
    }
}


# The device token of a successful login travels back as this cookie (scoped to the token endpoint, so no
# other request carries it) or, for clients without cookies, as the `device_token` form field.
DEVICE_COOKIE = "pyauth_device"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a path, not a secret


def set_device_cookie(response: Response, token: str, settings: Settings) -> None:
    base = urlsplit(settings.PUBLIC_BASE_URL)
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=settings.DEVICE_TOKEN_TTL_SECONDS,
        path=base.path.rstrip("/") + TOKEN_PATH,
        secure=not _is_plain_http_loopback(base.scheme, base.hostname),
        httponly=True,
        samesite="strict",
    )


def _is_plain_http_loopback(scheme: str, host: str | None) -> bool:
    """A browser keeps no Secure cookie from http://localhost in every version: there, and only there, the
    cookie goes without the Secure attribute."""
    if scheme != "http" or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"
    message = "grant_type must be 'password' or 'refresh_token'."


class SessionNotFound(PyauthError):
    status_code = 404
    code = "session_not_found"
    message = "No such session."


@router.post(
    "/register",
    dependencies=[RateLimit("register", "RATE_LIMIT_REGISTER")],
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=error_responses(
        *GUARD_ERRORS,
        422,
        429,
        UNAVAILABLE,
        raises=(user_service.EmailAlreadyRegistered, InvalidEmail, *NEW_PASSWORD_ERRORS),
    ),
)
async def register(
    body: UserCreate,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
    response: Response,
) -> UserRead:
    """Create an account and mail it a verification link."""
    now = clock.now()
    user = await user_service.register(
        db, email=body.email, password=body.password, hasher=hasher, settings=settings
    )
    await account_service.send_verification(db, user, settings=settings, now=now)
    await record(db, AuditEvent.USER_REGISTERED, now=now, user_id=user.id, client=client)
    response.headers.update(NO_STORE)
    return UserRead.model_validate(user)


@router.post(
    "/token",
    dependencies=[RateLimit("token", "RATE_LIMIT_TOKEN", TokenEndpointRateLimited)],
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses={
        **OAUTH_ERRORS,
        **error_responses(
            400,
            model=OAuthErrorBody | ErrorBody,
            raises=(OAuthError, service.InvalidGrant, UnsupportedGrantType),
        ),
        # A password far over the maximum is refused before any hashing.
        **error_responses(422, raises=(PasswordTooLong,)),
    },
    openapi_extra=TOKEN_REQUEST_DOC,
)
async def token(
    db: SessionDep,
    hasher: HasherDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
    request: Request,
    response: Response,
    grant_type: Annotated[str | None, Form(max_length=64)] = None,
    username: Annotated[str | None, Form(max_length=320)] = None,
    password: Annotated[str | None, Form(max_length=4096)] = None,
    refresh_token: Annotated[str | None, Form(max_length=512)] = None,
    scope: Annotated[str | None, Form(max_length=1024)] = None,
    client_id: Annotated[str | None, Form(max_length=256)] = None,
    device_token: Annotated[str | None, Form(max_length=512)] = None,
) -> TokenResponse:
    """OAuth 2.0 token endpoint (form-encoded): `grant_type=password` with `username` (the email) and
    `password`, or `grant_type=refresh_token` with `refresh_token`. Public clients: no client secret.

    A password login also answers a `device_token`, as a cookie and in the body: sent back with a later
    login (cookie or `device_token` field), it keeps that client's attempts apart from everyone else's
    failures. Keep the newest one: each successful login replaces it."""
    now = clock.now()
    if grant_type == "password":
        if not username or password is None:
            raise OAuthError("username and password are required for grant_type=password.")
        issued = await service.login_with_password(
            db,
            username=username,
            password=password,
            hasher=hasher,
            keyring=keyring,
            settings=settings,
            now=now,
            client=client,
            device_token=device_token or request.cookies.get(DEVICE_COOKIE),
        )
        if issued.device_token:
            set_device_cookie(response, issued.device_token, settings)
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise OAuthError("refresh_token is required for grant_type=refresh_token.")
        issued = await service.refresh(
            db, refresh_token=refresh_token, keyring=keyring, settings=settings, now=now, client=client
        )
    elif not grant_type:
        raise OAuthError("grant_type is required.")
    else:
        raise UnsupportedGrantType()
    response.headers.update(NO_STORE)
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        device_token=issued.device_token,
    )


@router.post(
    "/revoke",
    dependencies=[RateLimit("revoke", "RATE_LIMIT_REVOKE", TokenEndpointRateLimited)],
    response_class=Response,  # 200 without a body
    responses=OAUTH_ERRORS,
    openapi_extra=REVOKE_REQUEST_DOC,
)
async def revoke(
    db: SessionDep,
    clock: ClockDep,
    client: ClientDep,
    token: Annotated[str | None, Form(max_length=4096)] = None,
    token_type_hint: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    """RFC 7009: revoke a refresh token, which ends its session. Answers 200 for unknown tokens too."""
    if not token:
        raise OAuthError("token is required.")
    await service.revoke_refresh_token(db, token=token, now=clock.now(), client=client)
    return Response(status_code=200, headers=NO_STORE)


@router.post("/logout", status_code=204, responses=error_responses(*GUARD_ERRORS, 401, UNAVAILABLE))
async def logout(auth: CurrentAuth, db: SessionDep, clock: ClockDep, client: ClientDep) -> Response:
    """End the session of the access token used."""
    await service.end_sessions(
        db,
        user_id=auth.user.id,
        session_id=auth.session.id,
        now=clock.now(),
        client=client,
        reason="logout",
        event=AuditEvent.LOGOUT,
    )
    return Response(status_code=204)


@router.post("/logout-all", status_code=204, responses=error_responses(*GUARD_ERRORS, 401, UNAVAILABLE))
async def logout_all(auth: CurrentAuth, db: SessionDep, clock: ClockDep, client: ClientDep) -> Response:
    """End every session of the user, this one included, and every pending account token."""
    await end_pending_tokens(db, auth.user.id, now=clock.now())
    await service.end_sessions(
        db,
        user_id=auth.user.id,
        now=clock.now(),
        client=client,
        reason="logout_all",
        event=AuditEvent.LOGOUT_ALL,
    )
    return Response(status_code=204)


@router.get("/sessions", response_model=list[SessionRead], responses=error_responses(401, UNAVAILABLE))
async def list_sessions(
    auth: CurrentAuth, db: SessionDep, clock: ClockDep, settings: SettingsDep
) -> list[SessionRead]:
    now = clock.now()
    sessions = await repository.live_sessions(
        db, auth.user.id, now=now, idle_since=now - service.idle_ttl(settings)
    )
    return [
        SessionRead(
            id=s.id,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            user_agent=s.user_agent,
            ip_address=s.ip_address,
            current=s.id == auth.session.id,
        )
        for s in sessions
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(SessionNotFound,)),
)
async def revoke_session(
    session_id: uuid.UUID, auth: CurrentAuth, db: SessionDep, clock: ClockDep, client: ClientDep
) -> Response:
    ended = await service.end_sessions(
        db,
        user_id=auth.user.id,
        session_id=session_id,
        now=clock.now(),
        client=client,
        reason="revoked_by_user",
        event=AuditEvent.SESSION_REVOKED,
    )
    if not ended:
        raise SessionNotFound()
    return Response(status_code=204)
