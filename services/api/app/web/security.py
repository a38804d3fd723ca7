"""The hosted account security page, `/account/security`: the signed-in browser's own second factors.

It shows whether a TOTP authenticator app is on, how many recovery codes are left, and the passkeys (name,
when added, when last used). Every action is a form POST with its CSRF token checked, and every change
needs a recent sign-in: the browser session's `auth_time` within MFA_REAUTH_SECONDS (the one rule of
`app.auth.recent_sign_in`, which the API applies to its access tokens' sessions). Older, the page says so
and links to "Sign in again" (a new sign-in replaces the browser session), and a POST is refused (403)
before anything is changed. The changes go through the services the API uses (`app.mfa.service`,
`app.passkeys.service`), so they are audited and mailed the same way.

- TOTP: "Set up" shows the `otpauth://` URI as a QR code, drawn here with segno as inline SVG (the page CSP
  allows no `data:` images), and the secret as text; the first code confirms it and the ten recovery codes
  are shown once. A wrong code shows the same enrolment again with the error; it stays inactive.
- Passkeys: the page script `passkey-register.js` asks `POST /account/security/passkeys/options` for
  the creation options (JSON), runs `navigator.credentials.create()` and posts the answer with the name in
  the add form. Without WebAuthn in the browser the add form stays hidden.
- Removing the authenticator or a passkey asks for a confirmation first (a second POST with `confirm`).

Only the SSO session is needed, not an admin's second factor: an administrator held back by
MFA_REQUIRED_FOR_ADMINS enrols one here.
"""

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import segno
from babel.dates import format_date
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.errors import ReauthenticationRequired
from app.auth.recent_sign_in import is_recent, require_recent_sign_in
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.dependencies import ContextDep, SessionDep, SettingsDep
from app.core.errors import PyauthError
from app.core.templating import N_
from app.mfa import service as mfa
from app.mfa.errors import InvalidOtp, MfaNotEnabled, TotpAlreadyEnabled, TotpNotPending
from app.passkeys import service as passkeys
from app.passkeys.errors import (
    PasskeyAlreadyRegistered,
    PasskeyInvalid,
    PasskeyNotFound,
    TooManyPasskeys,
)
from app.passkeys.models import MAX_NAME_LENGTH
from app.passkeys.schemas import UNNAMED
from app.sso.models import BrowserSession
from app.users.models import User
from app.web.pages import FormCsrf, WebPages, WebPagesDep, signed_in

router = APIRouter(include_in_schema=False)

PATH = "/account/security"
SIGN_IN_AGAIN = f"/signin?{urlencode({'return_to': PATH})}"
SCRIPT = "passkey-register.js"
TITLE = N_("Account security")
ENROL_TITLE = N_("Set up an authenticator app")
CODES_TITLE = N_("Your recovery codes")
CONFIRM_TITLE = N_("Are you sure?")
# A RegistrationResponseJSON is a few hundred bytes (a few KB with a large attestation, which pyauth asks
# not to get): anything longer is not one.
MAX_CREDENTIAL_LENGTH = 16384

FormCode = Annotated[str, Form(max_length=16)]
FormName = Annotated[str, Form(max_length=MAX_NAME_LENGTH)]
FormCredential = Annotated[str, Form(max_length=MAX_CREDENTIAL_LENGTH)]
FormConfirm = Annotated[str, Form(max_length=8)]


class SignedOut(PyauthError):
    """The page script's request without a live browser session (it ended while the page was open)."""

    status_code = 401
    code = "signed_out"
    message = N_("You are signed out. Sign in again, then add the passkey.")


