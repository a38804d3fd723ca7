"""`GET/POST /oauth2/authorize`: the authorization endpoint of the code flow (RFC 6749 §4.1, OpenID
Connect Core §3.1.2, OAuth 2.1).

The browser's SSO session (`app.sso`, through the hosted pages' `app.web.service.current`) says who is
signed in. Without one, or when `prompt=login` or `max_age` asks for a fresher sign-in (or `select_account`
for another account), the browser goes to
`/signin?return_to=<this request>` (a 303, a GET) and comes back here once signed in; `prompt=none` answers
`login_required` instead. So does `acr_values` preferring `urn:pyauth:acr:mfa` for a session signed in
without the second factor the user has. First-party clients need no consent; for the others the user
allows or denies the scopes on a consent page (`app.oidc.consent` remembers the answer per user and
client). Every answer sent to the client carries `iss` (RFC 9207) and the request's `state`. An
`id_token_hint` naming another user than the browser's is answered as if nobody were signed in.

`GET/POST /oauth2/logout` is the end-session endpoint of RP-Initiated Logout 1.0 (`app.oidc.logout`).
"""

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from app.auth.dependencies import CurrentAuth
from app.auth.sessions import SessionEndReason, end_client_sessions, end_sessions
from app.core.dependencies import ContextDep, SessionDep, SettingsDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, PyauthError, error_responses
from app.core.parameters import repeated_names, repeated_parameter_message
from app.core.templating import N_
from app.keys.dependencies import KeyRingDep
from app.oidc import authorize as checks
from app.oidc import codes, consent, logout, signin_return
from app.oidc.discovery import AUTHORIZE_PATH, END_SESSION_PATH
from app.oidc.id_token import IdTokenHint, InvalidIdTokenHint, verified_hint
from app.oidc.schemas import AppGrantRead
from app.users.models import User
from app.web import cookies, return_to
from app.web import service as web_service
from app.web.pages import WebPages, WebPagesDep, signed_in

router = APIRouter(tags=["oidc"])

NO_STORE = {"Cache-Control": "no-store"}
MAX_LOGIN_HINT_LENGTH = 320  # an email address's
CONSENT_FIELD = "consent"  # the consent page's Allow / Deny button
CONSENT_TITLE = N_("Allow access")


def redirect_to_client(redirect_uri: str, **values: str | None) -> Response:
    """A 302 to the client's registered redirect URI with `values` added to its query."""
    parts = urlsplit(redirect_uri)
    added = urlencode({name: value for name, value in values.items() if value is not None})
    query = f"{parts.query}&{added}" if parts.query else added
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302, headers=NO_STORE)


def _signin_url(params: dict[str, str]) -> str | None:
    """`/signin?return_to=<this request as a GET>`, without `prompt=login` or `select_account` (else the way
    back would ask for a sign-in again, for ever); None when the request is too long to come back to."""
    again = dict(params)
    if prompt := again.pop("prompt", None):
        rest = [value for value in prompt.split() if value not in checks.SIGN_IN_PROMPTS]
        if rest:
            again["prompt"] = " ".join(rest)
    target = f"{AUTHORIZE_PATH}?{urlencode(again)}"
    if len(target) > return_to.MAX_LENGTH:
        return None
    signin = {"return_to": target}
    if (hint := params.get("login_hint")) and len(hint) <= MAX_LOGIN_HINT_LENGTH:
        signin["login_hint"] = hint  # prefills the email field
    return f"/signin?{urlencode(signin)}"


def _needs_fresh_sign_in(wanted: checks.AuthorizationRequest, auth_time: datetime, now: datetime) -> bool:
    """`prompt=login` or `select_account`, or a sign-in older than `max_age` seconds (OpenID Connect Core
    §3.1.2.1)."""
    if wanted.prompt & checks.SIGN_IN_PROMPTS:
        return True
    return wanted.max_age is not None and now - auth_time > timedelta(seconds=wanted.max_age)


