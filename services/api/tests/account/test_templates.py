"""Issue 10 item 8: mails and link pages come from Jinja2 templates (autoescaped), a mounted
TEMPLATES_DIR overrides them by name, and their words come from gettext catalogs: English and German,
chosen by the user's `locale` (set from Accept-Language at registration, RFC 9110 section 12.5.4)."""

import configparser
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import pytest
from babel.messages.catalog import Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import mails, pages
from app.account.pages import Pages
from app.account.service import TokenExpired, TokenInvalid, TokenSuperseded, TokenUsed
from app.core.config import Settings
from app.core.templating import APP_ROOT, LOCALES_ROOT, negotiate_locale, supported_locales
from app.users.models import User
from tests.account.helpers import last_mail_to
from tests.auth.helpers import PASSWORD, unique_email
from tests.conftest import make_settings

TOKEN = "tok-" + "x" * 40
NEW_EMAIL = "new@example.org"
LOCALES = ("en", "de")

# Each mail kind, rendered with sample values: whether it carries a link.
MAILS: dict[str, tuple[Callable[[Settings, str], mails.Mail], bool]] = {
    "verify_email": (lambda s, locale: mails.verify_email(s, TOKEN, locale), True),
    "reset_password": (lambda s, locale: mails.reset_password(s, TOKEN, locale), True),
    "password_changed": (mails.password_changed, False),
    "confirm_email_change": (lambda s, locale: mails.confirm_email_change(s, TOKEN, locale), True),
    "email_change_requested": (
        lambda s, locale: mails.email_change_requested(s, NEW_EMAIL, TOKEN, locale),
        True,
    ),
    "email_changed": (lambda s, locale: mails.email_changed(s, NEW_EMAIL, locale), False),
}


def test_german_and_english_are_the_shipped_languages() -> None:
    assert supported_locales() == ("en", "de")
    assert set(MAILS) == set(mails.KINDS)


@pytest.mark.parametrize("kind", mails.KINDS)
def test_every_mail_renders_as_text_and_html_in_english_and_german(kind: str) -> None:
    settings = make_settings(SERVICE_NAME="Acme ID")
    build, has_link = MAILS[kind]
    rendered = {locale: build(settings, locale) for locale in LOCALES}
    for locale, mail in rendered.items():
        assert mail.kind == kind
        assert "\n" not in mail.subject and mail.subject.strip() == mail.subject
        assert mail.body.strip() and "<" not in mail.body.replace(NEW_EMAIL, "")
        assert f'<html lang="{locale}">' in mail.html
        assert f"<title>{mail.subject}</title>" in mail.html
        assert "{{" not in mail.body + mail.html and "{%" not in mail.body + mail.html
        if has_link:
            link = mail.body.split(TOKEN)[0].split()[-1] + TOKEN
            assert link.startswith(settings.issuer)
            assert f'href="{link}"' in mail.html
        if kind.startswith("email_change") or kind == "email_changed":
            assert NEW_EMAIL in mail.body and NEW_EMAIL in mail.html
    english, german = rendered["en"], rendered["de"]
    assert german.subject != english.subject and german.body != english.body and german.html != english.html
    assert any(word in german.body for word in ("Sie", "Ihr")), german.body


def test_a_link_lifetime_is_written_in_the_mail_language() -> None:
    settings = make_settings(RESET_TOKEN_TTL_SECONDS=30 * 60, VERIFICATION_TOKEN_TTL_SECONDS=24 * 3600)
    assert "expires in 30 minutes" in mails.reset_password(settings, TOKEN, "en").body
    assert "läuft in 30 Minuten ab" in mails.reset_password(settings, TOKEN, "de").body
    assert "läuft in 24 Stunden ab" in mails.verify_email(settings, TOKEN, "de").body


def every_page(page: Pages) -> dict[str, HTMLResponse]:
    return {
        "verify": page.confirm_button(pages.VERIFY_EMAIL, token=TOKEN),
        "confirm": page.confirm_button(pages.CONFIRM_EMAIL_CHANGE, token=TOKEN),
        "cancel": page.confirm_button(pages.CANCEL_EMAIL_CHANGE, token=TOKEN),
        "reset": page.reset_form(TOKEN),
        "verified": page.message(pages.EMAIL_VERIFIED),
        "changed": page.message(pages.EMAIL_CHANGED, email=NEW_EMAIL),
        "password": page.message(pages.PASSWORD_CHANGED),
        "cancelled": page.message(pages.EMAIL_CHANGE_CANCELLED),
        "refused": page.refused(pages.NOT_VERIFIED, TokenUsed()),
    }


