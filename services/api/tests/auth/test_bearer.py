"""The Bearer credentials of a request: `bearer_token` answers as FastAPI's OAuth2PasswordBearer (`bearer`),
which documents the scheme, does for every Authorization header tried here (RFC 6750 §2.1)."""

import pytest
from starlette.requests import Request

from app.auth.dependencies import bearer, bearer_token

HEADERS = {
    "bearer": [(b"authorization", b"Bearer abc.def.ghi")],
    "scheme in another case": [(b"authorization", b"bEaReR abc")],
    "spaces around the credentials": [(b"authorization", b"Bearer   abc  ")],
    "scheme only": [(b"authorization", b"Bearer")],
    "scheme and a space": [(b"authorization", b"Bearer ")],
    "empty": [(b"authorization", b"")],
    "basic": [(b"authorization", b"Basic dXNlcjpwYXNz")],
    "no space": [(b"authorization", b"Bearerabc")],
    "none": [(b"accept", b"application/json")],
    "two, the first counts": [(b"authorization", b"Basic x"), (b"authorization", b"Bearer y")],
    "latin-1": [(b"authorization", "Bearer caf\u00e9".encode("latin-1"))],
}


@pytest.mark.parametrize("headers", HEADERS.values(), ids=HEADERS.keys())
async def test_bearer_token_answers_as_the_documented_scheme(headers: list[tuple[bytes, bytes]]) -> None:
    request = Request({"type": "http", "method": "GET", "path": "/users/me", "headers": headers})
    assert bearer_token(request) == await bearer(request)


async def test_bearer_token_reads_the_credentials() -> None:
    request = Request({"type": "http", "headers": [(b"authorization", b"Bearer abc.def.ghi")]})
    assert bearer_token(request) == "abc.def.ghi"
