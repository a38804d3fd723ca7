"""Rendering of the hosted pages: one request's locale (an authorization request's `ui_locales`, else
Accept-Language) and brand, its CSRF secret, and the headers and cookies every page carries. The words of
the errors a page shows are here, marked for the catalog: the services' own messages are the API's
English."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.service import EmailAlreadyRegistered
from app.auth.errors import EmailNotVerified, InvalidCredentials
from app.core import templating
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.dependencies import RequestLocale, SettingsDep
from app.core.errors import PyauthError, RolledBackRefusal
from app.core.templating import N_
from app.mfa.errors import InvalidSecondFactor, SecondFactorThrottled
from app.oidc.discovery import AUTHORIZE_PATH
from app.passkeys.errors import PasskeyInvalid
from app.passwords import policy
from app.passwords.hashing import HashQueueFull
from app.ratelimit.service import LoginThrottled, PasswordResetRequired, RateLimited
from app.sso.models import BrowserSession
from app.users.emails import InvalidEmail
from app.users.models import User
from app.web import cookies, csrf, return_to, service
from app.web.return_to import ReturnToRefused

SIGNIN_TITLE = N_("Sign in")
SIGNUP_TITLE = N_("Create your account")
FORGOT_TITLE = N_("Reset your password")
ACCOUNT_TITLE = N_("Your account")
SIGNED_OUT_TITLE = N_("Signed out")
SIGNOUT_TITLE = N_("Sign out")
ERROR_TITLE = N_("Something went wrong")
CHECK_MAIL_TITLE = N_("Check your mail")
SECOND_FACTOR_TITLE = N_("Enter the code from your authenticator app")
PASSKEY_STEP_TITLE = N_("Confirm with your passkey")


class SecondStepExpired(PyauthError):
    """The second page without a live first step (none, spent, expired, or not the hosted pages')."""

    status_code = 400
    code = "second_step_expired"
    message = N_("This sign-in has expired or was already used. Sign in again.")


# The page's words for each refusal, by the error's class (the first that matches).
MESSAGES: tuple[tuple[type[PyauthError], str], ...] = (
    (EmailNotVerified, N_("Your email address is not verified yet. Use the link we mailed to it.")),
    (InvalidCredentials, N_("The email address or the password is not right.")),
    (PasswordResetRequired, N_("Too many failed attempts. Reset your password to sign in again.")),
    (SecondFactorThrottled, N_("Too many wrong codes. Wait a moment, then try again.")),
    (InvalidSecondFactor, N_("This code is not right, or it was already used.")),
    (PasskeyInvalid, N_("Your passkey could not be verified. Try again.")),
    (SecondStepExpired, SecondStepExpired.message),
    (LoginThrottled, N_("Too many failed attempts. Wait a moment, then try again.")),
    (RateLimited, N_("Too many requests. Wait a moment, then try again.")),
    (HashQueueFull, N_("The service is busy. Try again in a moment.")),
    (policy.PasswordTooLong, N_("This password is too long.")),
    (policy.PasswordTooShort, N_("This password is too short: use at least %(min)s characters.")),
    (policy.PasswordTooCommon, N_("This password is one of the most common ones. Choose another.")),
    (policy.PasswordTooGuessable, N_("This password is easy to guess. Choose another.")),
    (
        policy.PasswordContainsContext,
        N_("The password must not contain your email address or the service's name."),
    ),
    (policy.PasswordNotText, N_("The password contains characters that are not text.")),
    (InvalidEmail, N_("Enter a valid email address.")),
    (EmailAlreadyRegistered, N_("An account with this email address already exists. Sign in instead.")),
    (csrf.CsrfRefused, csrf.CsrfRefused.message),
    (ReturnToRefused, ReturnToRefused.message),
)
PASSWORD_HINT = N_("At least %(min)s characters. A few unusual words make a good one.")
UNKNOWN_ERROR = N_("The request could not be processed.")


class RefusedOnPage(RolledBackRefusal):
    """A refusal that rolls its request back (a passkey's: `PasskeyRefused`), answered with a page: the
    refusal's own record is kept, then what `also` records, and `page()` is the answer."""

    def __init__(
        self,
        refusal: RolledBackRefusal,
        page: Callable[[], Response],
        *,
        also: Callable[[AsyncSession], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(refusal.error, db=refusal.db)
        self.refusal, self.page, self.also = refusal, page, also

    async def keep(self, db: AsyncSession) -> None:
        await self.refusal.keep(db)
        if self.also is not None:
            await self.also(db)

    def answer(self) -> Response:
        return self.page()


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def signed_in(
    request: Request, db: AsyncSession, settings: Settings, ctx: RequestContext
) -> tuple[BrowserSession, User] | None:
    """The browser's live SSO session (named by its cookie) and its user, or None."""
    return await service.current(
        db, cookies.read(request, cookies.SSO_NAME, settings), settings=settings, ctx=ctx
    )


async def _page_locale(request: Request, accepted: RequestLocale) -> str:
    """The language of a hosted page: the first supported one of the authorization request's
    `ui_locales` (OpenID Connect Core §3.1.2.1) when the page serves such a request, else the
    Accept-Language choice. The request is `/oauth2/authorize` itself (its query, or the form of its
    consent page, which carries every parameter), or the one a page returns to: sign in, sign up and
    forgot carry it as `return_to`, in their links and forms, so the language holds on every step."""
    params: dict[str, str] = dict(request.query_params.items())
    if request.method == "POST" and request.headers.get("content-type", "").startswith(FORM_TYPES):
        # Starlette keeps the parsed form on the request: the endpoint reads the same one.
        form = await request.form()
        params |= {name: value for name, value in form.items() if isinstance(value, str)}
    ui_locales = params.get("ui_locales")
    target = urlsplit(params.get("return_to", ""))
    if ui_locales is None and target.path == AUTHORIZE_PATH:
        ui_locales = next(iter(parse_qs(target.query).get("ui_locales", [])), None)
    return templating.ui_locale(ui_locales) or accepted


PageLocale = Annotated[str, Depends(_page_locale)]


class WebPages:
    """Renders hosted pages for one request. Every page gets the CSRF cookie if the browser had none,
    and the headers of `templating.page_headers` (CSP with frame-ancestors 'none', no-store, ...)."""

    def __init__(self, request: Request, settings: SettingsDep, locale: PageLocale) -> None:
        self.settings = settings
        self.locale = templating.known_locale(locale)
        self.words = templating.translations(self.locale)
        self.brand = templating.Brand.from_settings(settings)
        existing = csrf.usable_secret(cookies.read(request, cookies.CSRF_NAME, settings))
        self.csrf_secret = existing or csrf.new_secret()
        self.csrf_is_new = existing is None
        self.sent_csrf = existing  # the secret the request came with, for checking its form

    @property
    def csrf_token(self) -> str:
        return csrf.form_token(self.csrf_secret, self.settings)

    def check_csrf(self, token: str | None) -> None:
        csrf.check(self.sent_csrf, token, self.settings)

    def renew_csrf(self) -> None:
        """A new CSRF secret from this response on (at sign-in and sign-out)."""
        self.csrf_secret, self.csrf_is_new = csrf.new_secret(), True

    def text(self, message: str, **values: Any) -> str:
        translated = self.words.gettext(message)
        return translated % values if values else translated

    def error_text(self, error: PyauthError) -> str:
        for kind, message in MESSAGES:
            if isinstance(error, kind):
                return self.text(message, min=self.settings.PASSWORD_MIN_LENGTH)
        return self.text(UNKNOWN_ERROR)

    def password_hint(self) -> str:
        return self.text(PASSWORD_HINT, min=self.settings.PASSWORD_MIN_LENGTH)

    def finish(self, response: Response) -> Response:
        """The headers and the CSRF cookie every hosted page's answer carries, redirects included."""
        response.headers.update(templating.page_headers(self.settings))
        if self.csrf_is_new:
            cookies.set_csrf_cookie(response, self.csrf_secret, self.settings)
        return response

    def render(
        self,
        template: str,
        *,
        title: str,
        status_code: int = 200,
        scripts: tuple[str, ...] = (),
        **values: Any,
    ) -> HTMLResponse:
        """`scripts` names pyauth's page scripts the page loads (`templating.SCRIPT_NAMES`); only a page
        with some gets a CSP that lets them run."""
        html = templating.render(
            self.settings.TEMPLATES_DIR,
            self.locale,
            template,
            title=self.words.gettext(title),
            brand=self.brand,
            stylesheet=templating.STYLESHEET_PATH,
            csrf_token=self.csrf_token,
            scripts=[templating.script_path(name) for name in scripts],
            **values,
        )
        response = HTMLResponse(html, status_code=status_code)
        self.finish(response)
        if scripts:
            response.headers["Content-Security-Policy"] = templating.page_csp(self.settings, scripts=True)
        return response

    def error(self, error: PyauthError) -> HTMLResponse:
        response = self.render(
            "pages/error.html",
            title=ERROR_TITLE,
            status_code=error.status_code,
            text=self.error_text(error),
            home_url="/signin",
        )
        response.headers.update(error.headers or {})
        return response

    def notice(
        self, title: str, text: str, *, link_url: str | None = None, link_text: str = ""
    ) -> HTMLResponse:
        return self.render(
            "pages/notice.html", title=title, text=text, link_url=link_url, link_text=link_text
        )

    def redirect(self, location: str) -> Response:
        response = RedirectResponse(location, status_code=303)
        self.finish(response)
        return response


WebPagesDep = Annotated[WebPages, Depends(WebPages)]

# The form fields and query parameter every page shares. `return_to` is taken under a parameter named
# `return_to_`, as the module `app.web.return_to` has the name.
FormCsrf = Annotated[str, Form(max_length=128)]
FormReturnTo = Annotated[str, Form(alias="return_to", max_length=return_to.MAX_LENGTH)]
QueryReturnTo = Annotated[str, Query(alias="return_to", max_length=return_to.MAX_LENGTH)]
