"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the checks of a request to the
end-session endpoint, and which of the client's sessions end with the browser session (the endpoint ends
both, the browser session through `app.web.service.sign_out`, audited as `/signout` is).

The request names its client by the `id_token_hint`'s `aud` or by `client_id` (both: they must agree).
`post_logout_redirect_uri` must be one the client registered, compared exactly like the authorization
endpoint's redirect URIs: without a known client, or with any other URI, the answer is an error page and
no redirect (no open redirect, RFC 9700 §4.11). A forged or foreign hint is an error page too.

Ending the browser session also ends the sessions (refresh tokens) that the named client was issued
through it, as Keycloak ends the client sessions of the user session that signs out: the app asked to sign
the user out, so the tokens it holds from that sign-in must not outlive the request (a forgotten refresh
token would otherwise keep acting for a user who signed out). Other apps' tokens stay: they did not ask,
and pyauth has no back-channel logout to tell them theirs ended. An authorization code carries the
browser session's `auth_time` and names the session its exchange started, which is how those sessions
are found.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import service as clients
from app.clients.models import OAuthClient
from app.core.errors import PyauthError
from app.keys.keyring import KeyRing
from app.keys.tokens import MAX_TOKEN_LENGTH
from app.oidc import repository
from app.oidc.authorize import MAX_PARAMETER_LENGTH
from app.oidc.id_token import IdTokenHint, verified_hint
from app.users.models import User

SIGNED_OUT_PATH: Final = "/signed-out"
# What the endpoint reads (RP-Initiated Logout 1.0 §2); anything else is ignored.
PARAMETERS: Final = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id", "ui_locales")


class LogoutRefused(PyauthError):
    """A logout request that names no registered return address, or names it wrongly: an error page."""

    status_code = 400
    code = "invalid_request"
    # The page shows its generic error text (`app.web.pages.UNKNOWN_ERROR`, translated); this is the log's.
    message = "Unknown client, or a post_logout_redirect_uri it did not register."


@dataclass(frozen=True)
class LogoutRequest:
    client: OAuthClient | None
    redirect_uri: str | None  # registered by `client`, exactly
    state: str | None
    hint: IdTokenHint | None

    @property
    def target(self) -> str:
        """Where the browser goes once done: the registered URI with `state` added to its query
        (RP-Initiated Logout §3), or the signed-out page."""
        if self.redirect_uri is None:
            return SIGNED_OUT_PATH
        if self.state is None:
            return self.redirect_uri
        parts = urlsplit(self.redirect_uri)
        added = urlencode({"state": self.state})
        return urlunsplit(parts._replace(query=f"{parts.query}&{added}" if parts.query else added))

    def names(self, user: User) -> bool:
        """Whether the hint names `user`: the RP shows it knows whom it signs out."""
        return self.hint is not None and self.hint.subject == str(user.id)

    def form_fields(self) -> list[tuple[str, str]]:
        """What the confirmation page's form carries, to be checked again on its POST (not the hint)."""
        fields = {
            "client_id": self.client.client_id if self.client is not None else None,
            "post_logout_redirect_uri": self.redirect_uri,
            "state": self.state,
        }
        return [(name, value) for name, value in fields.items() if value is not None]


async def checked_request(
    db: AsyncSession, keyring: KeyRing, params: Mapping[str, str], *, issuer: str
) -> LogoutRequest:
    """The request's client, return address and hint, or `LogoutRefused` / `InvalidIdTokenHint`."""
    for name in PARAMETERS:
        limit = MAX_TOKEN_LENGTH if name == "id_token_hint" else MAX_PARAMETER_LENGTH
        if len(params.get(name) or "") > limit:
            raise LogoutRefused()
    token = params.get("id_token_hint") or None
    hint = await verified_hint(keyring, token, issuer=issuer) if token is not None else None
    client_id = params.get("client_id") or None
    if hint is not None and client_id is not None and client_id != hint.client_id:
        raise LogoutRefused()  # §2: the client_id must be the hint's audience
    named = hint.client_id if hint is not None else client_id
    client = await clients.find_enabled_client(db, named) if named is not None else None
    redirect_uri = params.get("post_logout_redirect_uri") or None
    if redirect_uri is not None and (client is None or redirect_uri not in client.post_logout_redirect_uris):
        raise LogoutRefused()  # exact string comparison: no prefix, no pattern, no other scheme
    # `state` only travels back to a redirect URI; without one it has nowhere to go.
    state = (params.get("state") or None) if redirect_uri is not None else None
    return LogoutRequest(client=client, redirect_uri=redirect_uri, state=state, hint=hint)


async def client_sessions_of_browser_session(
    db: AsyncSession, client: OAuthClient | None, browser_session_id: uuid.UUID
) -> list[uuid.UUID]:
    """The sessions the client was issued through one browser session (the codes it was given there),
    for the caller to end with the browser session."""
    if client is None:
        return []
    return await repository.sessions_from_browser_session(
        db, browser_session_id=browser_session_id, client_id=client.client_id
    )


def audit_details(client: OAuthClient | None, client_sessions_ended: int) -> dict[str, object]:
    """What the sign-out's audit event adds: it came through the end-session endpoint, for which client."""
    details: dict[str, object] = {"end_session_endpoint": True}
    if client is not None:
        details |= {"client_id": client.client_id, "client_sessions_ended": client_sessions_ended}
    return details