async def _needs_second_factor(
    db: SessionDep, wanted: checks.AuthorizationRequest, amr: Sequence[str], user: User
) -> bool:
    """`acr_values` asking for MFA (a voluntary request, OpenID Connect Core §5.5.1.1) of a session signed in
    with the password alone, for a user who has a second factor: signing in again asks for it, and the
    browser comes back with `mfa` in `amr` (then this is false: no loop). A user without one goes on: the ID
    token says `urn:pyauth:acr:pwd`, and the client decides whether that is enough."""
    if not wanted.wants_mfa or "mfa" in amr:
        return False
    return await web_service.has_second_factor(db, user)


def _sign_in_first(
    wanted: checks.AuthorizationRequest,
    params: dict[str, str],
    page: WebPages,
    answer: Callable[..., Response],
) -> Response:
    """To the sign-in page and back here; `prompt=none` forbids showing a page (`login_required`)."""
    if "none" in wanted.prompt:
        return answer(error="login_required", error_description="The user must sign in.")
    signin = _signin_url(params)
    if signin is None:
        return answer(error="invalid_request", error_description="The request is too long.")
    return page.redirect(signin)


async def _consent(
    request: Request,
    page: WebPages,
    db: SessionDep,
    ctx: ContextDep,
    params: dict[str, str],
    wanted: checks.AuthorizationRequest,
    user: User,
    answer: Callable[..., Response],
) -> Response | None:
    """None when the user allowed the client these scopes (now, on the consent page's POST, or before);
    else the consent page, or the answer to send the client (`access_denied`, `consent_required`)."""
    client_id = wanted.client.client_id
    decision = params.get(CONSENT_FIELD) if request.method == "POST" else None
    if decision is not None:
        try:
            page.check_csrf(params.get("csrf_token"))
        except PyauthError as error:
            return page.error(error)
        if decision != "allow":
            return answer(error="access_denied", error_description="The user denied the request.")
        await consent.remember(db, user.id, client_id, wanted.scopes, now=ctx.now)
        return None
    if "consent" not in wanted.prompt and await consent.covers(db, user.id, client_id, wanted.scopes):
        return None
    if "none" in wanted.prompt:
        return answer(error="consent_required", error_description="The user has not allowed this client.")
    response = page.render(
        "pages/consent.html",
        title=CONSENT_TITLE,
        client_name=wanted.client.name,
        scopes=[
            page.text(consent.SCOPE_WORDS[scope]) if scope in consent.SCOPE_WORDS else scope
            for scope in wanted.scopes
        ],
        email=user.email,
        action=AUTHORIZE_PATH,
        fields=[(name, value) for name, value in params.items() if name not in (CONSENT_FIELD, "csrf_token")],
    )
    # Allow is answered with a redirect to the client, and Chromium applies form-action to it: the page also
    # allows the origin of the registered redirect URI, as the sign-in page does (`app.oidc.signin_return`).
    origin = await signin_return.client_origin(db, f"{AUTHORIZE_PATH}?{urlencode(params)}")
    if origin is not None:
        policy = response.headers["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = policy.replace(
            "form-action 'self'", f"form-action 'self' {origin}"
        )
    return response


async def _parameters(request: Request) -> tuple[dict[str, str], list[str]]:
    """The query of a GET or the form of a POST (OpenID Connect Core §3.1.2.1 allows both), each name with
    its first value, and the names given more than once, which RFC 6749 §3.1 forbids (the caller refuses
    the request)."""
    if request.method == "POST":
        items = [
            (name, value) for name, value in (await request.form()).multi_items() if isinstance(value, str)
        ]
    else:
        items = request.query_params.multi_items()
    params: dict[str, str] = {}
    for name, value in items:
        params.setdefault(name, value)
    return params, repeated_names(items)


_ROUTE = {
    "summary": "Authorization endpoint (OAuth 2.1 code flow with PKCE S256, OpenID Connect)",
    "response_class": Response,
    "responses": {
        302: {"description": "To the client's redirect URI"},
        303: {"description": "To /signin"},
        400: {
            "description": "An error page, never a redirect: an unknown or disabled client, or a redirect "
            "URI that is not registered exactly (RFC 6749 §4.1.2.1)",
            "content": {"text/html": {}},
        },
    },
}