def test_every_page_renders_in_english_and_german_with_its_csp_and_no_store() -> None:
    settings = make_settings()
    rendered = {locale: every_page(Pages(settings, locale)) for locale in LOCALES}
    for locale, responses in rendered.items():
        for name, response in responses.items():
            html = bytes(response.body).decode()
            assert f'<html lang="{locale}">' in html, name
            assert response.headers["content-security-policy"].startswith("default-src 'none'")
            assert response.headers["cache-control"] == "no-store"
            assert "<script" not in html.lower() and "{{" not in html, name
            if name in {"verify", "confirm", "cancel", "reset"}:
                assert f'name=token value="{TOKEN}"' in html, name
    for name in rendered["en"]:
        assert bytes(rendered["de"][name].body) != bytes(rendered["en"][name].body), name
    assert "Bestätigen Sie Ihre E-Mail-Adresse" in bytes(rendered["de"]["verify"].body).decode()
    assert "already used" in bytes(rendered["en"]["refused"].body).decode()
    assert "bereits benutzt" in bytes(rendered["de"]["refused"].body).decode()


@pytest.mark.parametrize("error", [TokenInvalid, TokenUsed, TokenExpired, TokenSuperseded])
def test_a_refused_link_says_why_in_german(error: type[TokenInvalid]) -> None:
    """The link errors are marked for the catalog, so a refused link's page is German all through."""
    german = bytes(Pages(make_settings(), "de").refused(pages.NOT_VERIFIED, error()).body).decode()
    assert "E-Mail-Adresse nicht bestätigt" in german
    assert "Fordern Sie einen neuen an." in german
    assert error.message not in german


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("de-AT,de;q=0.9,en;q=0.8", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr-CH, fr;q=0.9, de;q=0.7, *;q=0.5", "de"),
        ("fr, *;q=0.5", "en"),
        ("de;q=0, en", "en"),
        ("en;q=0.5, DE;q=0.8", "de"),
        ("x" * 5000, "en"),
        ("de;q=banana, ;;, de", "de"),
    ],
)
def test_the_locale_is_the_supported_one_accept_language_prefers(header: str | None, locale: str) -> None:
    """RFC 9110 section 12.5.4: weights order the ranges, q=0 refuses one, a malformed entry is skipped,
    a primary subtag matches (`de-AT` gets `de`), and nothing supported means English."""
    assert negotiate_locale(header) == locale


