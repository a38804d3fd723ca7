"""The hosted pages' routes: `/signin` (and its second step `/signin/second-factor`), `/signup`, `/forgot`,
`/signout`, `/signed-out`, `/account`, and the stylesheet `/static/pyauth.css`. Server-rendered; the only
JavaScript is pyauth's own passkey script (`static/passkey-signin.js`), which WebAuthn needs. Every form
POSTs a CSRF token first checked (`app.web.csrf`), and `return_to` (where to go once
done) is a path on this server or refused (`app.web.return_to`). A later `/oauth2/authorize` sends the
browser to `/signin?return_to=<itself>`.

The second step of an account with a second factor is a page of its own (`pages/second_factor.html`): the
mfa_token of the first step travels in a hidden form field (never in a URL), the page asks for the
authenticator's code or, on request, a recovery code, and a wrong one re-shows it with the error. An account
with a passkey is offered it there ("Use your passkey", the page's main action when it is the first
method): the script asks `/signin/second-factor/passkey-options` for options bound to the mfa_token, then
posts the assertion in the form's `credential` field with method `webauthn`.

A passkey also signs in without a password: the sign-in page's "Sign in with a passkey" (hidden unless the
browser has WebAuthn) asks `/signin/passkey/options` (options for nobody: discoverable credentials, user
verification required) and posts the assertion to `/signin/passkey`, which starts the session as the
password sign-in does. Both options endpoints write a challenge row and are limited per client address
(RATE_LIMIT_PASSKEY_OPTIONS); a refused assertion re-shows its page with the error.

Each form's POST is limited per client address like its API twin, on the same counters: sign-in with the
token endpoint (`token`), sign-up with `POST /auth/register`, forgot with `POST /auth/password/forgot`.
"""

import asyncio
import functools
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from app.account import registration
from app.account import service as account_service
from app.account.service import EmailAlreadyRegistered
from app.auth.device_cookie import DEVICE_COOKIE
from app.core import templating
from app.core.dependencies import ContextDep, SessionDep, SettingsDep
from app.core.errors import PyauthError
from app.mfa import login as mfa_login
from app.mfa.methods import METHODS, WebAuthnMethod, enrolled_methods
from app.oidc import signin_return
from app.passkeys.errors import PasskeyInvalid, PasskeyRefused
from app.passwords import policy
from app.passwords.dependencies import HasherDep
from app.ratelimit.dependencies import limit_request
from app.users.emails import InvalidEmail
from app.web import cookies, pages, return_to, service
from app.web.pages import FormCsrf, FormReturnTo, QueryReturnTo, WebPages, WebPagesDep

router = APIRouter(include_in_schema=False)

FormEmail = Annotated[str, Form(max_length=320)]
FormPassword = Annotated[str, Form(max_length=4096)]
FormMfaToken = Annotated[str, Form(max_length=128)]
FormCode = Annotated[str, Form(max_length=max(method.max_length for method in METHODS))]
FormMethod = Annotated[str, Form(max_length=32)]
FormCredential = Annotated[str, Form(max_length=WebAuthnMethod.max_length)]
SECOND_FACTOR_PATH = "/signin/second-factor"
SECOND_FACTOR_PASSKEY_OPTIONS_PATH = "/signin/second-factor/passkey-options"
PASSKEY_SIGNIN_PATH = "/signin/passkey"
PASSKEY_OPTIONS_PATH = "/signin/passkey/options"
PASSKEY_SCRIPT = "passkey-signin.js"
WEBAUTHN = WebAuthnMethod.name
PASSWORD_ERRORS = (*policy.NEW_PASSWORD_ERRORS,)


def _with_return_to(path: str, target: str) -> str:
    return path if target == return_to.DEFAULT else f"{path}?{urlencode({'return_to': target})}"


@router.get("/static/{name}.js")
async def page_script(name: str) -> Response:
    """One of pyauth's page scripts (`templating.SCRIPT_NAMES`); any other name is a 404."""
    source = templating.script_source(f"{name}.js")
    if source is None:
        return Response(status_code=404)
    return Response(source, media_type="text/javascript", headers={"Cache-Control": "public, max-age=300"})


