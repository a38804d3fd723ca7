"""One error base class with a status, a stable code and a message, and the handlers that render it.

Services raise `PyauthError` subclasses, never `HTTPException`. Every error leaves the API as
`{"error": "<stable_code>", "detail": "<human text>"}` and never carries a stack trace.
"""

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("pyauth.errors")


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    error: str
    detail: str


class PyauthError(Exception):
    """A failure the client can act on. Subclasses set `status_code`, `code` and `message`."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    message: ClassVar[str] = "The request could not be processed."
    headers: Mapping[str, str] | None = None

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.detail = detail or self.message
        if headers is not None:
            self.headers = headers
        super().__init__(self.detail)


class OAuthError(PyauthError):
    """An error of the RFC 6749 token or RFC 7009 revocation endpoint, rendered as that RFC says:
    `{"error": "<code>", "error_description": "<text>"}`."""

    status_code = 400
    code = "invalid_request"
    message = "The request is missing a parameter or is otherwise malformed."


class ServiceUnavailable(PyauthError):
    status_code = 503
    code = "service_unavailable"
    message = "The service is temporarily unavailable. Try again shortly."


def error_response(
    status_code: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status_code, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


async def _pyauth_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PyauthError)
    if isinstance(exc, OAuthError):
        return JSONResponse(
            {"error": exc.code, "error_description": exc.detail},
            status_code=exc.status_code,
            headers={"Cache-Control": "no-store", **(exc.headers or {})},
        )
    return error_response(exc.status_code, exc.code, exc.detail, exc.headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


def _describe(errors: list[Any]) -> str:
    parts = []
    for error in errors[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and any(
        tuple(error.get("loc", ())) == ("body",) and error.get("type") == "model_attributes_type"
        for error in errors
    ):
        return error_response(415, "unsupported_media_type", "This endpoint takes application/json.")
    return error_response(422, "validation_error", _describe(errors))


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # The database is down, or the pool stayed exhausted past its timeout: a generic 503, and the
    # exception class (never the URL or statement parameters) in the log.
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(503, ServiceUnavailable.code, ServiceUnavailable.message)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "An internal error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PyauthError, _pyauth_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for unavailable in (OperationalError, InterfaceError, PoolTimeoutError, OSError, TimeoutError):
        app.add_exception_handler(unavailable, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an endpoint can answer, all with `ErrorBody`."""
    return {status: {"model": ErrorBody, "description": "Error"} for status in status_codes}
