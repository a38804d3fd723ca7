"""The refresh token grant (RFC 6749 §6): rotate the token, keep the session and its `auth_time`; only the
client the token was issued to may use it; `scope` may narrow the session's scopes, never widen them.

When the new access token carries `openid`, the answer also holds a new ID token (OpenID Connect Core
§12.2, which allows either): a client that keeps the user's claims from the ID token sees them current
after a refresh. It is about the same user, for the same client, with the original `auth_time`
(`app.oidc.id_token`)."""

import dataclasses

from app.auth import service
from app.auth.errors import InvalidGrant, InvalidScope, RefreshTokenAlreadyUsed
from app.auth.grants import client_auth
from app.auth.grants.base import FormField, GrantHandler, TokenForm, TokenRequest
from app.auth.issuing import IssuedTokens
from app.auth.sessions import session_authentication
from app.clients.service import EnabledClientRead
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import OAuthError
from app.oidc.id_token import issue_id_token


class RefreshTokenGrant(GrantHandler):
    grant_type = "refresh_token"
    title = "Refresh token grant"
    fields = (FormField("refresh_token", max_length=512),)
    errors = (InvalidGrant, RefreshTokenAlreadyUsed, InvalidScope)

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        refreshed = await service.refresh(
            request.db,
            refresh_token=request.form["refresh_token"] or "",
            keyring=request.keyring,
            settings=request.settings,
            ctx=request.ctx,
            oauth_client=request.oauth_client,
            scope=request.form.get("scope"),
            ahead=request.rotation_ahead,
        )
        issued, found = refreshed.tokens, refreshed.found
        algorithm = request.oauth_client.id_token_signed_response_alg
        # §12.2 makes the refreshed ID token optional: none when the ring cannot sign the client's algorithm
        # (a server on EdDSA access tokens holds no ES256 key), rather than failing the refresh.
        if "openid" not in issued.scope or algorithm not in request.keyring.id_token_algorithms():
            return issued
        authentication = session_authentication(found.session, found.user)
        id_token = issue_id_token(
            request.keyring,
            algorithm=algorithm,
            issuer=request.settings.issuer,
            client_id=found.session.client_id,
            user=found.user,
            now=request.ctx.now,
            auth_time=authentication.auth_time,
            amr=authentication.amr,
            nonce=None,
            access_token=issued.access_token,
            scopes=issued.scope,
        )
        return dataclasses.replace(issued, id_token=id_token)


def rotation_ahead(
    form: TokenForm,
    authorization: str | None,
    client_read: EnabledClientRead | None,
    *,
    settings: Settings,
    ctx: RequestContext,
) -> service.RotationAhead | None:
    """The rotation the token endpoint sends with its rate-limit hit (`service.RotationAhead`): for a
    refresh_token grant that names its token, where the limit is counted and the client sends no secret
    (a public client, the built-in one). None for any other request, which goes the usual way."""
    if not settings.RATE_LIMITS_ENABLED or client_read is None:
        return None
    refresh_token = form.get("refresh_token")
    if form.get("grant_type") != RefreshTokenGrant.grant_type or not refresh_token:
        return None
    try:
        secret = client_auth.credentials_of(form, authorization).secret
    except OAuthError:
        return None
    if secret is not None:
        return None
    return service.RotationAhead(refresh_token, client_read, settings=settings, ctx=ctx)
