"""The MFA notices render as text and HTML, in English and German, like every other mail."""

import pytest

from app.account import mails as account_mails
from app.mfa import mails
from tests.conftest import make_settings


@pytest.mark.parametrize("change", list(mails.FactorChange))
def test_every_factor_change_notice_renders_in_english_and_german(change: mails.FactorChange) -> None:
    settings = make_settings(SERVICE_NAME="Acme ID")
    english, german = (mails.mfa_changed(settings, locale, change) for locale in ("en", "de"))
    _check(english, german)


def test_the_recovery_code_notice_renders_in_english_and_german_with_the_codes_left() -> None:
    settings = make_settings(SERVICE_NAME="Acme ID")
    english, german = (mails.recovery_code_used(settings, locale, remaining=7) for locale in ("en", "de"))
    _check(english, german)
    assert "7" in english.body and "7" in german.body and "Acme ID" in german.subject


def _check(english: account_mails.Mail, german: account_mails.Mail) -> None:
    for locale, mail in (("en", english), ("de", german)):
        assert mail.kind in mails.KINDS
        assert "\n" not in mail.subject and mail.subject.strip() == mail.subject
        assert f'<html lang="{locale}">' in mail.html and f"<title>{mail.subject}</title>" in mail.html
        assert "{{" not in mail.body + mail.html and "{%" not in mail.body + mail.html
    assert german.subject != english.subject and german.body != english.body
    assert any(word in german.body for word in ("Sie", "Ihr")), german.body
