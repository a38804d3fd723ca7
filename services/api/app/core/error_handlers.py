"""The handlers that render every error as `{"error": ..., "detail": ...}` JSON (`app.core.errors` holds the
error classes).

Kept apart from the error classes so that code which only raises or catches `PyauthError` (services, the
CLIs, the mail worker) does not import the web framework.
"""

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from app.core.database import UNAVAILABLE_SQLSTATES
from app.core.errors import MAX_FIELD_ERRORS, OAuthError, PyauthError, RolledBackRefusal, ServiceUnavailable

log = logging.getLogger("pyauth.errors")


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
            {"error": exc.code, "error_description": exc.detail, **(exc.body_extra or {})},
            status_code=exc.status_code,
            headers={"Cache-Control": "no-store", **(exc.headers or {})},
        )
    return error_response(exc.status_code, exc.code, exc.detail, exc.headers)


async def _rolled_back_refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RolledBackRefusal)
    try:
        await exc.db.rollback()
        await exc.keep(exc.db)
        await exc.db.commit()
    except Exception as failure:  # the database went away meanwhile: answered as anywhere else
        return await _handled(request, failure)
    return exc.answer() or await _handled(request, exc.error)


async def _handled(request: Request, exc: Exception) -> Response:
    """The answer of the handler installed for `exc`'s class (the nearest in its MRO)."""
    for cls in type(exc).__mro__:
        handler = request.app.exception_handlers.get(cls)
        if handler is not None:
            response: Response = await handler(request, exc)
            return response
    raise exc


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first route that matched the path; a path has one route per method.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(exc.status_code, code, str(exc.detail), headers or None)


def _allowed_methods(request: Request) -> list[str]:
    allowed: set[str] = set()
    for context in iter_route_contexts(request.app.router.routes):
        methods = getattr(context.original_route, "methods", None)
        if context.path and methods and compile_path(context.path)[0].match(request.url.path):
            allowed |= methods
    return sorted(allowed)


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
    return JSONResponse(
        {"error": "validation_error", "detail": _describe(errors), "fields": _fields(errors)}, status_code=422
    )


_SOURCES = {"body", "query", "path", "header", "cookie"}


def _fields(errors: list[Any]) -> list[dict[str, Any]]:
    """Each error's location, message and rule, never its `input` (which may be a password)."""
    fields = []
    for error in errors[:MAX_FIELD_ERRORS]:
        location = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        name = location[1:] if location and location[0] in _SOURCES else location
        fields.append(
            {
                "location": location,
                "field": ".".join(str(part) for part in name),
                "message": str(error.get("msg", "invalid")),
                "type": str(error.get("type", "invalid")),
            }
        )
    return fields


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # The database is down, or the pool stayed exhausted past its timeout: a generic 503, and the
    # exception class (never the URL or statement parameters) in the log. An exhausted pool says so, with
    # the pool's counts: the database answered, this worker's connections were all in use for
    # DB_POOL_TIMEOUT (a CPU-starved or undersized worker), which an operator fixes differently.
    if isinstance(exc, PoolTimeoutError):
        log.warning(
            "database unavailable on %s %s: no pooled connection came free within DB_POOL_TIMEOUT (%s)",
            request.method,
            request.url.path,
            _pool_status(request),
        )
    else:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(503, ServiceUnavailable.code, ServiceUnavailable.message)


def _pool_status(request: Request) -> str:
    """This worker's pool in numbers (size, free, overflow, checked out), as SQLAlchemy reports them."""
    engine = getattr(request.app.state, "engine", None)
    return engine.pool.status() if isinstance(engine, AsyncEngine) else "no pool"


_CHARACTER_NOT_IN_REPERTOIRE = "22021"  # e.g. a NUL character, which Postgres text cannot hold


async def _dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    """Driver errors that OperationalError/InterfaceError do not cover: a stopping server, a connection
    lost mid-protocol, a character Postgres cannot store. Anything else is a bug: 500."""
    assert isinstance(exc, DBAPIError)
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    if sqlstate == _CHARACTER_NOT_IN_REPERTOIRE:
        return await _invalid_character(request, exc)
    if (
        exc.connection_invalidated
        or sqlstate.startswith(UNAVAILABLE_SQLSTATES)
        or _is_connection_fault(exc.orig)
    ):
        return await _database_error(request, exc)
    return await _unexpected_error(request, exc)


async def _invalid_character(request: Request, exc: Exception) -> JSONResponse:
    """A value Postgres text cannot hold (SQLSTATE 22021), through SQLAlchemy or from a statement sent to
    the driver directly: the client's input, a 422."""
    return error_response(422, "invalid_character", "The request contains a character that cannot be stored.")


def _is_connection_fault(error: BaseException | None) -> bool:
    cause = getattr(error, "__cause__", None)
    return isinstance(
        cause, asyncpg.exceptions.InternalClientError | asyncpg.exceptions.ConnectionDoesNotExistError
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "An internal error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PyauthError, _pyauth_error)
    app.add_exception_handler(RolledBackRefusal, _rolled_back_refusal)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for unavailable in (OperationalError, InterfaceError, PoolTimeoutError, OSError, TimeoutError):
        app.add_exception_handler(unavailable, _database_error)
    app.add_exception_handler(DBAPIError, _dbapi_error)
    app.add_exception_handler(asyncpg.exceptions.CharacterNotInRepertoireError, _invalid_character)
    app.add_exception_handler(Exception, _unexpected_error)
