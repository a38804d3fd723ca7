"""Issue 11: the hosted pages (sign in, sign up, forgot password, sign out, account) and the browser SSO
session behind them: cookie attributes, the login pipeline's throttling and enumeration safety, CSRF,
`return_to` without open redirects, the headers of every page, German and English, and overridable
templates."""

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.auth.sessions import SessionEndReason, end_sessions
from app.core import templating
from app.core.clock import ManualClock
from app.core.context import RequestContext
from app.core.opaque_tokens import digest
from app.main import create_app
from app.sso.models import BrowserSession
from app.users.models import User
from tests.auth.helpers import PASSWORD, fresh_password, password_grant, register, tokens_of, unique_email
from tests.conftest import make_settings, started_in_test_transaction
from tests.web.helpers import csrf_token_of, form_token, sign_in

WRONG = "not-the-password-at-all"
PAGES = ("/signin", "/signup", "/forgot", "/signed-out", "/signout", "/account")
# The pages that load pyauth's own scripts (WebAuthn has no form-only API), and which ones.
PAGE_SCRIPTS = {"/signin": ["/static/passkey-signin.js"]}


async def browser_session_of(db: AsyncSession, email: str) -> BrowserSession:
    user = await db.scalar(select(User).where(User.email == email))
    assert user is not None
    found = await db.scalar(
        select(BrowserSession)
        .where(BrowserSession.user_id == user.id)
        .order_by(BrowserSession.created_at.desc())
    )
    assert found is not None
    await db.refresh(found)
    return found


async def test_sign_in_sets_a_host_prefixed_httponly_secure_lax_sso_cookie(
    app: FastAPI, db_session: AsyncSession
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"PUBLIC_BASE_URL": "https://auth.example.com"})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        email = unique_email()
        assert (await register(client, email)).status_code == 201
        response = await sign_in(client, email, return_to="/oauth2/authorize?client_id=a&state=x")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/oauth2/authorize?client_id=a&state=x"
    cookies = [SimpleCookie(value) for value in response.headers.get_list("set-cookie")]
    sso = next(cookie["__Host-pyauth_sso"] for cookie in cookies if "__Host-pyauth_sso" in cookie)
    assert sso["path"] == "/" and sso["secure"] and sso["httponly"] and sso["samesite"] == "lax"
    assert not sso["domain"]
    assert int(sso["max-age"]) == app.state.settings.SSO_SESSION_ABSOLUTE_TTL_SECONDS
    row = await browser_session_of(db_session, email)
    assert row.token_hash == digest(sso.value), "only the digest of the cookie is stored"
    assert row.amr == ["pwd"] and row.ended_at is None
    assert row.expires_at - row.created_at == timedelta(
        seconds=app.state.settings.SSO_SESSION_ABSOLUTE_TTL_SECONDS
    )
    csrf = next(cookie["__Host-pyauth_csrf"] for cookie in cookies if "__Host-pyauth_csrf" in cookie)
    assert csrf["secure"] and csrf["httponly"] and csrf["path"] == "/"
    device = next(cookie["pyauth_device"] for cookie in cookies if "pyauth_device" in cookie)
    assert device["path"] == "/signin" and device["secure"] and device["httponly"]


async def test_the_sso_cookie_has_no_prefix_and_no_secure_only_on_plain_http_loopback(
    client: httpx.AsyncClient,
) -> None:
    """`__Host-` requires Secure, which a browser drops on http://localhost: there the name goes without."""
    email = unique_email()
    await register(client, email)
    response = await sign_in(client, email)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    sso = SimpleCookie(
        next(v for v in response.headers.get_list("set-cookie") if v.startswith("pyauth_sso="))
    )
    assert not sso["pyauth_sso"]["secure"] and sso["pyauth_sso"]["httponly"]
    account = await client.get("/account")
    assert account.status_code == 200 and email in account.text


