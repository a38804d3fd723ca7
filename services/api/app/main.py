"""The FastAPI application: `create_app()` wires routers, middleware and error handlers, and the
lifespan owns the database engine: built and checked with `SELECT 1` at startup, disposed at shutdown.

Run it with `uvicorn app.main:create_app --factory` (the container does).
"""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig

from app.account import endpoints as account_endpoints
from app.admin import clients as admin_clients
from app.admin import endpoints as admin_endpoints
from app.admin.bootstrap import ensure_first_admin
from app.audit import endpoints as audit_endpoints
from app.auth import endpoints as auth_endpoints
from app.auth.login import second_factor
from app.core.clock import Clock, SystemClock
from app.core.config import Settings, get_settings
from app.core.database import build_engine, build_sessionmaker, wait_for_database
from app.core.dependencies import trusted_networks
from app.core.edge import RequestEdge
from app.core.error_handlers import install_error_handlers
from app.core.exact_routes import ExactRoutes
from app.core.logging import flush_batches
from app.core.security import DOCS_ASSETS_PATH, docs_csp
from app.health import endpoints as health_endpoints
from app.health.service import schema_head
from app.keys import endpoints as keys_endpoints
from app.keys.keyring import KeyRing
from app.metrics import endpoints as metrics_endpoints
from app.metrics.batch import UPDATES
from app.metrics.gauges import ResourceGauges
from app.metrics.listener import MetricsListener
from app.metrics.requests import REQUESTS
from app.mfa import endpoints as mfa_endpoints
from app.mfa.login import MfaLogin
from app.oauth import endpoints as oauth_endpoints
from app.oidc import endpoints as oidc_endpoints
from app.passkeys import endpoints as passkeys_endpoints
from app.passwords import policy as password_policy
from app.passwords.hashing import PasswordHasher
from app.users import endpoints as users_endpoints
from app.web import endpoints as web_endpoints
from app.web import security as web_security

log = logging.getLogger("pyauth.main")
# Swagger UI's and ReDoc's files as the fastapi-offline package ships them (swagger-ui-dist, redoc).
DOCS_ASSETS_DIRECTORY = str(resources.files("fastapi_offline") / "static")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = build_engine(settings)
    try:
        await wait_for_database(engine, settings)
    except Exception as exc:
        log.error("startup failed: %s", exc)
        await engine.dispose()
        raise
    log.info("startup: database %s answered SELECT 1", settings.database_target)
    app.state.engine = engine
    app.state.sessionmaker = build_sessionmaker(engine)
    app.state.schema_head = schema_head()
    app.state.hasher = PasswordHasher(settings)
    app.state.resource_gauges = ResourceGauges(app.state.hasher, engine, enabled=settings.METRICS_ENABLED)
    try:
        app.state.keyring = await KeyRing.load(app.state.sessionmaker, settings, app.state.clock)
        await ensure_first_admin(app.state.sessionmaker, settings, app.state.hasher, app.state.clock)
        await app.state.hasher.warm_up()
        password_policy.load(settings)
        app.state.resource_gauges.start()
        # What startup made (modules, routes, the key ring, the pool) lives as long as the process: out of
        # the collector's sight, so a full collection no longer walks it. Measured in the API image: about
        # 170,000 objects, and a full collection of them stalled the event loop ~0.1 s each time.
        gc.collect()
        gc.freeze()
        yield
    finally:
        await app.state.resource_gauges.stop()
        app.state.hasher.shutdown()
        await engine.dispose()
        log.info("shutdown: database engine disposed, connections closed")
        UPDATES.flush()  # the requests of the last FLUSH_INTERVAL_SECONDS, into the shared metrics
        flush_batches()  # a worker process ends without `logging.shutdown`: its last lines go out now


