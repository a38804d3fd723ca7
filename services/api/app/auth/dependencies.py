"""Who is calling: the Bearer access token, verified, and its session checked live in the database,
so that logout takes effect at once for pyauth's own endpoints; `CurrentAdmin` adds the admin role (and,
with MFA_REQUIRED_FOR_ADMINS, a second factor in the token's `amr`)."""

import uuid
from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from app.auth import repository
from app.auth.errors import AdminRequired, MfaRequiredForAdmins
from app.auth.sessions import Authenticated, session_is_live
from app.core.dependencies import ClockDep, SessionDep, SettingsDep
from app.keys.dependencies import KeyRingDep
from app.keys.tokens import InvalidAccessToken, verify_access_token

# Swagger UI's Authorize button posts email and password to this URL as an OAuth2 password grant.
bearer = OAuth2PasswordBearer(tokenUrl="auth/token", auto_error=False)


async def authenticated(
    db: SessionDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    clock: ClockDep,
    token: Annotated[str | None, Depends(bearer)],
) -> Authenticated:
    if not token:
        raise InvalidAccessToken("An access token is required.")
    now = clock.now()
    claims = await verify_access_token(keyring, settings, token, now=now)
    try:
        session_id = uuid.UUID(claims.sid)
    except ValueError:
        raise InvalidAccessToken() from None
    found = await repository.session_with_user(db, session_id)
    if (
        found is None
        or str(found.user.id) != claims.sub
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
