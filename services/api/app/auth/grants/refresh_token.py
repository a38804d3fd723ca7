"""The refresh token grant (RFC 6749 §6): rotate the token, keep the session and its `auth_time`."""

from app.auth import service
from app.auth.errors import InvalidGrant, RefreshTokenAlreadyUsed
from app.auth.grants.base import FormField, GrantHandler, TokenRequest
from app.auth.issuing import IssuedTokens


class RefreshTokenGrant(GrantHandler):
    grant_type = "refresh_token"
    title = "Refresh token grant"
    fields = (FormField("refresh_token", max_length=512),)
    errors = (InvalidGrant, RefreshTokenAlreadyUsed)

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        return await service.refresh(
            request.db,
            refresh_token=request.form["refresh_token"] or "",
            keyring=request.keyring,
            settings=request.settings,
            ctx=request.ctx,
        )
