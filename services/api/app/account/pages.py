"""The few HTML pages pyauth serves itself, so that mailed links work without a frontend: verify an
address, confirm or cancel an email change, and a plain form to choose a new password. No scripts, no
external resources; every value is escaped.

A mailed link's GET only shows a page with a button; the button POSTs the token and only that acts, so a
mail scanner that prefetches links spends nothing."""

from html import escape

from fastapi.responses import HTMLResponse

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


def refused(title: str, error: PyauthError) -> HTMLResponse:
    """A refused link's page (the caller has rolled back and audited, with `service.refuse_link`)."""
    return message(title, error.detail, error.status_code)


def confirm_button(title: str, text: str, *, action: str, token: str, button: str) -> HTMLResponse:
    """The page a mailed link opens: what the button will do, and a form that POSTs the token."""
    return page(
        title,
        f"<p>{escape(text)}</p>"
        f'<form method=post action="{escape(action, quote=True)}">'
        f'<input type=hidden name=token value="{escape(token, quote=True)}">'
        f"<p><button type=submit>{escape(button)}</button></p></form>",
    )


def reset_form(token: str) -> HTMLResponse:
    return page(
        "Choose a new password",
        '<form method=post action="/auth/password/reset/form">'
        f'<input type=hidden name=token value="{escape(token, quote=True)}">'
        "<p><label>New password <input type=password name=new_password autocomplete=new-password"
        " minlength=1 required></label></p>"
        "<p><button type=submit>Set password</button></p></form>",
    )
