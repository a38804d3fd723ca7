"""The text of the mails the account flows send. Links come from configuration (PUBLIC_BASE_URL and the
*_URL templates), never from the request's Host header."""

from dataclasses import dataclass

from app.core.config import Settings


@dataclass(frozen=True)
class Mail:
    kind: str  # a label for the outbox and its logs
    subject: str
    body: str


def link(template: str, settings: Settings, token: str) -> str:
    return template.format(base=settings.issuer, token=token)


def _hours(seconds: int) -> str:
    return f"{seconds // 3600} hours" if seconds >= 7200 else f"{seconds // 60} minutes"


def verify_email(settings: Settings, token: str) -> Mail:
    return Mail(
        kind="verify_email",
        subject=f"Confirm your email address for {settings.SERVICE_NAME}",
        body=(
            "Confirm that this address is yours by opening this link:\n\n"
            f"{link(settings.VERIFY_EMAIL_URL, settings, token)}\n\n"
            f"The link works once and expires in {_hours(settings.VERIFICATION_TOKEN_TTL_SECONDS)}.\n"
            "If you did not create an account, ignore this message.\n"
        ),
    )


def reset_password(settings: Settings, token: str) -> Mail:
    return Mail(
        kind="reset_password",
        subject=f"Reset your {settings.SERVICE_NAME} password",
        body=(
            "Someone asked to reset the password of the account with this address. To choose a new\n"
            "password, open this link:\n\n"
            f"{link(settings.RESET_PASSWORD_URL, settings, token)}\n\n"
            f"The link works once and expires in {_hours(settings.RESET_TOKEN_TTL_SECONDS)}.\n"
            "If it was not you, ignore this message: your password stays as it is.\n"
        ),
    )


def password_changed(settings: Settings) -> Mail:
    return Mail(
        kind="password_changed",
        subject=f"Your {settings.SERVICE_NAME} password was changed",
        body=(
            "The password of your account was just changed, and every session was signed out.\n"
            "If this was not you, reset your password now and contact your administrator.\n"
        ),
    )


def confirm_email_change(settings: Settings, token: str) -> Mail:
    return Mail(
        kind="confirm_email_change",
        subject=f"Confirm your new email address for {settings.SERVICE_NAME}",
        body=(
            "Confirm that this address should become the sign-in address of your account:\n\n"
            f"{link(settings.CONFIRM_EMAIL_CHANGE_URL, settings, token)}\n\n"
            f"The link works once and expires in {_hours(settings.EMAIL_CHANGE_TOKEN_TTL_SECONDS)}.\n"
            "If you did not ask for this, ignore this message.\n"
        ),
    )


def email_change_requested(settings: Settings, new_email: str, cancel_token: str) -> Mail:
    return Mail(
        kind="email_change_requested",
        subject=f"A change of your {settings.SERVICE_NAME} email address was requested",
        body=(
            f"Someone signed in to your account asked to change its email address to {new_email}.\n"
            "The change takes effect only when the new address confirms it.\n\n"
            "If this was not you, cancel the change with this link, then change your password:\n\n"
            f"{link(settings.CANCEL_EMAIL_CHANGE_URL, settings, cancel_token)}\n\n"
            f"The link works once and expires in {_hours(settings.EMAIL_CHANGE_TOKEN_TTL_SECONDS)}.\n"
        ),
    )


def email_changed(settings: Settings, new_email: str) -> Mail:
    return Mail(
        kind="email_changed",
        subject=f"Your {settings.SERVICE_NAME} email address was changed",
        body=(
            f"The sign-in address of your account is now {new_email}; this address no longer signs in.\n"
            "If this was not you, contact your administrator.\n"
        ),
    )
