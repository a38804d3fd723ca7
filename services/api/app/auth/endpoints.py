"""HTTP interface of authentication: registration, the RFC 6749 token endpoint, logout, and the user's
sessions. Revocation, introspection and UserInfo are `app.oauth`'s."""

import uuid

from fastapi import APIRouter, Request, Response, status

from app.account import registration
from app.account.pending import end_pending_tokens
from app.account.service import EmailAlreadyRegistered
from app.auth import repository
from app.auth.dependencies import CurrentAuth
from app.auth.device_cookie import set_device_cookie
from app.auth.errors import InvalidGrant, InvalidScope, UnsupportedGrantType
from app.auth.grants import client_auth
from app.auth.grants.base import TokenRequest
from app.auth.grants.client_auth import UnauthorizedClient, token_endpoint_responses
from app.auth.grants.refresh_token import rotation_ahead
from app.auth.grants.registry import GRANTS
from app.auth.login.second_factor import MfaRequired
from app.auth.schemas import MfaRequiredBody, OAuthErrorBody, SessionRead, TokenResponse, token_response_json
from app.auth.sessions import SessionEndReason, end_sessions, idle_ttl
from app.core.config import Settings
from app.core.database import request_session
from app.core.dependencies import (
    ClockDep,
    ContextDep,
    RequestLocale,
    SessionDep,
    SettingsDep,
    request_context,
)
from app.core.errors import (
    GUARD_ERRORS,
    UNAVAILABLE,
    ErrorBody,
    OAuthError,
    PyauthError,
    error_responses,
)
from app.keys.keyring import KeyRing
from app.passwords.dependencies import HasherDep
from app.passwords.policy import NEW_PASSWORD_ERRORS, PasswordTooLong
from app.ratelimit.dependencies import RateLimit, limit_request
from app.ratelimit.service import TokenEndpointRateLimited
from app.users.emails import InvalidEmail
from app.users.schemas import UserCreate, UserRead, user_json

router = APIRouter(prefix="/auth", tags=["auth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The token and revocation endpoints answer in RFC 6749 §5.2's shape; only the request guard's refusal of
# a malformed body (400), and statuses no RFC shape covers (413, 415, 422, 503), use the common one.
OAUTH_ERRORS = {
    **error_responses(*GUARD_ERRORS, 422, UNAVAILABLE),
    **error_responses(400, model=OAuthErrorBody | ErrorBody, raises=(OAuthError,)),
    **error_responses(429, model=OAuthErrorBody),
}


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
        raises=(EmailAlreadyRegistered, InvalidEmail, *NEW_PASSWORD_ERRORS),
    ),
)
async def register(
    body: UserCreate,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    ctx: ContextDep,
    locale: RequestLocale,
) -> Response:
    """Create an account and mail it a verification link. Its mails are in the language the
    Accept-Language header prefers among those pyauth has (English or German), English by default."""
    user = await registration.register(
        db, email=body.email, password=body.password, hasher=hasher, settings=settings, ctx=ctx, locale=locale
    )
    return Response(
        user_json(user), status_code=status.HTTP_201_CREATED, media_type="application/json", headers=NO_STORE
    )


@router.post(
    "/token",
    response_model=TokenResponse,
    responses={
        **OAUTH_ERRORS,
        **error_responses(
            400,
            model=OAuthErrorBody | ErrorBody,
            raises=(OAuthError, InvalidGrant, InvalidScope, UnsupportedGrantType, UnauthorizedClient),
        ),
        **token_endpoint_responses(),
        # An account with a second factor: the password grant answers an mfa_token, nothing else.
        **error_responses(403, model=MfaRequiredBody, raises=(MfaRequired,)),
        # A password far over the maximum is refused before any hashing.
        **error_responses(422, raises=(PasswordTooLong,)),
    },
    openapi_extra=GRANTS.request_body_doc(),
)
async def token(request: Request) -> Response:
    """OAuth 2.0 token endpoint (form-encoded). The request body's schema lists each grant type and its
    fields (the password grant's `username` is the email). Confidential clients authenticate with HTTP
    Basic (`client_secret_basic`) or `client_id` and `client_secret` in the form (`client_secret_post`);
    public clients send their `client_id` only; no client credentials at all: the built-in client.

    A password login also answers a `device_token`, as a cookie and in the body: sent back with a later
    login (cookie or `device_token` field), it keeps that client's attempts apart from everyone else's
    failures. Keep the newest one: each successful login replaces it.

    For an account with a second factor the password grant answers 403 `mfa_required` with an `mfa_token`
    and the `methods`; `grant_type=urn:pyauth:params:oauth:grant-type:mfa` with the `mfa_token` and `otp`
    or `recovery_code` finishes the login."""
    return await issue_tokens(request)