# The page's words for each refusal of this page (others: `WebPages.error_text`).
MESSAGES: tuple[tuple[type[PyauthError], str], ...] = (
    (
        ReauthenticationRequired,
        N_("To change how you sign in, sign in again first: your last sign-in is too long ago."),
    ),
    (InvalidOtp, N_("This code is not right, or it was already used. Enter the code the app shows now.")),
    (TotpAlreadyEnabled, N_("An authenticator app is on already. Remove it first to set up another.")),
    (TotpNotPending, N_("No authenticator app is waiting to be confirmed. Start the set-up again.")),
    (MfaNotEnabled, N_("No authenticator app is on for this account.")),
    (PasskeyInvalid, N_("The passkey could not be verified. Try adding it again.")),
    (PasskeyAlreadyRegistered, N_("This passkey is registered already.")),
    (TooManyPasskeys, N_("This account has as many passkeys as it may have. Remove one first.")),
    (PasskeyNotFound, N_("This passkey does not exist (any more).")),
    (SignedOut, SignedOut.message),
)
# What the page says after a change that redirects back to it (`?done=`): nothing else is shown.
DONE: Mapping[str, str] = {
    "totp_removed": N_("The authenticator app was removed. Your password alone signs you in now."),
    "passkey_added": N_("The passkey was added."),
    "passkey_renamed": N_("The passkey was renamed."),
    "passkey_removed": N_("The passkey was removed."),
}


def _error_text(page: WebPages, error: PyauthError) -> str:
    for kind, message in MESSAGES:
        if isinstance(error, kind):
            return page.text(message)
    return page.error_text(error)


