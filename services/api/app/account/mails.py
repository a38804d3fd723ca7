"""The mails the account flows send, rendered from the templates `mail/<kind>.subject.txt`,
`mail/<kind>.txt` and `mail/<kind>.html` (see `app.core.templating`) in the recipient's locale. Links
come from configuration (PUBLIC_BASE_URL and the *_URL templates), never from the request's Host header."""

from dataclasses import dataclass
from typing import Any

from app.core import templating
from app.core.config import Settings


@dataclass(frozen=True)
class Mail:
    kind: str  # a label for the outbox and its logs; also the templates' name
    subject: str
    body: str  # the text/plain part
    html: str  # the text/html alternative


def link(template: str, settings: Settings, token: str) -> str:
    return template.format(base=settings.issuer, token=token)


def duration(seconds: int, locale: str) -> str:
    """A link's lifetime in words: hours from two hours up, minutes below."""
    words = templating.translations(templating.known_locale(locale))
    if seconds >= 7200:
        hours = seconds // 3600
        return words.ngettext("%(num)d hour", "%(num)d hours", hours) % {"num": hours}
    minutes = seconds // 60
    return words.ngettext("%(num)d minute", "%(num)d minutes", minutes) % {"num": minutes}


def render(kind: str, settings: Settings, locale: str, **values: Any) -> Mail:
    """The three parts of one mail. The subject is one line whatever an override template holds."""
    values = {"service_name": settings.SERVICE_NAME, **values}

    def part(suffix: str) -> str:
        return templating.render(settings.TEMPLATES_DIR, locale, f"mail/{kind}.{suffix}", **values)

    values["subject"] = " ".join(part("subject.txt").split())
    return Mail(kind=kind, subject=values["subject"], body=part("txt"), html=part("html"))


def verify_email(settings: Settings, token: str, locale: str) -> Mail:
    return render(
        "verify_email",
        settings,
        locale,
        link=link(settings.VERIFY_EMAIL_URL, settings, token),
        expires_in=duration(settings.VERIFICATION_TOKEN_TTL_SECONDS, locale),
    )


def reset_password(settings: Settings, token: str, locale: str) -> Mail:
    return render(
        "reset_password",
        settings,
        locale,
        link=link(settings.RESET_PASSWORD_URL, settings, token),
        expires_in=duration(settings.RESET_TOKEN_TTL_SECONDS, locale),
    )


def password_changed(settings: Settings, locale: str) -> Mail:
    return render("password_changed", settings, locale)


def confirm_email_change(settings: Settings, token: str, locale: str) -> Mail:
    return render(
        "confirm_email_change",
        settings,
        locale,
        link=link(settings.CONFIRM_EMAIL_CHANGE_URL, settings, token),
        expires_in=duration(settings.EMAIL_CHANGE_TOKEN_TTL_SECONDS, locale),
    )


def email_change_requested(settings: Settings, new_email: str, cancel_token: str, locale: str) -> Mail:
    return render(
        "email_change_requested",
        settings,
        locale,
        new_email=new_email,
        link=link(settings.CANCEL_EMAIL_CHANGE_URL, settings, cancel_token),
        expires_in=duration(settings.EMAIL_CHANGE_TOKEN_TTL_SECONDS, locale),
    )


def email_changed(settings: Settings, new_email: str, locale: str) -> Mail:
    return render("email_changed", settings, locale, new_email=new_email)


# Every mail kind: each has the three templates.
KINDS = (
    "verify_email",
    "reset_password",
    "password_changed",
    "confirm_email_change",
    "email_change_requested",
    "email_changed",
)
