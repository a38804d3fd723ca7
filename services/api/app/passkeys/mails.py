"""The notices mailed when a passkey is added to or removed from an account (templates
`mail/passkey_added.*` and `mail/passkey_removed.*`, English and German)."""

from app.account.mails import Mail, render
from app.core.config import Settings

KINDS = ("passkey_added", "passkey_removed")

__all__ = ["KINDS", "Mail", "passkey_added", "passkey_removed"]


def passkey_added(settings: Settings, locale: str, name: str) -> Mail:
    return render("passkey_added", settings, locale, passkey_name=name)


def passkey_removed(settings: Settings, locale: str, name: str) -> Mail:
    return render("passkey_removed", settings, locale, passkey_name=name)
