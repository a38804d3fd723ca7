"""Who is calling: the Bearer access token, verified, and its session checked live in the database,
so that logout takes effect at once for pyauth's own endpoints; `CurrentAdmin` adds the admin role (and,
with MFA_REQUIRED_FOR_ADMINS, a second factor in the token's `amr`). `caller_profile` is the same check
for `GET /users/me` in one statement, without loading the session and user as objects."""

import uuid
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.auth import repository
from app.auth.errors import AdminRequired, MfaRequiredForAdmins
from app.auth.sessions import Authenticated, idle_ttl, session_is_live
from app.core.config import Settings
from app.core.database import driver_connection
from app.core.dependencies import ClockDep, SessionDep, SettingsDep
from app.core.requests import first_header
from app.keys.dependencies import KeyRingDep
from app.keys.keyring import KeyRing
from app.keys.tokens import AccessClaims, InvalidAccessToken, MissingAccessToken, verify_access_token

# Swagger UI's Authorize button posts email and password to this URL as an OAuth2 password grant.
bearer = OAuth2PasswordBearer(tokenUrl="auth/token", auto_error=False)


def bearer_token(request: Request) -> str | None:
    """What `bearer` answers, read straight from the scope's headers (building the request's `Headers` to
    ask for one was ~5 µs): the first Authorization header's credentials when its scheme is Bearer, in any
    case; None without one or for another scheme. For `caller_profile` and UserInfo."""
    authorization = first_header(request.scope, b"authorization")
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


async def authenticated(
    db: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    clock: ClockDep,
    token: Annotated[str | None, Depends(bearer)],
) -> Authenticated:
    now = clock.now()
    claims, session_id = await _verified(keyring, settings, token, now=now)
    found = await repository.session_with_user(db, session_id)
    if (
        found is None
        or found.user.id != claims.subject_id  # None unless `sub` is a user id in its canonical form
        or not session_is_live(found.session, found.user, now=now, settings=settings)
    ):
        raise InvalidAccessToken()
    amr = claims.claims.get("amr")
    return Authenticated(
        user=found.user,
        session=found.session,
        amr=tuple(str(value) for value in amr) if isinstance(amr, list) else (),
    )


CurrentAuth = Annotated[Authenticated, Depends(authenticated)]


async def _verified(
    keyring: KeyRing, settings: Settings, token: str | None, *, now: datetime
) -> tuple[AccessClaims, uuid.UUID]:
    """The token's verified claims and its session id; `InvalidAccessToken` (401) otherwise."""
    if not token:
        raise MissingAccessToken()
    claims = await verify_access_token(keyring, settings, token, now=now)
    if claims.session_id is None:
        raise InvalidAccessToken()
    return claims, claims.session_id


async def caller_profile(request: Request) -> asyncpg.Record:
    """The caller's user columns (never the password hash), for `GET /users/me`: the same checks as
    `authenticated` (the token, then its session live and of the token's user, the user active), with the
    session checked in the one statement that reads the user (`repository.user_of_live_session`), sent
    straight to the driver. `InvalidAccessToken` (401) if any check fails."""
    state = request.app.state
    settings: Settings = state.settings
    now = state.clock.now()
    claims, session_id = await _verified(state.keyring, settings, bearer_token(request), now=now)
    user_id = claims.subject_id  # as `authenticated`: a user id in its canonical form only
    if user_id is None:
        raise InvalidAccessToken()
    async with driver_connection(state.sessionmaker) as connection:
        row = await repository.user_of_live_session(
            connection, session_id=session_id, user_id=user_id, now=now, idle_since=now - idle_ttl(settings)
        )
    if row is None:
        raise InvalidAccessToken()
    return row


async def current_admin(auth: CurrentAuth, settings: SettingsDep) -> Authenticated:
    """401 for a missing or invalid token (from `CurrentAuth`), 403 for a valid one without the role, and
    with MFA_REQUIRED_FOR_ADMINS 403 `mfa_required_for_admins` for one whose `amr` lacks `mfa` (its login
    used no second factor). An admin without a factor can still enrol one: `/users/me/mfa` and
    `/users/me/passkeys` are not admin routes.

    The role is read from the user row loaded for this request, not from the token's `roles` claim, so
    removing someone's admin role takes effect at once on pyauth's own endpoints. It lives here, not in
    `admin`, because `audit` guards its admin routes with it and must not import `admin` (which uses `audit`).
    """
    if not auth.user.is_admin:
        raise AdminRequired()
    if settings.mfa_required_for_admins and "mfa" not in auth.amr:
        raise MfaRequiredForAdmins()
    return auth


CurrentAdmin = Annotated[Authenticated, Depends(current_admin)]
