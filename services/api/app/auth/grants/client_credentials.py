"""The client credentials grant (RFC 6749 §4.4): a confidential client's own access token, for calls it
makes on its own behalf. `sub` is the client_id (RFC 9068 §2.2); no refresh token (§4.4.3: the client
asks again with its secret) and no session, so the token lives until its `exp`. Its scopes are the
client's own, never the OpenID user scopes. Each issue is audited."""

import logging

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.errors import InvalidScope
from app.auth.grants.base import GrantHandler, TokenRequest
from app.auth.issuing import IssuedTokens, audience_of, issue_access_token
from app.auth.scopes import USER_SCOPES, granted_scopes
from app.clients.models import ClientType

log = logging.getLogger("pyauth.auth")


class ClientCredentialsGrant(GrantHandler):
    grant_type = "client_credentials"
    title = "Client credentials grant"
    fields = ()
    client_types = frozenset({ClientType.CONFIDENTIAL})
    errors = (InvalidScope,)

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        oauth_client, ctx = request.oauth_client, request.ctx
        allowed = [name for name in oauth_client.scopes if name not in USER_SCOPES]
        scope = granted_scopes(request.form.get("scope"), allowed)
        access_token, expires_in = issue_access_token(
            request.keyring,
            request.settings,
            subject=oauth_client.client_id,
            session_id=None,
            now=ctx.now,
            client_id=oauth_client.client_id,
            scope=scope,
            audience=audience_of(oauth_client, request.settings),
            ttl_seconds=oauth_client.access_token_ttl_seconds,
        )
        await record(
            request.db,
            AuditEvent.CLIENT_TOKEN_ISSUED,
            ctx=ctx,
            details={"client_id": oauth_client.client_id, "scope": " ".join(scope)},
        )
        log.info("client token issued client=%s", oauth_client.client_id)
        return IssuedTokens(access_token, expires_in, refresh_token=None, session_id=None, scope=scope)