def qr_code_svg(uri: str, label: str) -> Markup:
    """`uri` as a QR code in inline SVG markup (segno, error correction M), labelled for screen readers.
    Every part of it is segno's own output but the escaped label."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, svgclass="qr", lineclass=None, light="#fff"
    )
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1))  # noqa: S704


def _date(page: WebPages, when: datetime | None) -> str | None:
    return format_date(when, format="medium", locale=page.locale) if when is not None else None


async def _security_page(
    page: WebPages,
    db: AsyncSession,
    browser_session: BrowserSession,
    user: User,
    ctx: RequestContext,
    *,
    error: PyauthError | None = None,
    done: str | None = None,
) -> Response:
    factors = await mfa.factors(db, user)
    keys = await passkeys.list_passkeys(db, user)
    recent = is_recent(browser_session.auth_time, settings=page.settings, now=ctx.now)
    minutes = max(1, page.settings.MFA_REAUTH_SECONDS // 60)
    return page.render(
        "pages/security.html",
        title=TITLE,
        status_code=error.status_code if error else 200,
        scripts=(SCRIPT,) if recent else (),
        email=user.email,
        recent=recent,
        reauth_text=page.words.ngettext(
            "Changes here need a sign-in from the last minute.",
            "Changes here need a sign-in from the last %(minutes)s minutes.",
            minutes,
        )
        % {"minutes": minutes},
        sign_in_again_url=SIGN_IN_AGAIN,
        totp_on=factors.totp_confirmed_at is not None,
        totp_since=_date(page, factors.totp_confirmed_at),
        recovery_codes_remaining=factors.recovery_codes_remaining,
        passkeys=[
            {
                "id": str(key.id),
                "name": key.name,
                "added": _date(page, key.created_at),
                "last_used": _date(page, key.last_used_at),
            }
            for key in keys
        ],
        name_max_length=MAX_NAME_LENGTH,
        error=_error_text(page, error) if error else None,
        done=page.text(DONE[done]) if done is not None and done in DONE else None,
        path=PATH,
    )


@dataclass(frozen=True)
class Change:
    """A change asked of the page, its preconditions met: what the change needs, and `refused` to answer
    a refusal of it with the page and the error."""

    page: WebPages
    db: AsyncSession
    settings: Settings
    ctx: RequestContext
    browser_session: BrowserSession
    user: User

    @property
    def auth_time(self) -> datetime:
        return self.browser_session.auth_time

    async def refused(self, error: PyauthError) -> Response:
        return await _security_page(
            self.page, self.db, self.browser_session, self.user, self.ctx, error=error
        )


async def change(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    csrf_token: FormCsrf = "",
) -> Change | Response:
    """A change's preconditions, in order: the CSRF token (400 page), a browser session (303 to sign in),
    a recent sign-in (the security page, 403, saying to sign in again). The change, or the answer to send
    instead."""
    try:
        page.check_csrf(csrf_token)
    except PyauthError as error:
        return page.error(error)
    current = await signed_in(request, db, settings, ctx)
    if current is None:
        return page.redirect(SIGN_IN_AGAIN)
    browser_session, user = current
    try:
        require_recent_sign_in(browser_session.auth_time, settings=settings, now=ctx.now)
    except ReauthenticationRequired as error:
        return await _security_page(page, db, browser_session, user, ctx, error=error)
    return Change(page, db, settings, ctx, browser_session, user)


ChangeDep = Annotated[Change | Response, Depends(change)]


def _back(page: WebPages, done: str) -> Response:
    return page.redirect(f"{PATH}?{urlencode({'done': done})}")


@router.get(PATH)
async def security_page(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    current = await signed_in(request, db, settings, ctx)
    if current is None:
        return page.redirect(SIGN_IN_AGAIN)
    return await _security_page(page, db, *current, ctx, done=done)


def _enrolment_page(
    page: WebPages, enrolment: mfa.TotpEnrolment, *, error: PyauthError | None = None
) -> Response:
    return page.render(
        "pages/security_totp.html",
        title=ENROL_TITLE,
        status_code=error.status_code if error else 200,
        qr_code=qr_code_svg(
            enrolment.otpauth_uri, page.text(N_("QR code to scan with an authenticator app"))
        ),
        secret=enrolment.secret,
        action=f"{PATH}/totp/confirm",
        cancel_url=PATH,
        error=_error_text(page, error) if error else None,
    )


def _codes_page(page: WebPages, codes: list[str], intro: str) -> Response:
    return page.render(
        "pages/security_codes.html", title=CODES_TITLE, codes=codes, intro=page.text(intro), done_url=PATH
    )


@router.post(f"{PATH}/totp")
async def start_totp(change: ChangeDep) -> Response:
    """A new, not yet active secret (a pending one is replaced): the QR code and the secret to type."""
    if isinstance(change, Response):
        return change
    try:
        enrolment = await mfa.enrol_totp(
            change.db, change.user, auth_time=change.auth_time, settings=change.settings, ctx=change.ctx
        )
    except PyauthError as error:
        return await change.refused(error)
    return _enrolment_page(change.page, enrolment)


@router.post(f"{PATH}/totp/confirm")
async def confirm_totp(
    change: ChangeDep,
    code: FormCode = "",
) -> Response:
    """The first code turns the authenticator on; the recovery codes are shown now, once."""
    if isinstance(change, Response):
        return change
    try:
        codes = await mfa.confirm_totp(
            change.db,
            change.user,
            code.strip(),
            auth_time=change.auth_time,
            settings=change.settings,
            ctx=change.ctx,
        )
    except InvalidOtp as error:
        pending = await mfa.pending_totp(change.db, change.user, settings=change.settings)
        if pending is not None:
            return _enrolment_page(change.page, pending, error=error)
        return await change.refused(error)
    except PyauthError as error:
        return await change.refused(error)
    return _codes_page(
        change.page,
        codes,
        N_("The authenticator app is on. From now on, signing in asks for its code after your password."),
    )


async def _confirmation(page: WebPages, *, text: str, action: str, button: str) -> Response:
    return page.render(
        "pages/security_confirm.html",
        title=CONFIRM_TITLE,
        text=text,
        action=action,
        button=page.text(button),
        cancel_url=PATH,
    )


@router.post(f"{PATH}/totp/remove")
async def remove_totp(
    change: ChangeDep,
    confirm: FormConfirm = "",
) -> Response:
    """Without `confirm`, the question; with it, the authenticator and the recovery codes are removed."""
    if isinstance(change, Response):
        return change
    if confirm != "yes":
        return await _confirmation(
            change.page,
            text=change.page.text(
                N_(
                    "Remove the authenticator app? Its codes and your recovery codes stop working, and your "
                    "password alone signs you in."
                )
            ),
            action=f"{PATH}/totp/remove",
            button=N_("Remove the authenticator app"),
        )
    try:
        await mfa.remove_totp(
            change.db, change.user, auth_time=change.auth_time, settings=change.settings, ctx=change.ctx
        )
    except PyauthError as error:
        return await change.refused(error)
    return _back(change.page, "totp_removed")


@router.post(f"{PATH}/recovery-codes")
async def regenerate_recovery_codes(change: ChangeDep) -> Response:
    """Ten new codes, shown now, once; the old ones stop working."""
    if isinstance(change, Response):
        return change
    try:
        codes = await mfa.regenerate_recovery_codes(
            change.db, change.user, auth_time=change.auth_time, settings=change.settings, ctx=change.ctx
        )
    except PyauthError as error:
        return await change.refused(error)
    return _codes_page(
        change.page, codes, N_("These are your new recovery codes. The old ones no longer work.")
    )


def _json_refusal(page: WebPages, error: PyauthError) -> JSONResponse:
    """The page script's answer to a refusal: the code and the page's words for it."""
    response = JSONResponse(
        {"error": error.code, "message": _error_text(page, error)}, status_code=error.status_code
    )
    page.finish(response)
    return response


@router.post(f"{PATH}/passkeys/options")
async def passkey_options(
    request: Request,
    page: WebPagesDep,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    csrf_token: FormCsrf = "",
) -> Response:
    """PublicKeyCredentialCreationOptionsJSON for the page script, as the API's registration options (JSON;
    a refusal is JSON too: `{"error", "message"}`)."""
    try:
        page.check_csrf(csrf_token)
    except PyauthError as error:
        return _json_refusal(page, error)
    current = await signed_in(request, db, settings, ctx)
    if current is None:
        return _json_refusal(page, SignedOut())
    browser_session, user = current
    try:
        require_recent_sign_in(browser_session.auth_time, settings=settings, now=ctx.now)
        options = await passkeys.registration_options(db, user, settings=settings, ctx=ctx)
    except PyauthError as error:
        return _json_refusal(page, error)
    response = JSONResponse(options)
    page.finish(response)
    return response


def _credential(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        raise PasskeyInvalid() from None
    if not isinstance(parsed, dict):
        raise PasskeyInvalid()
    return parsed


@router.post(f"{PATH}/passkeys")
async def add_passkey(
    change: ChangeDep,
    name: FormName = "",
    credential: FormCredential = "",
) -> Response:
    """The browser's answer to the latest options (RegistrationResponseJSON, from the page script) and the
    passkey's name: verified and stored as the API does, mailed and audited."""
    if isinstance(change, Response):
        return change
    try:
        await passkeys.register(
            change.db,
            change.user,
            name=name.strip() or UNNAMED,
            credential=_credential(credential),
            settings=change.settings,
            ctx=change.ctx,
        )
    except PyauthError as error:
        return await change.refused(error)
    return _back(change.page, "passkey_added")