@router.get(templating.STYLESHEET_PATH)
async def stylesheet(settings: SettingsDep) -> Response:
    return Response(
        templating.stylesheet(settings),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def _signin_page(
    page: WebPages,
    target: str,
    *,
    email: str = "",
    error: PyauthError | None = None,
    client_origin: str | None = None,
) -> Response:
    response = page.render(
        "pages/signin.html",
        title=pages.SIGNIN_TITLE,
        status_code=error.status_code if error else 200,
        scripts=(PASSKEY_SCRIPT,),
        action="/signin",
        passkey_action=PASSKEY_SIGNIN_PATH,
        passkey_options_url=PASSKEY_OPTIONS_PATH,
        return_to=target,
        email=email,
        error=page.error_text(error) if error else None,
        forgot_url=_with_return_to("/forgot", target),
        signup_url=_with_return_to("/signup", target),
    )
    return _finish_signin_page(response, error, client_origin)


def _finish_signin_page(response: Response, error: PyauthError | None, client_origin: str | None) -> Response:
    if error is not None and error.headers:
        response.headers.update(error.headers)  # Retry-After of a throttled attempt
    if client_origin is not None:
        # The sign-in returns to an authorization request, whose answer redirects to the client: see
        # `app.oidc.signin_return` for why the form may then end up there.
        policy = response.headers["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = policy.replace(
            "form-action 'self'", f"form-action 'self' {client_origin}"
        )
    return response


def _second_factor_page(
    page: WebPages,
    target: str,
    *,
    mfa_token: str,
    methods: list[str],
    method: str,
    error: PyauthError | None = None,
    client_origin: str | None = None,
) -> Response:
    """The second page: the chosen method (a field for its code, or the passkey button), and a button
    for each other method (the passkey's uses it at once)."""
    method = method if method in methods else methods[0]
    response = page.render(
        "pages/second_factor.html",
        title=pages.PASSKEY_STEP_TITLE if method == WEBAUTHN else pages.SECOND_FACTOR_TITLE,
        status_code=error.status_code if error else 200,
        scripts=(PASSKEY_SCRIPT,) if WEBAUTHN in methods else (),
        action=SECOND_FACTOR_PATH,
        passkey_options_url=SECOND_FACTOR_PASSKEY_OPTIONS_PATH,
        return_to=target,
        mfa_token=mfa_token,
        method=method,
        other_methods=[name for name in methods if name != method],
        error=page.error_text(error) if error else None,
        signin_url=_with_return_to("/signin", target),
    )
    return _finish_signin_page(response, error, client_origin)


@router.get("/signin")
async def signin_page(
    page: WebPagesDep,
    db: SessionDep,
    return_to_: QueryReturnTo = "",
    login_hint: Annotated[str, Query(max_length=320)] = "",
) -> Response:
    """`login_hint` (an authorization request's, OpenID Connect Core §3.1.2.1) prefills the email field."""
    try:
        target = return_to.checked(return_to_)
    except PyauthError as error:
        return page.error(error)
    origin = await signin_return.client_origin(db, target)
    return _signin_page(page, target, email=login_hint, client_origin=origin)


@router.post("/signin")
async def signin(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    ctx: ContextDep,
    email: FormEmail = "",
    password: FormPassword = "",
    csrf_token: FormCsrf = "",
    return_to_: FormReturnTo = "",
) -> Response:
    """Sign in with the password grant's pipeline; on success a browser session (its cookie), a new
    device token (its cookie, scoped to /signin) and a 303 to `return_to`."""
    try:
        page.check_csrf(csrf_token)
        target = return_to.checked(return_to_)
    except PyauthError as error:
        return page.error(error)
    try:
        await limit_request(request, "token", "RATE_LIMIT_TOKEN", ctx, settings)
        current = await pages.signed_in(request, db, settings, ctx)
        signed_in = await service.sign_in(
            db,
            email=email,
            password=password,
            device_token=request.cookies.get(DEVICE_COOKIE),
            replaces=current[0] if current else None,
            hasher=hasher,
            settings=settings,
            ctx=ctx,
        )
    except PyauthError as error:
        origin = await signin_return.client_origin(db, target)
        return _signin_page(page, target, email=email, error=error, client_origin=origin)
    if isinstance(signed_in, service.SecondStepNeeded):
        origin = await signin_return.client_origin(db, target)
        return _second_factor_page(
            page,
            target,
            mfa_token=signed_in.mfa_token,
            methods=signed_in.methods,
            method=signed_in.methods[0],
            client_origin=origin,
        )
    return _signed_in(page, target, signed_in, settings)


def _signed_in(page: WebPages, target: str, signed_in: service.SignedIn, settings: SettingsDep) -> Response:
    page.renew_csrf()
    response = page.redirect(target)
    cookies.set_sso_cookie(response, signed_in.session_token, settings)
    if signed_in.authentication.device_token:
        cookies.set_signin_device_cookie(response, signed_in.authentication.device_token, settings)
    return response


@router.get(SECOND_FACTOR_PATH)
async def second_factor_page(page: WebPagesDep) -> Response:
    """Only reached through the sign-in form: without its first step, back to it."""
    return page.redirect("/signin")


@router.post(SECOND_FACTOR_PATH)
async def second_factor(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    mfa_token: FormMfaToken = "",
    method: FormMethod = "",
    code: FormCode = "",
    credential: FormCredential = "",
    csrf_token: FormCsrf = "",
    return_to_: FormReturnTo = "",
) -> Response:
    """The second step: with a code (or, for `webauthn`, the passkey's `credential`), the mfa grant's
    checks (throttle, audit, single use) and then the browser session; without one, the page again for
    `method` (the switch to another method). A token that is not a live one of the hosted pages is
    refused before anything is counted."""
    try:
        page.check_csrf(csrf_token)
        target = return_to.checked(return_to_)
        await limit_request(request, "token", "RATE_LIMIT_TOKEN", ctx, settings)
        ticket = await mfa_login.live_hosted_ticket(db, mfa_token, ctx.now) if mfa_token else None
        if ticket is None:
            raise pages.SecondStepExpired()
    except PyauthError as error:
        return page.error(error)
    user = await service.user_of(db, ticket.user_id)
    methods = await enrolled_methods(db, user.id) if user else []
    if user is None or not methods:
        return page.error(pages.SecondStepExpired())
    origin = await signin_return.client_origin(db, target)
    method = method if method in methods else methods[0]
    value = (credential if method == WEBAUTHN else code).strip()
    if not value:
        return _second_factor_page(
            page, target, mfa_token=mfa_token, methods=methods, method=method, client_origin=origin
        )
    try:
        current = await pages.signed_in(request, db, settings, ctx)
        signed_in = await service.complete_second_step(
            db,
            mfa_token=mfa_token,
            method_name=method,
            value=value,
            replaces=current[0] if current else None,
            settings=settings,
            ctx=ctx,
        )
    except PasskeyRefused as refused:
        # Rolled back, the challenge spent and the refusal audited by its handler; then this page.
        raise pages.RefusedOnPage(
            refused,
            lambda: _second_factor_page(
                page,
                target,
                mfa_token=mfa_token,
                methods=methods,
                method=WEBAUTHN,
                error=PasskeyInvalid(),
                client_origin=origin,
            ),
        ) from None
    except PyauthError as error:
        return _second_factor_page(
            page,
            target,
            mfa_token=mfa_token,
            methods=methods,
            method=method,
            error=error,
            client_origin=origin,
        )
    return _signed_in(page, target, signed_in, settings)


@router.post(SECOND_FACTOR_PASSKEY_OPTIONS_PATH)
async def second_factor_passkey_options(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    response: Response,
    mfa_token: FormMfaToken = "",
    csrf_token: FormCsrf = "",
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON for the second page's passkey (JSON, for its script): the
    account's passkeys allowed, the challenge bound to this mfa_token (`app.mfa.login.webauthn_options`).
    The token is not spent: the second step's form spends it."""
    response.headers["Cache-Control"] = "no-store"
    page.check_csrf(csrf_token)
    await limit_request(request, "passkey_options", "RATE_LIMIT_PASSKEY_OPTIONS", ctx, settings)
    if not mfa_token or await mfa_login.live_hosted_ticket(db, mfa_token, ctx.now) is None:
        raise pages.SecondStepExpired()
    return await mfa_login.webauthn_options(db, mfa_token=mfa_token, settings=settings, ctx=ctx)


@router.post(PASSKEY_OPTIONS_PATH)
async def passkey_options(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    response: Response,
    csrf_token: FormCsrf = "",
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON for a passwordless sign-in (JSON, for the sign-in page's
    script): an empty allowCredentials, user verification required."""
    response.headers["Cache-Control"] = "no-store"
    page.check_csrf(csrf_token)
    await limit_request(request, "passkey_options", "RATE_LIMIT_PASSKEY_OPTIONS", ctx, settings)
    return await service.passwordless_options(db, settings=settings, ctx=ctx)


@router.post(PASSKEY_SIGNIN_PATH)
async def passkey_signin(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    credential: FormCredential = "",
    csrf_token: FormCsrf = "",
    return_to_: FormReturnTo = "",
) -> Response:
    """Sign in with a passkey alone: the assertion (AuthenticationResponseJSON in `credential`) verified,
    then, like the password sign-in, a new browser session (any current one ends), a new CSRF secret and a
    303 to `return_to`. Limited like the sign-in form; a refusal re-shows the sign-in page with the error
    and is audited (`passkey.assertion_failed` with its reason, and `login.failed`)."""
    try:
        page.check_csrf(csrf_token)
        target = return_to.checked(return_to_)
    except PyauthError as error:
        return page.error(error)
    origin = await signin_return.client_origin(db, target)
    try:
        await limit_request(request, "token", "RATE_LIMIT_TOKEN", ctx, settings)
        current = await pages.signed_in(request, db, settings, ctx)
        signed_in = await service.sign_in_with_passkey(
            db,
            credential=credential,
            replaces=current[0] if current else None,
            settings=settings,
            ctx=ctx,
        )
    except PasskeyRefused as refused:
        raise pages.RefusedOnPage(
            refused,
            lambda: _signin_page(page, target, error=PasskeyInvalid(), client_origin=origin),
            # `refused` itself, not the name, which Python unbinds when the except clause ends.
            also=functools.partial(service.record_passkey_sign_in_refused, refused=refused, ctx=ctx),
        ) from None
    except PyauthError as error:
        return _signin_page(page, target, error=error, client_origin=origin)
    return _signed_in(page, target, signed_in, settings)


def _signup_page(
    page: WebPages,
    target: str,
    *,
    email: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "pages/signup.html",
        title=pages.SIGNUP_TITLE,
        status_code=status_code,
        action="/signup",
        return_to=target,
        email=email,
        errors=errors or {},
        password_hint=page.password_hint(),
        signin_url=_with_return_to("/signin", target),
    )


@router.get("/signup")
async def signup_page(page: WebPagesDep, return_to_: QueryReturnTo = "") -> Response:
    try:
        target = return_to.checked(return_to_)
    except PyauthError as error:
        return page.error(error)
    return _signup_page(page, target)


@router.post("/signup")
async def signup(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    ctx: ContextDep,
    email: FormEmail = "",
    password: FormPassword = "",
    csrf_token: FormCsrf = "",
    return_to_: FormReturnTo = "",
) -> Response:
    """The registration service of `POST /auth/register`; its refusals are shown next to their field."""
    try:
        page.check_csrf(csrf_token)
        target = return_to.checked(return_to_)
        await limit_request(request, "register", "RATE_LIMIT_REGISTER", ctx, settings)
    except PyauthError as error:
        return page.error(error)
    try:
        await registration.register(
            db, email=email, password=password, hasher=hasher, settings=settings, ctx=ctx, locale=page.locale
        )
    except (InvalidEmail, EmailAlreadyRegistered) as error:
        return _signup_page(
            page, target, email=email, errors={"email": page.error_text(error)}, status_code=error.status_code
        )
    except PASSWORD_ERRORS as error:
        return _signup_page(
            page,
            target,
            email=email,
            errors={"password": page.error_text(error)},
            status_code=error.status_code,
        )
    except PyauthError as error:
        return page.error(error)
    return page.notice(
        pages.CHECK_MAIL_TITLE,
        page.text(
            templating.N_("We sent a link to %(email)s. Open it to verify your address, then sign in."),
            email=email,
        ),
        link_url=_with_return_to("/signin", target),
        link_text=page.text(pages.SIGNIN_TITLE),
    )


@router.get("/forgot")
async def forgot_page(page: WebPagesDep, return_to_: QueryReturnTo = "") -> Response:
    try:
        target = return_to.checked(return_to_)
    except PyauthError as error:
        return page.error(error)
    return page.render(
        "pages/forgot.html",
        title=pages.FORGOT_TITLE,
        action="/forgot",
        return_to=target,
        email="",
        errors={},
        signin_url=_with_return_to("/signin", target),
    )


@router.post("/forgot")
async def forgot(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    email: FormEmail = "",
    csrf_token: FormCsrf = "",
    return_to_: FormReturnTo = "",
) -> Response:
    """The forgot-password service of `POST /auth/password/forgot`, answering the same page in the same
    time whether or not the account exists."""
    started = time.perf_counter()
    try:
        page.check_csrf(csrf_token)
        target = return_to.checked(return_to_)
        await limit_request(request, "forgot_password", "RATE_LIMIT_FORGOT_PASSWORD", ctx, settings)
        await account_service.forgot_password(db, email=email, settings=settings, ctx=ctx)
    except PyauthError as error:
        return page.error(error)
    await db.commit()
    remaining = settings.ENUMERATION_SAFE_RESPONSE_SECONDS - (time.perf_counter() - started)
    if remaining > 0:
        await asyncio.sleep(remaining)
    return page.notice(
        pages.CHECK_MAIL_TITLE,
        page.text(
            templating.N_("If an account uses this address, we sent it a link to choose a new password.")
        ),
        link_url=_with_return_to("/signin", target),
        link_text=page.text(pages.SIGNIN_TITLE),
    )


@router.get("/account")
async def account_page(
    request: Request, page: WebPagesDep, db: SessionDep, settings: SettingsDep, ctx: ContextDep
) -> Response:
    current = await pages.signed_in(request, db, settings, ctx)
    if current is None:
        return page.redirect(_with_return_to("/signin", "/account"))
    return page.render(
        "pages/account.html",
        title=pages.ACCOUNT_TITLE,
        email=current[1].email,
        action="/signout",
        security_url="/account/security",
    )


@router.get("/signout")
async def signout_page(
    request: Request, page: WebPagesDep, db: SessionDep, settings: SettingsDep, ctx: ContextDep
) -> Response:
    """Shows a button: a GET never signs out (a link or an image on another site could)."""
    current = await pages.signed_in(request, db, settings, ctx)
    if current is None:
        return page.redirect("/signed-out")
    return page.render(
        "pages/account.html", title=pages.SIGNOUT_TITLE, email=current[1].email, action="/signout"
    )


@router.post("/signout")
async def signout(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    csrf_token: FormCsrf = "",
) -> Response:
    """Ends the browser session (its row, then the cookie) and lands on the signed-out page."""
    try:
        page.check_csrf(csrf_token)
    except PyauthError as error:
        return page.error(error)
    current = await pages.signed_in(request, db, settings, ctx)
    if current is not None:
        await service.sign_out(db, current[0], ctx=ctx)
    page.renew_csrf()
    response = page.redirect("/signed-out")
    cookies.clear(response, cookies.SSO_NAME, settings)
    return response


@router.get("/signed-out")
async def signed_out_page(page: WebPagesDep) -> Response:
    return page.notice(
        pages.SIGNED_OUT_TITLE,
        page.text(templating.N_("You are signed out of %(name)s."), name=page.brand.name),
        link_url="/signin",
        link_text=page.text(pages.SIGNIN_TITLE),
    )
