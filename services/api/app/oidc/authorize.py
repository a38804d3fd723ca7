"""The checks of an authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1, OAuth 2.1 with
PKCE), in the order the answers depend on them.

First the client and its redirect URI: until both are known good, nothing may be sent to the redirect URI,
so those refusals are an error page (`AuthorizeRefused`, RFC 9700 §4.1). `redirect_uri` is always
required (OpenID Connect Core §3.1.2.1 makes it REQUIRED; OAuth 2.1 would let a client with one URI leave it
out, and the conformance suite's `oidcc-ensure-redirect-uri-in-authorization-request` expects a refusal)
and compared exactly with the registered ones. After that, refusals go back to the client as an RFC 6749
§4.1.2.1 error redirect (`AuthorizeError`). Parameters pyauth does not know are ignored (§3.1.2.1); the
ones it knows and does not support are refused, not ignored (`UNSUPPORTED_PARAMETERS`, `response_mode`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from app.clients import service as clients
from app.clients.models import GrantType, OAuthClient
from app.core.errors import PyauthError
from app.core.parameters import repeated_parameter_message
from app.oidc.acr import ACR_MFA, ACR_VALUES
from app.oidc.codes import S256_CHALLENGE

# The `prompt` values served, in the order discovery lists them (`app.oidc.discovery`).
PROMPTS: Final = ("none", "login", "consent", "select_account")
# The prompts that send a signed-in browser to the sign-in page again. pyauth keeps one account per browser
# and has no account chooser, so `select_account` (OpenID Connect Core §3.1.2.1: the OP SHOULD prompt the
# user to select an account) is a sign-in, as whichever account the user picks.
SIGN_IN_PROMPTS: Final = frozenset({"login", "select_account"})
MAX_PARAMETER_LENGTH: Final = 2048
MAX_NONCE_LENGTH: Final = 512
# OpenID Connect Core §6 makes request objects optional for an OP, and §3.1.2.6 gives the errors of one
# that does not take them; the discovery document says so (`app.oidc.discovery`). Ignoring one instead
# would act on the query's copies of what the object may say otherwise (its state, nonce, max_age).
UNSUPPORTED_PARAMETERS: Final = (
    ("request", "request_not_supported", "Request objects (the request parameter) are not supported."),
    ("request_uri", "request_uri_not_supported", "request_uri is not supported."),
    ("registration", "registration_not_supported", "The registration parameter is not supported."),
)
# The one response mode (the code flow's default): a client that asks for its answer in a fragment or a
# form post is told so, rather than handed the code in a query it did not expect.
RESPONSE_MODE: Final = "query"


class AuthorizeRefused(PyauthError):
    """The client or its redirect URI is not known good: shown as an error page, never redirected."""

    status_code = 400
    code = "invalid_request"
    # The page shows its generic error text (`app.web.pages.UNKNOWN_ERROR`, translated); this is the log's.
    message = "Unknown client, or a redirect_uri it did not register."


@dataclass(frozen=True)
class AuthorizeError(Exception):
    """An RFC 6749 §4.1.2.1 error, sent to the (checked) redirect URI."""

    error: str
    description: str


@dataclass(frozen=True)
class AuthorizationRequest:
    client: OAuthClient
    redirect_uri: str
    state: str | None
    scopes: tuple[str, ...]
    code_challenge: str
    nonce: str | None
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None
    # `acr_values` (OpenID Connect Core §3.1.2.1) in order of preference; unknown values are kept and ignored.
    acr_values: tuple[str, ...] = ()

    @property
    def wants_id_token(self) -> bool:
        return "openid" in self.scopes

    @property
    def wants_mfa(self) -> bool:
        """`acr_values` prefers `urn:pyauth:acr:mfa` to the password alone: listed, and before
        `urn:pyauth:acr:pwd` if both are (a voluntary request, §5.5.1.1: the client checks the `acr`)."""
        known = [value for value in self.acr_values if value in ACR_VALUES]
        return bool(known) and known[0] == ACR_MFA


async def checked_client(db: AsyncSession, params: Mapping[str, str]) -> tuple[OAuthClient, str]:
    """The enabled client that may use the code flow and the redirect URI it registered, or
    `AuthorizeRefused`."""
    client_id = params.get("client_id") or ""
    redirect_uri = params.get("redirect_uri") or ""
    if not client_id or len(client_id) > 256 or not redirect_uri:
        raise AuthorizeRefused()
    client = await clients.find_enabled_client(db, client_id)
    if client is None or GrantType.AUTHORIZATION_CODE not in client.grant_types:
        raise AuthorizeRefused()
    if redirect_uri not in client.redirect_uris:  # exact string comparison (RFC 9700 §4.1.3)
        raise AuthorizeRefused()
    return client, redirect_uri


def _refuse_unsupported(params: Mapping[str, str]) -> None:
    """`AuthorizeError` for a parameter pyauth knows and does not support. RFC 6749 §3.1: one sent without
    a value is as if omitted."""
    for name, error, description in UNSUPPORTED_PARAMETERS:
        if params.get(name):
            raise AuthorizeError(error, description)
    response_mode = params.get("response_mode")
    if response_mode and response_mode != RESPONSE_MODE:
        raise AuthorizeError("invalid_request", f"response_mode must be {RESPONSE_MODE} (the only one).")


def checked_request(
    client: OAuthClient,
    redirect_uri: str,
    params: Mapping[str, str],
    *,
    repeated: Sequence[str] = (),
    id_token_algorithms: Sequence[str],
) -> AuthorizationRequest:
    """The request's parameters, or the `AuthorizeError` to send back. `repeated` names the parameters
    given more than once: RFC 6749 §3.1 forbids that."""
    if repeated:
        raise AuthorizeError("invalid_request", repeated_parameter_message(list(repeated)))
    if any(len(value) > MAX_PARAMETER_LENGTH for value in params.values()):
        raise AuthorizeError("invalid_request", "A parameter is too long.")
    _refuse_unsupported(params)
    response_type = params.get("response_type")
    if not response_type:
        raise AuthorizeError("invalid_request", "response_type is required.")
    if response_type != "code":
        raise AuthorizeError("unsupported_response_type", "Only response_type=code is supported.")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if not challenge:
        raise AuthorizeError("invalid_request", "code_challenge is required (PKCE, RFC 7636).")
    if method != "S256":  # absent means `plain` (RFC 7636 §4.3), which OAuth 2.1 leaves out
        raise AuthorizeError("invalid_request", "code_challenge_method must be S256.")
    if not S256_CHALLENGE.fullmatch(challenge):
        raise AuthorizeError("invalid_request", "code_challenge is not an S256 challenge.")
    scopes = tuple(dict.fromkeys((params.get("scope") or "").split()))
    if unknown := [scope for scope in scopes if scope not in client.scopes]:
        raise AuthorizeError("invalid_scope", f"The client may not ask for: {' '.join(unknown)}.")
    # Both registrable algorithms have a key unless JWT_ALGORITHM is EdDSA (no ES256 key then).
    if "openid" in scopes and client.id_token_signed_response_alg not in id_token_algorithms:
        raise AuthorizeError(
            "invalid_request",
            f"ID tokens are signed with {' or '.join(id_token_algorithms)} only on this server.",
        )
    prompt = frozenset((params.get("prompt") or "").split())
    if not prompt <= frozenset(PROMPTS) or ("none" in prompt and len(prompt) > 1):
        others = PROMPTS[1:]  # "none" goes alone
        raise AuthorizeError(
            "invalid_request", f"prompt must be none, or any of {', '.join(others[:-1])} and {others[-1]}."
        )
    max_age = params.get("max_age")
    if max_age is not None and not (max_age.isascii() and max_age.isdigit() and len(max_age) <= 10):
        raise AuthorizeError("invalid_request", "max_age must be a number of seconds.")
    nonce = params.get("nonce") or None
    if nonce is not None and len(nonce) > MAX_NONCE_LENGTH:
        raise AuthorizeError("invalid_request", "nonce is too long.")
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=params.get("state") or None,
        scopes=scopes,
        code_challenge=challenge,
        nonce=nonce,
        prompt=prompt,
        max_age=int(max_age) if max_age is not None else None,
        login_hint=params.get("login_hint") or None,
        acr_values=tuple((params.get("acr_values") or "").split()),
    )