# FastAPI's own OpenTelemetry, off whatever the environment says (FASTAPI_OTEL_AUTO_CONFIGURE, OTEL_*):
# pyauth's telemetry is its request log and Prometheus metrics, which never hold a query string, a form
# value or an exception's message. FastAPI's would record request URLs with their query, validation
# failures and exception messages wherever a deployment had configured a provider; and unconfigured, it
# still looked the global providers up on every request: 59.5 -> 54.3 µs of CPU for JWKS, 90.8 -> 84.8 for
# /health/live, in-process through the whole middleware stack with logging and metrics on.
NO_FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def operation_id(route: APIRoute) -> str:
    """The OpenAPI `operationId` of a route: its first tag and its function's name (`auth_token`,
    `users_read_me`), the method name a generated client gets. A test checks they stay unique."""
    tag = route.tags[0] if route.tags else "pyauth"
    return f"{tag}_{route.name}"


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    docs = settings.docs_enabled
    app = FastAPI(
        title="pyauth",
        summary="Self-hosted authentication: accounts, passwords, JWT access tokens, refresh tokens.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # pyauth serves /docs and /redoc itself, with their assets: see install_docs
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        debug=settings.DEBUG,
        generate_unique_id_function=operation_id,
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    second_factor.use(MfaLogin())  # the login step's factors: `mfa` builds on `auth`, not the reverse
    app.state.trusted_proxies = trusted_networks(settings.TRUSTED_PROXIES)
    install_error_handlers(app)
    # Innermost first.
    if settings.HOT_PATHS_ENABLED:  # innermost: everything outside sees these requests as any other
        app.add_middleware(
            ExactRoutes,
            routes={
                ("GET", "/users/me"): users_endpoints.me,
                ("POST", "/auth/token"): auth_endpoints.issue_tokens,
                ("GET", keys_endpoints.JWKS_PATH): keys_endpoints.jwks,
            },
        )
    if settings.metrics_port is not None:  # innermost: /metrics only on its own port, and only it there
        app.add_middleware(MetricsListener, metrics_port=settings.metrics_port)
    if settings.CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.CORS_ORIGINS,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    # Outermost: request id, body guards, security headers, metrics (the guards' refusals counted too), log.
    observe = REQUESTS.observe if settings.METRICS_ENABLED else None
    app.add_middleware(RequestEdge, settings=settings, observe=observe)
    app.include_router(health_endpoints.router)
    app.include_router(auth_endpoints.router)
    app.include_router(users_endpoints.router)
    app.include_router(account_endpoints.own_account_router)  # /users/me/password, next to /users/me
    app.include_router(mfa_endpoints.router)  # /users/me/mfa
    app.include_router(mfa_endpoints.login_router)  # /auth/mfa/webauthn/options
    app.include_router(account_endpoints.router)
    app.include_router(keys_endpoints.router)
    app.include_router(oauth_endpoints.router)
    app.include_router(oauth_endpoints.discovery_router)  # /.well-known/openid-configuration, RFC 8414
    app.include_router(admin_endpoints.router)
    app.include_router(admin_clients.router)
    app.include_router(audit_endpoints.admin_router)
    app.include_router(audit_endpoints.own_router)
    app.include_router(web_endpoints.router)  # the hosted pages and their stylesheet
    app.include_router(web_security.router)  # /account/security
    app.include_router(oidc_endpoints.router)  # /oauth2/authorize
    app.include_router(oidc_endpoints.grants_router)  # /users/me/grants
    app.include_router(passkeys_endpoints.router)  # /users/me/passkeys
    if settings.METRICS_ENABLED:
        app.include_router(metrics_endpoints.router)
    if docs:
        install_docs(app)
    return app


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, their scripts, styles and icon served by pyauth itself from
    the fastapi-offline package: the pages work, Authorize included, on a host with no internet access and
    never load code from a CDN. Each page carries a CSP (`docs_csp`) that allows only those assets and its
    own inline script (by hash)."""
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=DOCS_ASSETS_DIRECTORY), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def page(response: HTMLResponse, *, generated_styles: bool = False) -> HTMLResponse:
        csp = docs_csp(bytes(response.body).decode(), generated_styles=generated_styles)
        response.headers["Content-Security-Policy"] = csp
        return response

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return page(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=root + oauth2_redirect_url,
                swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
                # No validator badge: Swagger UI would fetch it from validator.swagger.io.
                swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
            )
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return page(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return page(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            ),
            generated_styles=True,
        )
