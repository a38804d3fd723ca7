"""Client authentication at the token endpoint (RFC 6749 §2.3; OAuth 2.1 §2.4), for every grant alike.

Three methods: `client_secret_basic` (HTTP Basic, the id and secret each form-urlencoded first,
RFC 6749 §2.3.1), `client_secret_post` (`client_id` and `client_secret` in the form), and `none` (a public
client sends its `client_id` only). A request that sends no client credentials at all is made for the
built-in first-party client (`pyauth`), as every request was before clients existed.

A failure is 401 `invalid_client`, with `WWW-Authenticate: Basic` when Basic was used (RFC 6749 §5.2), and
an audit row; a client that is not allowed the grant gets 400 `unauthorized_client`.
"""

import base64
import binascii
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn
from urllib.parse import unquote_plus

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.schemas import OAuthErrorBody
from app.clients import service as clients
from app.clients.models import BUILTIN_CLIENT_ID, MAX_CLIENT_ID_LENGTH, ClientType, OAuthClient
from app.core.context import RequestContext
from app.core.database import commit_before_refusing
from app.core.errors import OAuthError, error_responses

log = logging.getLogger("pyauth.auth")

MAX_CLIENT_SECRET_LENGTH = 256
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="pyauth", charset="UTF-8"'}


class InvalidClient(OAuthError):
    status_code = 401
    code = "invalid_client"
    message = "Client authentication failed."


class UnauthorizedClient(OAuthError):
    code = "unauthorized_client"
    message = "The client is not allowed to use this grant type."


class AuthMethod(StrEnum):
    """RFC 7591 §2 `token_endpoint_auth_method` values."""

    BASIC = "client_secret_basic"
    POST = "client_secret_post"
    NONE = "none"


# What discovery advertises: every method the token endpoint accepts.
AUTH_METHODS = [AuthMethod.BASIC.value, AuthMethod.POST.value, AuthMethod.NONE.value]


@dataclass(frozen=True)
class ClientCredentials:
    """What a token request says about its client. `client_id` None: no credentials at all."""

    method: AuthMethod
    client_id: str | None
    secret: str | None = None


def credentials_of(form: Any, authorization: str | None) -> ClientCredentials:
    """The client credentials of a token request: from the Basic header or the form, never both (RFC 6749
    §2.3: one method per request). Other Authorization schemes carry no client credentials."""
    # An empty value is an absent one: forms and Basic headers built from unset fields send "".
    form_id, form_secret = form.get("client_id") or None, form.get("client_secret") or None
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "basic":
        client_id, secret = _basic(value.strip())
        if client_id is None:
            # `Basic base64(":")`: what Swagger UI's Authorize sends with empty client fields.
            return ClientCredentials(AuthMethod.NONE, form_id)
        if form_secret is not None:
            raise OAuthError("Send the client's credentials one way: the Basic header or the form, not both.")
        if form_id is not None and form_id != client_id:
            raise OAuthError("client_id in the form is not the client of the Basic header.")
        return ClientCredentials(AuthMethod.BASIC, client_id, secret)
    if form_secret is not None:
        if not form_id:
            raise OAuthError("client_secret needs its client_id.")
        return ClientCredentials(AuthMethod.POST, form_id, form_secret)
    return ClientCredentials(AuthMethod.NONE, form_id or None)


def _basic(value: str) -> tuple[str | None, str | None]:
    """RFC 6749 §2.3.1: base64 of `urlencode(id):urlencode(secret)`. Empty parts are None; an empty id
    with a secret is malformed."""
    refused = InvalidClient("The Basic credentials are malformed.", headers=BASIC_CHALLENGE)
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise refused from None
    raw_id, colon, raw_secret = decoded.partition(":")
    client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    if not colon or (not client_id and secret):
        raise refused
    if len(client_id) > MAX_CLIENT_ID_LENGTH or len(secret) > MAX_CLIENT_SECRET_LENGTH:
        raise refused
    return client_id or None, secret or None


def client_read(form: Any, authorization: str | None) -> clients.EnabledClientRead | None:
    """The read of the client a token request names, to send ahead of its authentication (the token
    endpoint sends it with the rate limit's hit); None where the credentials are malformed, which
    `authenticate_client` refuses in its turn, or the id is too long to be a client's."""
    try:
        client_id = _looked_up_id(credentials_of(form, authorization))
    except OAuthError:
        return None
    return clients.EnabledClientRead(client_id) if client_id is not None else None


def _looked_up_id(credentials: ClientCredentials) -> str | None:
    """The id of the client the credentials name (none: the built-in client), None when it is too long to
    be any client's."""
    client_id = credentials.client_id or BUILTIN_CLIENT_ID
    return client_id if len(client_id) <= MAX_CLIENT_ID_LENGTH else None


async def authenticate_client(
    db: AsyncSession,
    credentials: ClientCredentials,
    *,
    ctx: RequestContext,
    read: clients.EnabledClientRead | None = None,
) -> OAuthClient:
    """The registered, enabled client that the credentials prove, or 401 `invalid_client`. The client's
    row is what `read` found where it was sent ahead for this client, else read now."""
    client_id = _looked_up_id(credentials)
    found = await clients.find_enabled_client(db, client_id, read) if client_id is not None else None
    if found is None:
        await _refuse(db, credentials, "unknown_client", ctx=ctx)
    if found.is_confidential:
        if credentials.secret is None:
            await _refuse(db, credentials, "secret_required", ctx=ctx)
        if not await clients.secret_is_valid(db, found, credentials.secret, now=ctx.now):
            await _refuse(db, credentials, "wrong_secret", ctx=ctx)
    elif credentials.secret is not None:
        # A public client has no secret: one sent means a misconfigured or impersonating caller.
        await _refuse(db, credentials, "public_client_sent_secret", ctx=ctx)
    return found


def check_grant_allowed(
    oauth_client: OAuthClient, grant_type: str, client_types: frozenset[ClientType]
) -> None:
    """400 `unauthorized_client` unless the client is allowed the grant and is of a type it serves."""
    if grant_type not in oauth_client.grant_types or ClientType(oauth_client.client_type) not in client_types:
        raise UnauthorizedClient(f"This client is not allowed grant_type={grant_type}.")


async def _refuse(
    db: AsyncSession, credentials: ClientCredentials, reason: str, *, ctx: RequestContext
) -> NoReturn:
    """Record the failure (committed: the error response rolls the request back) and refuse. The per-IP
    token limit (RATE_LIMIT_TOKEN) bounds the rows a flood of made-up clients can write."""
    await record(
        db,
        AuditEvent.CLIENT_AUTHENTICATION_FAILED,
        ctx=ctx,
        reason=reason,
        details={
            "client_id": (credentials.client_id or BUILTIN_CLIENT_ID)[:MAX_CLIENT_ID_LENGTH],
            "method": credentials.method.value,
        },
    )
    await commit_before_refusing(db)
    log.info("client authentication failed: %s method=%s", reason, credentials.method.value)
    headers = BASIC_CHALLENGE if credentials.method is AuthMethod.BASIC else None
    raise InvalidClient(headers=headers)


def token_endpoint_responses() -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries of client authentication's refusals: 401 `invalid_client` (with its Basic
    challenge) and 400 `unauthorized_client`."""
    responses = error_responses(raises=(InvalidClient,), model=OAuthErrorBody)
    responses[401]["description"] = "Client authentication failed (RFC 6749 §5.2)."
    responses[401]["headers"] = {
        "WWW-Authenticate": {
            "description": "`Basic` when the client authenticated with HTTP Basic.",
            "required": False,
            "schema": {"type": "string"},
        }
    }
    return responses
