"""`RecentAuth`: a signed-in user whose access token says they authenticated within MFA_REAUTH_SECONDS
(its `auth_time`, OIDC Core), as enrolling or removing a factor requires. A token without `auth_time`
counts as old."""

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import CurrentAuth, bearer
from app.auth.errors import ReauthenticationRequired
from app.auth.sessions import Authenticated
from app.core.dependencies import ClockDep, SettingsDep
from app.keys.dependencies import KeyRingDep
from app.keys.tokens import decode_access_token


async def recently_authenticated(
    auth: CurrentAuth,
    keyring: KeyRingDep,
    settings: SettingsDep,
    clock: ClockDep,
    token: Annotated[str | None, Depends(bearer)],
) -> Authenticated:
    # `CurrentAuth` verified this token already (its keys are picked up): decoding again reads its claims.
    now = clock.now()
    claims = decode_access_token(keyring, settings, token or "", now=now).claims
    auth_time = claims.get("auth_time")
    if (
        not isinstance(auth_time, int | float)
        or isinstance(auth_time, bool)
        or now.timestamp() - auth_time > settings.MFA_REAUTH_SECONDS
    ):
        raise ReauthenticationRequired()
    return auth


RecentAuth = Annotated[Authenticated, Depends(recently_authenticated)]