@router.get(AUTHORIZE_PATH, name="authorize", **_ROUTE)  # type: ignore[arg-type]
@router.post(AUTHORIZE_PATH, name="authorize_by_post", **_ROUTE)  # type: ignore[arg-type]
async def authorize(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    keyring: KeyRingDep,
    ctx: ContextDep,
) -> Response:
    params, repeated = await _parameters(request)
    try:
        if {"client_id", "redirect_uri"} & set(repeated):  # no redirect URI to trust (RFC 9700 §4.1)
            raise checks.AuthorizeRefused()
        client, redirect_uri = await checks.checked_client(db, params)
    except checks.AuthorizeRefused as error:
        return page.error(error)
    state = params.get("state")
    if state is not None and (len(state) > checks.MAX_PARAMETER_LENGTH or "state" in repeated):
        state = None

    def answer(**values: str | None) -> Response:
        return redirect_to_client(redirect_uri, **values, state=state, iss=settings.issuer)

    try:
        wanted = checks.checked_request(
            client, redirect_uri, params, repeated=repeated, id_token_algorithms=keyring.id_token_algorithms()
        )
    except checks.AuthorizeError as error:
        return answer(error=error.error, error_description=error.description)
    hint: IdTokenHint | None = None
    if token := params.get("id_token_hint"):
        try:
            hint = await verified_hint(keyring, token, issuer=settings.issuer)
        except InvalidIdTokenHint:
            return answer(error="invalid_request", error_description="id_token_hint is not valid.")
    current = await signed_in(request, db, settings, ctx)
    # The consent page's answer continues a request that already passed the freshness checks: asking for
    # them again would send a slow reader of a `max_age=1` request back to the sign-in for ever.
    answering_consent = request.method == "POST" and CONSENT_FIELD in params
    if (
        current is None
        # A hint naming another user than the browser's (OpenID Connect Core §3.1.2.1): that user must
        # sign in; the request keeps its hint, so only they get past the sign-in.
        or (hint is not None and hint.subject != str(current[1].id))
        or (not answering_consent and _needs_fresh_sign_in(wanted, current[0].auth_time, ctx.now))
        or (not answering_consent and await _needs_second_factor(db, wanted, current[0].amr, current[1]))
    ):
        return _sign_in_first(wanted, params, page, answer)
    browser_session, user = current
    if not client.first_party:
        refused = await _consent(request, page, db, ctx, params, wanted, user, answer)
        if refused is not None:
            return refused
    code = await codes.issue(
        db,
        client_id=client.client_id,
        user_id=user.id,
        browser_session_id=browser_session.id,
        redirect_uri=redirect_uri,
        code_challenge=wanted.code_challenge,
        nonce=wanted.nonce,
        scopes=wanted.scopes,
        auth_time=browser_session.auth_time,
        amr=browser_session.amr,
        now=ctx.now,
    )
    return answer(code=code)


LOGOUT_FIELD = "logout"  # the logout confirmation page's button
LOGOUT_TITLE = N_("Sign out")

_LOGOUT_ROUTE = {
    "summary": "End-session endpoint (OpenID Connect RP-Initiated Logout 1.0)",
    "response_class": Response,
    "responses": {
        200: {"description": "The confirmation page: the request did not name the signed-in user"},
        303: {"description": "To the registered post_logout_redirect_uri (with state), or /signed-out"},
        400: {
            "description": "An error page, never a redirect: a forged or foreign id_token_hint, or a "
            "post_logout_redirect_uri that the client did not register exactly",
            "content": {"text/html": {}},
        },
    },
}


def _confirm_logout(page: WebPages, wanted: logout.LogoutRequest, email: str) -> Response:
    """The sign-out button of `/signout`, its form carrying where to go afterwards. Chromium applies the
    CSP's form-action to the redirects that follow the form's POST, so the registered return address's
    origin is allowed too (it was checked before the page is shown)."""
    response = page.render(
        "pages/logout.html",
        title=LOGOUT_TITLE,
        email=email,
        action=END_SESSION_PATH,
        fields=wanted.form_fields(),
    )
    origin = signin_return.origin_of(wanted.redirect_uri) if wanted.redirect_uri else None
    if origin is not None:
        policy = response.headers["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = policy.replace(
            "form-action 'self'", f"form-action 'self' {origin}"
        )
    return response


