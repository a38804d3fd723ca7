"""The authorization code grant (RFC 6749 §4.1.3, OAuth 2.1) with PKCE (RFC 7636), and the ID token of
OpenID Connect Core §3.1.3 when the request asked for `openid`.

The code is claimed (marked used) before anything else is checked, so one code yields at most one set of
tokens; a refusal rolls the claim back with the rest of the request, so a code that failed a check (another
client, another redirect URI, a wrong verifier) stays as it was for its own client, until it expires. A code
that comes back after a successful exchange ends the session that exchange started (RFC 6749 §4.1.2): its
refresh token and its access tokens stop working, and the replay is audited.
"""

import dataclasses
import logging

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.errors import InvalidGrant
from app.auth.grants.base import FormField, GrantHandler, TokenRequest
from app.auth.issuing import IssuedTokens, issue_tokens
from app.auth.sessions import Authentication, SessionEndReason, end_sessions, start_session
from app.core.database import commit_before_refusing
from app.core.opaque_tokens import new_token
from app.oidc import codes
from app.oidc.id_token import issue_id_token
from app.users import repository as user_repository

log = logging.getLogger("pyauth.auth")


class AuthorizationCodeGrant(GrantHandler):
    grant_type = "authorization_code"
    title = "Authorization code grant (PKCE S256)"
    fields = (
        FormField("code", max_length=512),
        FormField("redirect_uri", max_length=2048, description="The authorization request's, exactly."),
        FormField("code_verifier", max_length=128, description="RFC 7636: the PKCE verifier (43-128)."),
    )
    errors = (InvalidGrant,)

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        form, db, ctx = request.form, request.db, request.ctx
        code_value = form["code"] or ""
        code = await codes.claim(db, code_value, ctx.now)
        if code is None:
            await self._refuse_replay(request, code_value)
            raise InvalidGrant()
        if (
            code.client_id != request.oauth_client.client_id
            or code.redirect_uri != form["redirect_uri"]
            or code.expires_at <= ctx.now
            or not codes.verifier_matches(form["code_verifier"] or "", code.code_challenge)
        ):
            raise InvalidGrant()
        user = await user_repository.get_by_id(db, code.user_id)
        if user is None or not user.is_active:
            raise InvalidGrant()
        authentication = Authentication(user=user, amr=tuple(code.amr), auth_time=code.auth_time)
        # The session began at the sign-in (`auth_time`), but it is used now: its idle clock starts here.
        refresh_token, refresh_token_hash = new_token()
        session_id = await start_session(
            db,
            authentication,
            settings=request.settings,
            ctx=ctx,
            refresh_token_hash=refresh_token_hash,
            oauth_client_id=code.client_id,
            scopes=code.scopes,
            absolute_ttl_seconds=request.oauth_client.refresh_token_ttl_seconds,
        )
        await codes.bind_session(db, code, session_id)
        issued = issue_tokens(
            refresh_token,
            session_id,
            authentication,
            keyring=request.keyring,
            settings=request.settings,
            now=ctx.now,
            oauth_client=request.oauth_client,
            scope=code.scopes,
        )
        if "openid" not in code.scopes:
            return issued
        id_token = issue_id_token(
            request.keyring,
            algorithm=request.oauth_client.id_token_signed_response_alg,
            issuer=request.settings.issuer,
            client_id=code.client_id,
            user=user,
            now=ctx.now,
            auth_time=code.auth_time,
            amr=code.amr,
            nonce=code.nonce,
            access_token=issued.access_token,
            scopes=code.scopes,
        )
        return dataclasses.replace(issued, id_token=id_token)

    async def _refuse_replay(self, request: TokenRequest, code_value: str) -> None:
        """A spent code presented again: end the session its first exchange started, record the replay
        (`authorization_code.reuse_detected`, with the client ids, never the code), and keep both
        although the refusal rolls the request back. Every replay is recorded, also one into a session
        already ended (by an earlier replay, a logout): someone still holds a spent code. Each costs one
        request of the per-IP token limit, which bounds the rows a flood of replays can write."""
        replayed = await codes.spent(request.db, code_value)
        if replayed is None:
            return
        ended = 0
        if replayed.session_id is not None:
            ended = await end_sessions(
                request.db,
                SessionEndReason.AUTHORIZATION_CODE_REUSE,
                user_id=replayed.user_id,
                session_id=replayed.session_id,
                ctx=request.ctx,
            )
        details: dict[str, object] = {"client_id": replayed.client_id, "ended": ended}
        if request.oauth_client.client_id != replayed.client_id:
            details["presented_by"] = request.oauth_client.client_id
        await record(
            request.db,
            AuditEvent.AUTHORIZATION_CODE_REUSE_DETECTED,
            ctx=request.ctx,
            user_id=replayed.user_id,
            session_id=replayed.session_id,
            details=details,
        )
        await commit_before_refusing(request.db)
        log.warning(
            "authorization code replayed: client=%s session=%s ended=%s",
            replayed.client_id,
            replayed.session_id,
            ended,
        )
