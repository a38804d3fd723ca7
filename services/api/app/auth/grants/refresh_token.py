"""The refresh token grant (RFC 6749 §6): rotate the token, keep the session and its `auth_time`; only the
client the token was issued to may use it; `scope` may narrow the session's scopes, never widen them."""

from app.auth import service
from app.auth.errors import InvalidGrant, InvalidScope, RefreshTokenAlreadyUsed
from app.auth.grants.base import FormField, GrantHandler, TokenRequest
from app.auth.grants.client_binding import refuse_another_clients_token
from app.auth.issuing import IssuedTokens


class RefreshTokenGrant(GrantHandler):
    grant_type = "refresh_token"
    title = "Refresh token grant"
    fields = (FormField("refresh_token", max_length=512),)
    errors = (InvalidGrant, RefreshTokenAlreadyUsed, InvalidScope)

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        await refuse_another_clients_token(
            request.db,
            request.form["refresh_token"] or "",
            request.oauth_client,
            ctx=request.ctx,
        )
        return await service.refresh(
            request.db,
            refresh_token=request.form["refresh_token"] or "",
            keyring=request.keyring,
            settings=request.settings,
            ctx=request.ctx,
            oauth_client=request.oauth_client,
            scope=request.form.get("scope"),
        )
