"""The notices second factors send (rendered like the account mails: `mail/<kind>.*` templates, in the
recipient's locale): a factor was added or removed, recovery codes were replaced, one was used."""

from enum import StrEnum

from app.account.mails import Mail, render
from app.core.config import Settings


class FactorChange(StrEnum):
    TOTP_ENABLED = "totp_enabled"
    TOTP_REMOVED = "totp_removed"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    RESET_BY_ADMIN = "reset_by_admin"


def mfa_changed(settings: Settings, locale: str, change: FactorChange) -> Mail:
    return render("mfa_changed", settings, locale, change=change.value)


def recovery_code_used(settings: Settings, locale: str, *, remaining: int) -> Mail:
    return render("recovery_code_used", settings, locale, remaining=remaining)


# Every mail kind of this package: each has the three templates.
KINDS = ("mfa_changed", "recovery_code_used")