async def test_a_wrong_password_shows_the_same_page_for_unknown_and_known_accounts(
    client: httpx.AsyncClient,
) -> None:
    known = unique_email()
    await register(client, known)
    token = await form_token(client)
    answers = []
    for email in (known, unique_email()):
        response = await client.post("/signin", data={"email": email, "password": WRONG, "csrf_token": token})
        answers.append((response.status_code, response.text.replace(email, "EMAIL")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 400
    assert "The email address or the password is not right." in answers[0][1]


async def test_the_page_and_the_api_share_the_login_throttle(client: httpx.AsyncClient, app: FastAPI) -> None:
    """Failures through the API count for the page and the other way round: one counter per account."""
    email = unique_email()
    await register(client, email)
    free = app.state.settings.LOGIN_FREE_ATTEMPTS
    token = await form_token(client)
    for attempt in range(free):
        if attempt % 2:
            assert (await password_grant(client, email, WRONG)).status_code == 400
        else:
            page = await client.post("/signin", data={"email": email, "password": WRONG, "csrf_token": token})
            assert page.status_code == 400
    throttled = await client.post("/signin", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert throttled.status_code == 429
    assert "Retry-After" in throttled.headers
    assert "Too many failed attempts" in throttled.text
    assert (await password_grant(client, email)).status_code == 429


async def test_a_sign_in_issues_a_device_token_that_the_next_sign_in_presents(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    assert (await sign_in(client, email)).status_code == 303
    device = client.cookies.get("pyauth_device")
    assert device
    token = await form_token(client)
    again = await client.post("/signin", data={"email": email, "password": WRONG, "csrf_token": token})
    assert again.request.headers["cookie"].count("pyauth_device=") == 1


async def test_csrf_missing_token_is_refused(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    await client.get("/signin")  # the cookie, but no token in the form
    for path, data in {
        "/signin": {"email": email, "password": PASSWORD},
        "/signup": {"email": unique_email(), "password": PASSWORD},
        "/forgot": {"email": email},
        "/signout": {},
    }.items():
        response = await client.post(path, data=data)
        assert response.status_code == 400, path
        assert "did not come from this site" in response.text, path
    assert "pyauth_sso" not in client.cookies


async def test_csrf_forged_token_is_refused(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    real = await form_token(client)
    for forged in (real[:-1] + ("A" if real[-1] != "A" else "B"), "x" * len(real), "", real.upper()):
        response = await client.post(
            "/signin", data={"email": email, "password": PASSWORD, "csrf_token": forged}
        )
        assert response.status_code == 400, forged
    # A token is bound to its cookie: another browser's token is forged here.
    transport = httpx.ASGITransport(app=client._transport.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        others = await form_token(other)
    response = await client.post("/signin", data={"email": email, "password": PASSWORD, "csrf_token": others})
    assert response.status_code == 400
    # No cookie at all, whatever the token.
    client.cookies.clear()
    response = await client.post("/signin", data={"email": email, "password": PASSWORD, "csrf_token": real})
    assert response.status_code == 400
    assert (await sign_in(client, email)).status_code == 303, "the genuine form still works"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/%2F/evil.example",
        "/%2f%2fevil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%5cevil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "/\tevil",
        " //evil.example",
        "evil.example",
        "///evil.example",
    ],
)
async def test_return_to_open_redirect_attempts_are_refused(client: httpx.AsyncClient, target: str) -> None:
    email = unique_email()
    await register(client, email)
    page = await client.get("/signin", params={"return_to": target})
    assert page.status_code == 400 and "not on this server" in page.text
    response = await sign_in(client, email, return_to=target)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "pyauth_sso" not in client.cookies


async def test_return_to_keeps_a_local_path_with_its_query(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    target = "/oauth2/authorize?redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=a%20b"
    page = await client.get("/signin", params={"return_to": target})
    assert page.status_code == 200 and 'name="return_to"' in page.text
    response = await sign_in(client, email, return_to=target)
    assert response.status_code == 303 and response.headers["location"] == target


async def test_sign_out_ends_the_session_row_and_clears_the_cookie(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    confirm = await client.get("/signout")
    assert confirm.status_code == 200
    response = await client.post("/signout", data={"csrf_token": csrf_token_of(confirm)})
    assert response.status_code == 303 and response.headers["location"] == "/signed-out"
    assert "pyauth_sso" not in client.cookies
    row = await browser_session_of(db_session, email)
    assert row.ended_at is not None and row.ended_reason == "signed_out"
    assert (await client.get("/account")).status_code == 303


async def test_a_stolen_cookie_stops_working_after_sign_out(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    stolen = client.cookies.get("pyauth_sso")
    confirm = await client.get("/signout")
    await client.post("/signout", data={"csrf_token": csrf_token_of(confirm)})
    client.cookies.set("pyauth_sso", stolen or "")
    assert (await client.get("/account")).status_code == 303


async def test_a_password_change_through_the_api_ends_the_browser_session(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    assert (await client.get("/account")).status_code == 200
    tokens = tokens_of(await password_grant(client, email))
    changed = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": fresh_password()},
        headers=tokens.bearer,
    )
    assert changed.status_code == 204, changed.text
    row = await browser_session_of(db_session, email)
    assert row.ended_reason == "password_changed"
    assert (await client.get("/account")).status_code == 303


async def test_logout_all_ends_the_browser_session(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    tokens = tokens_of(await password_grant(client, email))
    assert (await client.post("/auth/logout-all", headers=tokens.bearer)).status_code == 204
    assert (await browser_session_of(db_session, email)).ended_reason == "logout_all"
    assert (await client.get("/account")).status_code == 303


async def test_a_browser_session_ends_after_its_idle_lifetime(
    client: httpx.AsyncClient, app: FastAPI, clock: ManualClock
) -> None:
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    assert (await client.get("/account")).status_code == 200
    clock.advance(timedelta(seconds=app.state.settings.SSO_SESSION_IDLE_TTL_SECONDS + 1))
    assert (await client.get("/account")).status_code == 303


@pytest.mark.parametrize("path", PAGES)
async def test_frame_ancestors_none_on_every_page(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, follow_redirects=True)
    assert response.status_code == 200, path
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and csp.startswith("default-src 'none'")
    assert "unsafe-" not in csp and "'strict-dynamic'" not in csp and "data:" not in csp
    scripts = PAGE_SCRIPTS.get(response.url.path)  # /account, signed out, is the sign-in page
    if scripts is None:
        assert "script-src" not in csp and "<script" not in response.text
    else:
        assert "script-src 'self';" in csp and "connect-src 'self';" in csp
        # Only the named scripts, from this origin, none inline.
        assert re.findall(r"<script[^>]*>", response.text) == [
            f'<script src="{src}" defer>' for src in scripts
        ]
        assert re.findall(r"<script[^>]*>([^<]*)</script>", response.text) == [""] * len(scripts)
        assert not re.search(r"\son[a-z]+=", response.text) and "javascript:" not in response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<link rel="stylesheet" href="/static/pyauth.css">' in response.text


async def test_refusals_and_redirects_carry_the_page_headers(client: httpx.AsyncClient) -> None:
    for response in (
        await client.post("/signin", data={"email": "a@example.org", "password": "x"}),
        await client.get("/account"),
        await client.get("/signin", params={"return_to": "//evil.example"}),
    ):
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", PAGES)
async def test_each_page_renders_in_english_and_german(client: httpx.AsyncClient, path: str) -> None:
    english = await client.get(path, headers={"Accept-Language": "en"}, follow_redirects=True)
    german = await client.get(path, headers={"Accept-Language": "de-DE,de;q=0.9"}, follow_redirects=True)
    assert '<html lang="en">' in english.text and '<html lang="de">' in german.text
    assert english.text.replace(csrf_token_of_or_empty(english), "") != german.text.replace(
        csrf_token_of_or_empty(german), ""
    )
    german_words = {"/signin": "Anmelden", "/signup": "Konto anlegen", "/forgot": "Link senden"}
    if path in german_words:
        assert german_words[path] in german.text


def csrf_token_of_or_empty(page: httpx.Response) -> str:
    return csrf_token_of(page) if 'name="csrf_token"' in page.text else ""


async def test_the_signed_in_page_renders_in_german(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    page = await client.get("/account", headers={"Accept-Language": "de"})
    assert f"Sie sind als <strong>{email}</strong> angemeldet." in page.text


async def test_a_field_error_is_next_to_its_field_and_described_by_it(client: httpx.AsyncClient) -> None:
    token = await form_token(client, "/signup")
    response = await client.post(
        "/signup", data={"email": unique_email(), "password": "short", "csrf_token": token}
    )
    assert response.status_code == 422
    assert 'aria-describedby="password-hint password-error"' in response.text
    assert (
        '<p class="error" id="password-error">This password is too short: use at least 15 characters.</p>'
        in (response.text)
    )
    assert 'aria-invalid="true"' in response.text
    assert '<label for="email">' in response.text and 'id="email"' in response.text


async def test_sign_up_uses_the_registration_service(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    token = await form_token(client, "/signup")
    response = await client.post("/signup", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 200 and "We sent a link to" in response.text
    assert await db_session.scalar(select(User).where(User.email == email)) is not None
    again = await client.post("/signup", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert again.status_code == 409
    assert 'id="email-error"' in again.text
    assert (await register(client, email)).status_code == 409, "the same rule as the API"


async def test_forgot_password_answers_the_same_for_unknown_and_known_accounts(
    client: httpx.AsyncClient,
) -> None:
    known = unique_email()
    await register(client, known)
    token = await form_token(client, "/forgot")
    answers = [
        (r.status_code, r.text)
        for r in [
            await client.post("/forgot", data={"email": email, "csrf_token": token})
            for email in (known, unique_email())
        ]
    ]
    assert answers[0] == answers[1] and answers[0][0] == 200


async def test_the_stylesheet_is_served_with_the_brand_colour(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"BRAND_PRIMARY_COLOR": "#f5d90a"})
    response = await client.get("/static/pyauth.css")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")
    assert "--primary: #f5d90a" in response.text
    assert "--on-primary: #000000" in response.text, "black text on a light button"
    assert "max-width" in response.text and ":focus-visible" in response.text


def test_the_default_brand_colours_contrast_at_least_4_5_to_1() -> None:
    brand = templating.Brand.from_settings(make_settings())
    assert templating.contrast(brand.primary, brand.on_primary) >= 4.5
    assert templating.contrast(brand.link, "#ffffff") >= 4.5
    for colour in ("#ffff00", "#00ff00", "#777777", "#000080"):
        light = templating.Brand.from_settings(make_settings(BRAND_PRIMARY_COLOR=colour))
        assert templating.contrast(light.primary, light.on_primary) >= 4.5, colour
        assert templating.contrast(light.link, "#ffffff") >= 4.5, colour


@pytest.mark.parametrize("value", ["red", "#fff", "#12345g", "#123456;} body{x:y", "url(x)"])
def test_brand_primary_color_must_be_a_hex_colour(value: str) -> None:
    with pytest.raises(ValueError, match="BRAND_PRIMARY_COLOR"):
        make_settings(BRAND_PRIMARY_COLOR=value)


@pytest.mark.parametrize(
    "value", ["//evil.example/x.png", "http://cdn.example/logo.png", "javascript:x", 'x" onload="']
)
def test_brand_logo_url_must_be_local_or_https(value: str) -> None:
    with pytest.raises(ValueError, match="BRAND_LOGO_URL"):
        make_settings(BRAND_LOGO_URL=value)


async def test_the_brand_reaches_every_page_and_the_logo_origin_the_csp(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"BRAND_NAME": "Acme <ID>", "BRAND_LOGO_URL": "https://cdn.acme.example/logo.svg"}
    )
    page = await client.get("/signin")
    assert "Acme &lt;ID&gt;" in page.text and 'src="https://cdn.acme.example/logo.svg"' in page.text
    assert "img-src 'self' https://cdn.acme.example;" in page.headers["content-security-policy"]
    reset = await client.get("/auth/password/reset", params={"token": "t" * 20})
    assert "Acme &lt;ID&gt;" in reset.text and "/static/pyauth.css" in reset.text, (
        "the mailed-link pages share it"
    )


@pytest.fixture
async def overridden_app(
    tmp_path: Path, engine: AsyncEngine, db_session: AsyncSession, clock: ManualClock
) -> AsyncIterator[FastAPI]:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "signin.html").write_text(
        '<!doctype html><html lang="{{ locale }}"><title>{{ title }}</title><body class=acme>'
        '<form method=post action="{{ action }}">'
        '<input type=hidden name="csrf_token" value="{{ csrf_token }}">'
        "<input name=email><input name=password type=password>"
        "<button>{{ _('Sign in') }}</button></form></body></html>"
    )
    settings = make_settings(TEMPLATES_DIR=str(tmp_path))
    async with started_in_test_transaction(create_app(settings, clock=clock), db_session) as application:
        yield application


async def test_a_page_works_with_an_overridden_template_folder(overridden_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=overridden_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        email = unique_email()
        await register(client, email)
        page = await client.get("/signin", headers={"Accept-Language": "de"})
        assert "<body class=acme>" in page.text and "<button>Anmelden</button>" in page.text
        response = await client.post(
            "/signin", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token_of(page)}
        )
        assert response.status_code == 303
        signup = await client.get("/signup")
        assert "/static/pyauth.css" in signup.text, "the pages not overridden stay the shipped ones"


async def test_a_sign_in_replaces_the_browser_session_it_had(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    first = await browser_session_of(db_session, email)
    await sign_in(client, email)
    await db_session.refresh(first)
    assert first.ended_reason == "replaced"
    live = (
        await db_session.scalars(
            select(BrowserSession).where(
                BrowserSession.user_id == first.user_id, BrowserSession.ended_at.is_(None)
            )
        )
    ).all()
    assert [row.id for row in live] != [first.id] and len(live) == 1


@pytest.mark.parametrize(
    "reason",
    [
        SessionEndReason.LOGOUT_ALL,
        SessionEndReason.PASSWORD_CHANGED,
        SessionEndReason.PASSWORD_RESET,
        SessionEndReason.DEACTIVATED,
        SessionEndReason.REVOKED_BY_ADMIN,
    ],
)
async def test_ending_every_session_of_a_user_ends_their_browser_sessions(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock, reason: SessionEndReason
) -> None:
    """The one way to end sessions (`end_sessions`) ends the browser's with the API's."""
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    row = await browser_session_of(db_session, email)
    await end_sessions(db_session, reason, user_id=row.user_id, ctx=RequestContext(now=clock.now()))
    await db_session.refresh(row)
    assert row.ended_reason == reason.value and row.ended_at is not None
    assert (await client.get("/account")).status_code == 303


async def test_ending_one_api_session_keeps_the_browser_session(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = unique_email()
    await register(client, email)
    await sign_in(client, email)
    tokens = tokens_of(await password_grant(client, email))
    assert (await client.post("/auth/logout", headers=tokens.bearer)).status_code == 204
    assert (await client.get("/account")).status_code == 200


@pytest.mark.parametrize("name", sorted(templating.SCRIPT_NAMES))
async def test_page_scripts_are_served_from_pyauth_only_by_their_known_names(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    for unknown in ("/static/other.js", "/static/..%2Fmain.js", "/static/%2E%2E%2Fconfig.js"):
        assert (await client.get(unknown)).status_code == 404, unknown


def test_only_a_page_with_scripts_lets_them_run() -> None:
    settings = make_settings()
    assert "script-src" not in templating.page_csp(settings)
    policy = templating.page_csp(settings, scripts=True)
    assert "script-src 'self'; connect-src 'self'" in policy and "unsafe" not in policy
