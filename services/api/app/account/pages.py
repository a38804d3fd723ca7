"""The few HTML pages pyauth serves itself, so that mailed links work without a frontend: verify an
address, confirm or cancel an email change, and a plain form to choose a new password. No scripts; styles
from pyauth's own stylesheet only; every value is escaped (the templates `pages/*.html` autoescape, see
`app.core.templating`), and the words are in the locale the browser's Accept-Language prefers.

A mailed link's GET only shows a page with a button; the button POSTs the token and only that acts, so a
mail scanner that prefetches links spends nothing."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from fastapi.responses import HTMLResponse

from app.core import templating
from app.core.config import Settings
from app.core.dependencies import RequestLocale, SettingsDep
from app.core.errors import PyauthError
from app.core.templating import N_


@dataclass(frozen=True)
class ButtonPage:
    """What a mailed link's page says, and where its button POSTs the token. English; translated when
    shown."""

    title: str
    text: str
    action: str
    button: str


@dataclass(frozen=True)
class Message:
    title: str
    text: str  # may name values as %(name)s


VERIFY_EMAIL = ButtonPage(
    N_("Verify your email address"),
    N_("Press the button to confirm that this address is yours."),
    action="/auth/verify/form",
    button=N_("Verify my address"),
)
CONFIRM_EMAIL_CHANGE = ButtonPage(
    N_("Confirm your new email address"),
    N_("Press the button to make this address the sign-in address of your account."),
    action="/auth/email/confirm/form",
    button=N_("Confirm the change"),
)
CANCEL_EMAIL_CHANGE = ButtonPage(
    N_("Cancel the change of your email address"),
    N_("Press the button to cancel every pending change of your account's email address."),
    action="/auth/email/cancel/form",
    button=N_("Cancel the change"),
)
EMAIL_VERIFIED = Message(N_("Email verified"), N_("Your email address is verified. You can close this page."))
PASSWORD_CHANGED = Message(
    N_("Password changed"), N_("Your password is changed and every session was signed out.")
)
EMAIL_CHANGED = Message(N_("Email changed"), N_("Your sign-in address is now %(email)s."))
EMAIL_CHANGE_CANCELLED = Message(
    N_("Email change cancelled"),
    N_(
        "Every pending change of your email address is cancelled. If you did not ask for the change, "
        "someone knows your password: change it now."
    ),
)
# The titles of refused links' pages; the text is the error's detail.
NOT_VERIFIED = N_("Email not verified")
PASSWORD_NOT_CHANGED = N_("Password not changed")
EMAIL_NOT_CHANGED = N_("Email not changed")
EMAIL_CHANGE_NOT_CANCELLED = N_("Email change not cancelled")
RESET_FORM_TITLE = N_("Choose a new password")


class Pages:
    """Renders the pages in one request's locale, from the templates TEMPLATES_DIR overrides."""

    def __init__(self, settings: Settings, locale: str) -> None:
        self.templates_dir = settings.TEMPLATES_DIR
        self.brand = templating.Brand.from_settings(settings)
        self.headers = templating.page_headers(settings)
        self.locale = templating.known_locale(locale)
        self.words = templating.translations(self.locale)

    def render(self, template: str, *, title: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        """A page from `template`, in the base layout (`pages/base.html`, branded), with the headers every
        page has (`templating.page_headers`): no scripts, styles only from pyauth's stylesheet, never
        cached (it may hold a token), no Referer to wherever a link on it leads."""
        html = templating.render(
            self.templates_dir,
            self.locale,
            template,
            title=self.words.gettext(title),
            brand=self.brand,
            stylesheet=templating.STYLESHEET_PATH,
            **values,
        )
        return HTMLResponse(html, status_code=status_code, headers=self.headers)

    def message(self, page: Message, status_code: int = 200, **values: str) -> HTMLResponse:
        text = self.words.gettext(page.text)
        return self.render(
            "pages/message.html",
            title=page.title,
            text=text % values if values else text,
            status_code=status_code,
        )

    def refused(self, title: str, error: PyauthError) -> HTMLResponse:
        """A refused link's page (`LinkRefused`'s answer, once its handler rolled back and audited). The
        detail is translated when the catalog has it (the link errors are marked for it), else English."""
        return self.render(
            "pages/message.html",
            title=title,
            text=self.words.gettext(error.detail),
            status_code=error.status_code,
        )

    def confirm_button(self, page: ButtonPage, *, token: str) -> HTMLResponse:
        """The page a mailed link opens: what the button will do, and a form that POSTs the token."""
        return self.render(
            "pages/confirm.html",
            title=page.title,
            text=self.words.gettext(page.text),
            action=page.action,
            token=token,
            button=self.words.gettext(page.button),
        )

    def reset_form(self, token: str) -> HTMLResponse:
        return self.render(
            "pages/reset_form.html", title=RESET_FORM_TITLE, action="/auth/password/reset/form", token=token
        )


async def _pages(settings: SettingsDep, locale: RequestLocale) -> Pages:
    return Pages(settings, locale)


PagesDep = Annotated[Pages, Depends(_pages)]
