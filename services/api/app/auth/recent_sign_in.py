"""The one "recent sign-in" rule: a change to how an account signs in (enrolling or removing a TOTP
authenticator, new recovery codes, adding, renaming or removing a passkey) needs the user to have
authenticated at most MFA_REAUTH_SECONDS ago, so that a stolen long-lived session cannot change them.

What counts is the time of the last authentication (OpenID Connect Core `auth_time`): for the API, the
access token's session's (`Authenticated.auth_time`: a session begins at its login, and every token of it,
refreshed ones too, carries that time as `auth_time`); for the hosted pages, the browser session's
`auth_time`. A new sign-in, which replaces either, makes it recent again.
"""

from datetime import datetime, timedelta

from app.auth.errors import ReauthenticationRequired
from app.core.config import Settings


def is_recent(auth_time: datetime, *, settings: Settings, now: datetime) -> bool:
    return now - auth_time <= timedelta(seconds=settings.MFA_REAUTH_SECONDS)


def require_recent_sign_in(auth_time: datetime, *, settings: Settings, now: datetime) -> None:
    """403 `reauthentication_required` unless `auth_time` is at most MFA_REAUTH_SECONDS before `now`."""
    if not is_recent(auth_time, settings=settings, now=now):
        raise ReauthenticationRequired()
