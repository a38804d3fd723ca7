"""Jinja2 templates and gettext catalogs: the words of every mail and HTML page pyauth writes.

The shipped templates live in `app/templates/` (`mail/<kind>.subject.txt`, `mail/<kind>.txt`,
`mail/<kind>.html`, `pages/*.html`); a file of the same name in TEMPLATES_DIR wins over the shipped one.
Autoescaping is on for everything but `.txt` templates (plain text has no markup to escape).

Strings are English in the source and translated by the Babel catalogs in `app/locales/<locale>/
LC_MESSAGES/messages.mo`: a locale is supported when its catalog is there, so a new language is a catalog,
not a code change. English needs no catalog.
"""

import re
from dataclasses import dataclass
from functools import lru_cache
from gettext import NullTranslations
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel.support import Translations
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.core.config import Settings

APP_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_ROOT = APP_ROOT / "templates"
LOCALES_ROOT = APP_ROOT / "locales"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
MAX_LOCALE_LENGTH = 16
# An Accept-Language entry: a language range and an optional weight (RFC 9110 section 12.5.4).
_RANGE = re.compile(
    r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([01](?:\.\d{0,3})?))?\s*$"
)
# Longer headers are not read past this: a browser sends a few dozen characters.
_MAX_ACCEPT_LANGUAGE = 1024
# `ui_locales` is read as far as this, and its first few tags only.
_MAX_UI_LOCALES_LENGTH = 256
_MAX_UI_LOCALES = 10


