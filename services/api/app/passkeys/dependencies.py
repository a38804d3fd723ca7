"""`RecentAuth`: a signed-in user who authenticated within MFA_REAUTH_SECONDS, as enrolling or removing a
passkey requires: the one rule of `app.auth.recent_sign_in`, on the access token's session (its login is
the token's `auth_time`)."""

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import CurrentAuth
from app.auth.recent_sign_in import require_recent_sign_in
from app.auth.sessions import Authenticated
from app.core.dependencies import ClockDep, SettingsDep


async def recently_authenticated(auth: CurrentAuth, settings: SettingsDep, clock: ClockDep) -> Authenticated:
    require_recent_sign_in(auth.auth_time, settings=settings, now=clock.now())
    return auth


RecentAuth = Annotated[Authenticated, Depends(recently_authenticated)]