@router.post(f"{PATH}/passkeys/{{passkey_id}}/rename")
async def rename_passkey(
    passkey_id: uuid.UUID,
    change: ChangeDep,
    name: FormName = "",
) -> Response:
    if isinstance(change, Response):
        return change
    try:
        await passkeys.rename(
            change.db, change.user, passkey_id, name=name.strip() or UNNAMED, ctx=change.ctx
        )
    except PyauthError as error:
        return await change.refused(error)
    return _back(change.page, "passkey_renamed")


@router.post(f"{PATH}/passkeys/{{passkey_id}}/remove")
async def remove_passkey(
    passkey_id: uuid.UUID,
    change: ChangeDep,
    confirm: FormConfirm = "",
) -> Response:
    """Without `confirm`, the question (naming the passkey); with it, the passkey is removed."""
    if isinstance(change, Response):
        return change
    if confirm != "yes":
        found = next(
            (p for p in await passkeys.list_passkeys(change.db, change.user) if p.id == passkey_id), None
        )
        if found is None:
            return await change.refused(PasskeyNotFound())
        return await _confirmation(
            change.page,
            text=change.page.text(
                N_("Remove the passkey “%(name)s”? It will no longer sign you in."), name=found.name
            ),
            action=f"{PATH}/passkeys/{passkey_id}/remove",
            button=N_("Remove the passkey"),
        )
    try:
        await passkeys.remove(change.db, change.user, passkey_id, settings=change.settings, ctx=change.ctx)
    except PyauthError as error:
        return await change.refused(error)
    return _back(change.page, "passkey_removed")
