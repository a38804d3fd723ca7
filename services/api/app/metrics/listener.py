"""Which listener serves what: `/metrics` only on METRICS_PORT, and nothing else there.

`python -m app` has every worker accept on the public port and on METRICS_PORT (`app.__main__`), and
compose publishes only the public one. A request's `scope["server"]` is the local address of the socket
its connection was accepted on, never something the client sends, so its port tells the two apart: on
METRICS_PORT only `/metrics` is served; on any other port `/metrics` is not found, like a path without
a route. A pure ASGI middleware, so the refusals are still logged, counted and given security headers.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.error_handlers import error_response

METRICS_PATH = "/metrics"


class MetricsListener:
    def __init__(self, app: ASGIApp, *, metrics_port: int) -> None:
        self.app = app
        self.metrics_port = metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.on_metrics_port(scope) != (scope["path"] == METRICS_PATH):
            # The body of the router's own 404, so that the public port does not tell /metrics apart.
            await error_response(404, "not_found", "Not Found")(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def on_metrics_port(self, scope: Scope) -> bool:
        server = scope.get("server")
        return server is not None and server[1] == self.metrics_port
