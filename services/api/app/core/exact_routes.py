"""Exact-path dispatch for the hottest routes, in front of FastAPI's router.

A request whose method and path match one of the routes given (`GET /users/me`, `POST /auth/token`, the
JWKS) is answered by its handler directly: no route matching over ~150 routes, no dependency solving, no
exit stack. Every other request goes on to FastAPI, which also keeps documenting these routes in the
OpenAPI document: each FastAPI route calls the same handler, so both ways give the same answer
(tests/core/test_exact_routes.py compares them). HOT_PATHS_ENABLED=false sends everything through FastAPI.

The middleware sits innermost, so the request log, the metrics, the security headers and the guards see
these requests as any other. `scope["route"]` is the FastAPI route of the path, as the router would set
it (the metrics label requests with its path template). A handler's exception is answered by the app's
own exception handler for it, as FastAPI would; an exception no specific handler takes propagates to
Starlette's server-error handler, as it would from a route.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence

from fastapi.routing import iter_route_contexts
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.security import Header

Handler = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class ExactRoutes:
    def __init__(self, app: ASGIApp, *, routes: Mapping[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = dict(routes)
        self._route_objects: dict[tuple[str, str], BaseRoute | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        application: Starlette = scope["app"]
        scope["route"] = self._route_of(application, scope["method"], scope["path"])
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            exception_handler = _handler_for(application, exc)
            if exception_handler is None:
                raise
            response = await exception_handler(request, exc)
        await response(scope, receive, send)

    def _route_of(self, application: Starlette, method: str, path: str) -> BaseRoute | None:
        key = (method, path)
        if key not in self._route_objects:
            self._route_objects[key] = next(
                (
                    context.original_route
                    for context in iter_route_contexts(application.routes)
                    if context.path_format == path
                    and isinstance(context.original_route, Route)
                    and method in (context.original_route.methods or ())
                ),
                None,
            )
        return self._route_objects[key]


class PreparedResponse(Response):
    """A response whose headers were made beforehand, in full (`Content-Length` and `Content-Type`
    included: nothing is added to them here), for an answer that is the same for every request (the
    JWKS): Starlette's `Response` builds its header list anew each time. Each response gets its own
    copy of the list, which the middlewares may change on the way out."""

    def __init__(self, status_code: int, body: bytes, headers: Sequence[Header]) -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = list(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # `Response.__call__` without what an HTTP answer with no background task never needs.
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


def _handler_for(application: Starlette, exc: Exception) -> ExceptionHandler | None:
    """The app's handler for `exc`'s class or its nearest base, as Starlette's exception middleware looks
    it up; None for the catch-all `Exception` handler, which Starlette runs outside (a 500)."""
    handlers: Mapping[object, ExceptionHandler] = application.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
