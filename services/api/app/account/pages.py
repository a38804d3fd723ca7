"""The few HTML pages pyauth serves itself, so that mailed links work without a frontend: verify an
address, confirm an email change, and a plain form to choose a new password. No scripts, no external
resources; every value is escaped."""

from html import escape

from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import PyauthError

PAGE_CSP = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def page(title: str, body_html: str, status_code: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head><body><main><h1>{escape(title)}</h1>{body_html}</main></body></html>"
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Content-Security-Policy": PAGE_CSP,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def message(title: str, text: str, status_code: int = 200) -> HTMLResponse:
    return page(title, f"<p>{escape(text)}</p>", status_code)


async def refused(db: AsyncSession, title: str, error: PyauthError) -> HTMLResponse:
    """A link that was refused: undo whatever the attempt wrote, so the link is not spent, and say why."""
    await db.rollback()
    return message(title, error.detail, error.status_code)


def reset_form(token: str) -> HTMLResponse:
    return page(
        "Choose a new password",
        '<form method=post action="/auth/password/reset/form">'
        f'<input type=hidden name=token value="{escape(token, quote=True)}">'
        "<p><label>New password <input type=password name=new_password autocomplete=new-password"
        " minlength=1 required></label></p>"
        "<p><button type=submit>Set password</button></p></form>",
    )