async def test_registration_with_a_german_accept_language_makes_a_german_account(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    german, english = unique_email("de"), unique_email("en")
    for email, header in ((german, "de-CH,de;q=0.9,en;q=0.5"), (english, "fr-FR")):
        answer = await client.post(
            "/auth/register",
            json={"email": email, "password": PASSWORD},
            headers={"Accept-Language": header},
        )
        assert answer.status_code == 201, answer.text
    rows = await db_session.execute(select(User.email, User.locale).where(User.email.in_([german, english])))
    locales = {email: locale for email, locale in rows}
    assert locales == {german: "de", english: "en"}
    assert (await last_mail_to(db_session, german, "verify_email")).subject.startswith("Bestätigen Sie")
    assert (await last_mail_to(db_session, english, "verify_email")).subject.startswith("Confirm")


async def test_the_mails_of_an_account_follow_its_locale_not_the_request(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email("de")
    headers = {"Accept-Language": "de"}
    assert (
        await client.post("/auth/register", json={"email": email, "password": PASSWORD}, headers=headers)
    ).status_code == 201
    # An English browser asks for the reset: the account's language decides.
    await client.post("/auth/password/forgot", json={"email": email}, headers={"Accept-Language": "en"})
    mail = await last_mail_to(db_session, email, "reset_password")
    assert mail.subject.startswith("Setzen Sie Ihr Passwort")
    assert "Passwort" in mail.body


async def test_a_link_page_speaks_the_browser_language(client: httpx.AsyncClient) -> None:
    german = await client.get(f"/auth/password/reset?token={TOKEN}", headers={"Accept-Language": "de-DE"})
    assert german.status_code == 200
    assert '<html lang="de">' in german.text and "Neues Passwort wählen" in german.text
    english = await client.get(f"/auth/password/reset?token={TOKEN}")
    assert '<html lang="en">' in english.text and "Choose a new password" in english.text


async def test_a_hostile_value_is_escaped_on_a_page(client: httpx.AsyncClient) -> None:
    hostile = '"><script>alert(1)</script><input name="x'
    page = await client.get("/auth/password/reset", params={"token": hostile})
    assert page.status_code == 200
    assert "<script" not in page.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert page.text.count("<input") == 2  # the hidden token and the password, nothing injected
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["cache-control"] == "no-store"


def test_a_hostile_value_is_escaped_in_the_html_mail_and_kept_in_the_text() -> None:
    hostile = 'a"<img src=x onerror=alert(1)>@example.org'
    mail = mails.email_change_requested(make_settings(SERVICE_NAME="<b>Acme</b>"), hostile, TOKEN, "en")
    assert "<img" not in mail.html and "<b>" not in mail.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in mail.html and "&lt;b&gt;Acme&lt;/b&gt;" in mail.html
    assert hostile in mail.body, "plain text is not escaped: there is no markup to break out of"


def test_a_templates_dir_overrides_shipped_templates_by_name(tmp_path: Path) -> None:
    (tmp_path / "mail").mkdir()
    (tmp_path / "pages").mkdir()
    (tmp_path / "mail" / "verify_email.subject.txt").write_text("{{ _('Welcome') }} to {{ service_name }}\n")
    (tmp_path / "pages" / "base.html").write_text(
        '<!doctype html><html lang="{{ locale }}"><title>{{ title }}</title><body class=acme>'
        "{% block content %}{% endblock %}</body></html>"
    )
    settings = make_settings(TEMPLATES_DIR=str(tmp_path), SERVICE_NAME="<Acme>")
    mail = mails.verify_email(settings, TOKEN, "de")
    assert mail.subject == "Welcome to <Acme>"  # overridden (an unknown msgid stays as written)
    assert "Bestätigen Sie, dass diese Adresse Ihnen gehört" in mail.body  # shipped, still German
    assert "<title>Welcome to &lt;Acme&gt;</title>" in mail.html  # the override reaches the HTML part too
    page = bytes(Pages(settings, "de").confirm_button(pages.VERIFY_EMAIL, token=TOKEN).body).decode()
    assert "<body class=acme>" in page and "Bestätigen Sie Ihre E-Mail-Adresse" in page
    assert f'name=token value="{TOKEN}"' in page  # the shipped pages/confirm.html, in the new layout


def test_a_templates_dir_that_is_not_a_folder_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="TEMPLATES_DIR"):
        make_settings(TEMPLATES_DIR=str(tmp_path / "missing"))
    assert make_settings(TEMPLATES_DIR="").TEMPLATES_DIR is None


def catalog_of(messages: Iterable[Message]) -> dict[object, object]:
    """Each translated message's id and translation, plural forms as tuples."""

    def plain(value: object) -> object:
        return tuple(value) if isinstance(value, list | tuple) else value

    return {plain(m.id): plain(m.string) for m in messages if m.id and m.string}


def test_the_compiled_catalogs_match_their_po_files() -> None:
    """The image ships the compiled `.mo` files; a `.po` edited without `pybabel compile` fails here."""
    po_files = sorted(LOCALES_ROOT.glob("*/LC_MESSAGES/messages.po"))
    assert [path.parent.parent.name for path in po_files] == ["de"]
    for po_path in po_files:
        with po_path.open("rb") as po_file:
            source = read_po(po_file)
        with po_path.with_suffix(".mo").open("rb") as mo_file:
            compiled = read_mo(mo_file)
        assert catalog_of(compiled) == catalog_of(source)


def test_every_string_to_translate_has_a_german_translation() -> None:
    """What `pybabel extract -F app/locales/babel.cfg -k N_` finds in the code and templates is all in
    the German catalog: a new English string without its translation fails here."""
    config = configparser.RawConfigParser()
    assert config.read(LOCALES_ROOT / "babel.cfg"), "app/locales/babel.cfg is shipped with the code"
    sections = [section.split(":", 1) for section in config.sections()]
    method_map = [(pattern.strip(), method) for method, pattern in sections]
    options_map = {pattern: dict(config.items(f"{method}: {pattern}")) for pattern, method in method_map}
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    wanted = {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(str(APP_ROOT), method_map, options_map, keywords=keywords)
    }
    assert len(wanted) > 40
    with (LOCALES_ROOT / "de" / "LC_MESSAGES" / "messages.po").open("rb") as po_file:
        german = {
            message.id if isinstance(message.id, str) else message.id[0]
            for message in read_po(po_file)
            if message.id and all(message.string if isinstance(message.string, tuple) else [message.string])
        }
    assert wanted - german == set()