async def issue_tokens(request: Request) -> Response:
    """`POST /auth/token`, for the FastAPI route above and for the exact-route dispatch (`app.main`)
    alike: the per-client rate limit, the form, then the grant in one session committed before the answer.

    The limit is counted before anything else is decided: a form refused as malformed is counted before
    its refusal, and past the limit every request is answered 429. The hit's round trip also reads the
    client the form names (`client_auth.client_read`), which the grant then authenticates."""
    state = request.app.state
    settings: Settings = state.settings
    ctx = request_context(request, state.clock)
    authorization = request.headers.get("authorization")
    try:
        form = await GRANTS.read_form(request)
    except Exception:
        await limit_request(request, "token", "RATE_LIMIT_TOKEN", ctx, settings, TokenEndpointRateLimited)
        raise
    client_read = client_auth.client_read(form, authorization)
    # A refresh's rotation goes with the hit and the client's read: one round trip (`RotationAhead`).
    ahead = rotation_ahead(form, authorization, client_read, settings=settings, ctx=ctx)
    await limit_request(
        request, "token", "RATE_LIMIT_TOKEN", ctx, settings, TokenEndpointRateLimited, client_read, ahead
    )
    keyring: KeyRing = state.keyring
    async with request_session(request) as db:
        # A process that only issues tokens must still learn of a rotation before the new keys' turn
        # comes (KEY_PUBLICATION_LEAD_SECONDS); cheap between refreshes.
        await keyring.maybe_refresh()
        handler, oauth_client = await GRANTS.resolve(
            form, authorization, db=db, settings=settings, ctx=ctx, client_read=client_read
        )
        token_request = TokenRequest(
            form=form,
            cookies=request.cookies,
            db=db,
            hasher=state.hasher,
            keyring=keyring,
            settings=settings,
            ctx=ctx,
            oauth_client=oauth_client,
            rotation_ahead=ahead,
        )
        issued = await handler.issue(token_request)
    body = token_response_json(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        # Echoed when the request named a scope (RFC 6749 §5.1); the access token's `scope` claim always
        # says what was granted, so callers from before scopes get the body they always did.
        scope=" ".join(issued.scope) if form.get("scope") else None,
        device_token=issued.device_token,
        id_token=issued.id_token,
    )
    response = Response(body, media_type="application/json", headers=NO_STORE)
    if issued.device_token:
        set_device_cookie(response, issued.device_token, settings)
    return response


@router.post("/logout", status_code=204, responses=error_responses(*GUARD_ERRORS, 401, UNAVAILABLE))
async def logout(auth: CurrentAuth, db: SessionDep, ctx: ContextDep) -> Response:
    """End the session of the access token used."""
    await end_sessions(db, SessionEndReason.LOGOUT, user_id=auth.user.id, session_id=auth.session.id, ctx=ctx)
    return Response(status_code=204)


@router.post("/logout-all", status_code=204, responses=error_responses(*GUARD_ERRORS, 401, UNAVAILABLE))
async def logout_all(auth: CurrentAuth, db: SessionDep, ctx: ContextDep) -> Response:
    """End every session of the user, this one included, and every pending account token."""
    await end_pending_tokens(db, auth.user.id, now=ctx.now)
    await end_sessions(db, SessionEndReason.LOGOUT_ALL, user_id=auth.user.id, ctx=ctx)
    return Response(status_code=204)


@router.get("/sessions", response_model=list[SessionRead], responses=error_responses(401, UNAVAILABLE))
async def list_sessions(
    auth: CurrentAuth, db: SessionDep, clock: ClockDep, settings: SettingsDep
) -> list[SessionRead]:
    now = clock.now()
    sessions = await repository.live_sessions(db, auth.user.id, now=now, idle_since=now - idle_ttl(settings))
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
    session_id: uuid.UUID, auth: CurrentAuth, db: SessionDep, ctx: ContextDep
) -> Response:
    ended = await end_sessions(
        db, SessionEndReason.REVOKED_BY_USER, user_id=auth.user.id, session_id=session_id, ctx=ctx
    )
    if not ended:
        raise SessionNotFound()
    return Response(status_code=204)