@router.get(END_SESSION_PATH, name="end_session", **_LOGOUT_ROUTE)  # type: ignore[arg-type]
@router.post(END_SESSION_PATH, name="end_session_by_post", **_LOGOUT_ROUTE)  # type: ignore[arg-type]
async def end_session(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    keyring: KeyRingDep,
    ctx: ContextDep,
) -> Response:
    """Sign the browser out for a client app. With an `id_token_hint` naming the signed-in user the
    session ends at once; otherwise a GET from any site must not sign anyone out, so the user confirms
    on a page first (its CSRF-checked POST ends the session). Either way the browser then goes to the
    client's registered `post_logout_redirect_uri` with `state`, or to the signed-out page."""
    params, repeated = await _parameters(request)
    if repeated:  # RFC 6749 §3.1's rule, which RP-Initiated Logout's parameters follow too
        return page.error(logout.LogoutRefused(repeated_parameter_message(repeated)))
    confirming = request.method == "POST" and LOGOUT_FIELD in params
    if request.method == "POST" and not confirming:
        # A client's cross-site form POST (§2 allows it) does not carry the SameSite=Lax SSO cookie; the
        # same request as a top-level GET does. Only the parameters the endpoint reads travel on.
        known = {name: params[name] for name in logout.PARAMETERS if params.get(name)}
        return page.redirect(f"{END_SESSION_PATH}?{urlencode(known)}")
    if confirming:
        try:
            page.check_csrf(params.get("csrf_token"))
        except PyauthError as error:
            return page.error(error)
        params.pop("id_token_hint", None)  # the form carries none; the user's click stands for it
    try:
        wanted = await logout.checked_request(db, keyring, params, issuer=settings.issuer)
    except PyauthError as error:
        return page.error(error)
    token = cookies.read(request, cookies.SSO_NAME, settings)
    current = await web_service.current(db, token, settings=settings, ctx=ctx)
    if current is not None and not confirming and not wanted.names(current[1]):
        return _confirm_logout(page, wanted, current[1].email)
    if current is not None:
        # The browser session ends with the client's sessions issued through it (`app.oidc.logout`).
        browser_session = current[0]
        ended = 0
        for session_id in await logout.client_sessions_of_browser_session(
            db, wanted.client, browser_session.id
        ):
            ended += await end_sessions(
                db,
                SessionEndReason.RP_INITIATED_LOGOUT,
                user_id=browser_session.user_id,
                session_id=session_id,
                ctx=ctx,
            )
        details = logout.audit_details(wanted.client, ended)
        await web_service.sign_out(db, browser_session, ctx=ctx, details=details)
        page.renew_csrf()
    response = page.redirect(wanted.target)
    if token is not None:
        cookies.clear(response, cookies.SSO_NAME, settings)
    return response


grants_router = APIRouter(prefix="/users/me/grants", tags=["users"])


class GrantNotFound(PyauthError):
    status_code = 404
    code = "grant_not_found"
    message = "No such app grant."


@grants_router.get("", response_model=list[AppGrantRead], responses=error_responses(401, UNAVAILABLE))
async def list_grants(auth: CurrentAuth, db: SessionDep) -> list[AppGrantRead]:
    """The apps the user allowed (consent), with the scopes allowed to each."""
    return [
        AppGrantRead.model_validate(grant, from_attributes=True)
        for grant in await consent.grants_of(db, auth.user.id)
    ]


@grants_router.delete(
    "/{client_id}",
    status_code=204,
    responses=error_responses(*GUARD_ERRORS, 401, 422, UNAVAILABLE, raises=(GrantNotFound,)),
)
async def revoke_grant(
    client_id: Annotated[str, Path(max_length=64)], auth: CurrentAuth, db: SessionDep, ctx: ContextDep
) -> Response:
    """Revoke an app's grant: its consent is asked again, and its sessions (refresh tokens) end."""
    if not await consent.revoke(db, auth.user.id, client_id):
        raise GrantNotFound()
    await end_client_sessions(
        db, SessionEndReason.APP_GRANT_REVOKED, user_id=auth.user.id, client_id=client_id, ctx=ctx
    )
    return Response(status_code=204)