@lru_cache(maxsize=1)
def supported_locales() -> tuple[str, ...]:
    """English, then every locale with a compiled catalog, sorted (read once: the catalogs ship with the
    code)."""
    found = sorted(path.parent.parent.name for path in LOCALES_ROOT.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return (DEFAULT_LOCALE, *(locale for locale in found if locale != DEFAULT_LOCALE))


def negotiate_locale(accept_language: str | None) -> str:
    """The supported locale an `Accept-Language` header prefers most (RFC 9110 section 12.5.4, matched
    on the primary language subtag: `de-AT` gets `de`), else English. A malformed entry is skipped."""
    if not accept_language:
        return DEFAULT_LOCALE
    supported = supported_locales()
    ranked: list[tuple[float, int, str]] = []
    for position, entry in enumerate(accept_language[:_MAX_ACCEPT_LANGUAGE].split(",")):
        match = _RANGE.match(entry)
        if match is None:
            continue
        weight = float(match.group(2)) if match.group(2) else 1.0
        if weight > 0:
            ranked.append((-weight, position, match.group(1).lower()))
    for _, _, language_range in sorted(ranked):
        if language_range == "*":
            return DEFAULT_LOCALE
        primary = language_range.split("-")[0]
        if primary in supported:
            return primary
    return DEFAULT_LOCALE


def ui_locale(ui_locales: str | None) -> str | None:
    """The first supported locale of an OpenID Connect `ui_locales` value (space-separated BCP 47 tags in
    the order the user prefers them, Core §3.1.2.1), matched on the primary language subtag as
    `negotiate_locale` does (`de-CH` gets `de`); None when it names none (the caller falls back to the
    Accept-Language choice). Only the first few tags are read: a browser sends one or two."""
    if not ui_locales:
        return None
    supported = supported_locales()
    for tag in ui_locales[:_MAX_UI_LOCALES_LENGTH].split()[:_MAX_UI_LOCALES]:
        primary = tag.split("-")[0].lower()
        if primary in supported:
            return primary
    return None


def known_locale(locale: str | None) -> str:
    """`locale` if supported (a stored user's locale whose catalog was since removed falls back)."""
    return locale if locale in supported_locales() else DEFAULT_LOCALE


def translations(locale: str) -> NullTranslations:
    if locale == DEFAULT_LOCALE:
        return NullTranslations()
    return _catalog(locale)


@lru_cache(maxsize=16)
def _catalog(locale: str) -> NullTranslations:
    return Translations.load(str(LOCALES_ROOT), [locale], DOMAIN)


@lru_cache(maxsize=32)
def environment(templates_dir: str | None, locale: str) -> Environment:
    """The environment for one override folder and one locale (cached: building it reads no file, but
    its template cache is worth keeping)."""
    loaders = [FileSystemLoader(templates_dir)] if templates_dir else []
    loaders.append(FileSystemLoader(TEMPLATES_ROOT))
    env = Environment(
        loader=ChoiceLoader(loaders),
        # Fail closed: only templates named as plain text are left unescaped.
        autoescape=select_autoescape(
            disabled_extensions=("txt", "css"), default_for_string=True, default=True
        ),
        undefined=StrictUndefined,  # a template naming a value nobody passes fails loudly, not blank
        extensions=["jinja2.ext.i18n"],
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.policies["ext.i18n.trimmed"] = True
    env.globals["locale"] = locale
    return env


def render(templates_dir: str | None, locale: str, name: str, **values: Any) -> str:
    return environment(templates_dir, known_locale(locale)).get_template(name).render(**values)


def N_(message: str) -> str:
    """Mark a string for the catalog without translating it here: it is translated where it is shown."""
    return message


# The look of every HTML page (hosted pages, mailed-link pages): the brand from settings, one stylesheet
# served by pyauth, and the headers every page carries.
STYLESHEET_PATH = "/static/pyauth.css"
STYLESHEET_TEMPLATE = "static/pyauth.css"
# The few pages that need a script (WebAuthn has no form-only API) load these, from pyauth only: a page
# names the ones it needs and only then does its CSP allow `script-src 'self'` and `connect-src 'self'`.
SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "templates" / "static"
SCRIPT_NAMES = frozenset({"passkey-signin.js", "passkey-register.js"})


def script_path(name: str) -> str:
    if name not in SCRIPT_NAMES:
        raise ValueError(f"not one of pyauth's page scripts: {name}")
    return f"/static/{name}"


def script_source(name: str) -> bytes | None:
    """A page script's text, or None for a name that is not one of them (never a path from a request)."""
    if name not in SCRIPT_NAMES:
        return None
    return (SCRIPTS_DIR / name).read_bytes()


def _luminance(colour: str) -> float:
    """Relative luminance of #rrggbb (WCAG 2.2)."""
    channels = []
    for index in (1, 3, 5):
        value = int(colour[index : index + 2], 16) / 255
        channels.append(value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@dataclass(frozen=True)
class Brand:
    """What the templates call `brand`: the name, the logo, and the colours derived from the primary one
    so that text on them stays readable (WCAG 1.4.3, at least 4.5:1)."""

    name: str
    logo_url: str | None
    primary: str  # buttons' background
    on_primary: str  # buttons' text: black or white, whichever contrasts more with `primary`
    link: str  # links on the white page: the primary colour if it is readable there, else near-black

    @classmethod
    def from_settings(cls, settings: Settings) -> "Brand":
        primary = settings.BRAND_PRIMARY_COLOR
        on_primary = "#ffffff" if contrast(primary, "#ffffff") >= contrast(primary, "#000000") else "#000000"
        link = primary if contrast(primary, "#ffffff") >= 4.5 else "#1a1a1a"
        return cls(
            settings.BRAND_NAME or settings.SERVICE_NAME, settings.BRAND_LOGO_URL, primary, on_primary, link
        )


def page_csp(settings: Settings, *, scripts: bool = False) -> str:
    """No script at all (or, with `scripts`, pyauth's own page scripts and their same-origin requests);
    styles from pyauth's stylesheet only; images from pyauth and the logo's origin; forms post to pyauth
    only; never framed (clickjacking)."""
    images = "'self'"
    logo = settings.BRAND_LOGO_URL
    if logo and logo.startswith("https://"):
        parts = urlsplit(logo)
        images += f" https://{parts.netloc}"
    script = "script-src 'self'; connect-src 'self'; " if scripts else ""
    return (
        f"default-src 'none'; {script}style-src 'self'; img-src {images}; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def page_headers(settings: Settings) -> dict[str, str]:
    """The headers of every HTML page: its CSP, never cached (it may hold a token or a CSRF token), no
    Referer to wherever a link on it leads (`X-Content-Type-Options: nosniff` comes from the middleware,
    `app.core.security.SecurityHeaders`, on every answer)."""
    return {
        "Content-Security-Policy": page_csp(settings),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }


def stylesheet(settings: Settings) -> str:
    """The one stylesheet, rendered with the brand's colours (TEMPLATES_DIR may replace it too)."""
    return (
        environment(settings.TEMPLATES_DIR, DEFAULT_LOCALE)
        .get_template(STYLESHEET_TEMPLATE)
        .render(brand=Brand.from_settings(settings))
    )
