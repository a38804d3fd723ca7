"""Client-side steps of the hosted-pages tests: read a form's CSRF token, sign in through the page."""

import re

import httpx

from tests.auth.helpers import PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def form_token(client: httpx.AsyncClient, path: str = "/signin") -> str:
    """GET the page (which sets the CSRF cookie) and return its form's token."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_token_of(page)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, *, return_to: str | None = None
) -> httpx.Response:
    token = await form_token(client)
    data = {"email": email, "password": password, "csrf_token": token}
    if return_to is not None:
        data["return_to"] = return_to
    return await client.post("/signin", data=data)
