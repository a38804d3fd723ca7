"""The resource owner password credentials grant (RFC 6749 §4.3): the login pipeline, then a session.

The `username` is the account's email. A successful login also answers a device token (see
`app/auth/device_cookie.py`), which a later login presents to keep its attempts on its own counter."""

from app.auth import service
from app.auth.device_cookie import DEVICE_COOKIE
from app.auth.errors import EmailNotVerified, InvalidCredentials, InvalidScope
from app.auth.grants.base import FormField, GrantHandler, TokenRequest
from app.auth.issuing import IssuedTokens
from app.auth.login.second_factor import MfaRequired
from app.core.config import Settings
from app.passwords.hashing import HashQueueFull
from app.passwords.policy import PasswordTooLong
from app.ratelimit.service import LoginThrottled, PasswordResetRequired


class PasswordGrant(GrantHandler):
    grant_type = "password"
    title = "Password grant"
    fields = (
        FormField("username", max_length=320),
        FormField("password", max_length=4096, min_length=0),
        FormField(
            "device_token",
            max_length=512,
            required=False,
            min_length=0,
            description="The device token of an earlier successful login, for clients that do not keep "
            "the device cookie.",
        ),
    )
    errors = (
        InvalidScope,
        InvalidCredentials,
        EmailNotVerified,
        PasswordResetRequired,
        LoginThrottled,
        PasswordTooLong,
        HashQueueFull,
        MfaRequired,
    )

    def enabled(self, settings: Settings) -> bool:
        return settings.password_grant_enabled

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        form = request.form
        return await service.login_with_password(
            request.db,
            username=form["username"] or "",
            password=form["password"] or "",
            hasher=request.hasher,
            keyring=request.keyring,
            settings=request.settings,
            ctx=request.ctx,
            device_token=form["device_token"] or request.cookies.get(DEVICE_COOKIE),
            oauth_client=request.oauth_client,
            scope=form.get("scope"),
        )
