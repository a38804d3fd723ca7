"""Who is calling: the Bearer access token, verified, and its session checked live in the database,
so that logout takes effect at once for pyauth's own endpoints."""

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from app.auth import repository
from app.auth.models import AuthSession
from app.auth.sessions import session_is_live
from app.core.database import SessionDep
from app.core.dependencies import ClockDep, KeyRingDep, SettingsDep
from app.keys.tokens import InvalidAccessToken, verify_access_token
from app.users.models import User

# Swagger UI's Authorize button posts email and password to this URL as an OAuth2 password grant.
bearer = OAuth2PasswordBearer(tokenUrl="auth/token", auto_error=False)


@dataclass(frozen=True)
class Authenticated:
    user: User
    session: AuthSession


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
    return Authenticated(user=found.user, session=found.session)


CurrentAuth = Annotated[Authenticated, Depends(authenticated)]
