"""An app serving only the JWKS and discovery from a key ring the test holds (and moves with its clock)."""

from fastapi import FastAPI

from app.core.config import Settings
from app.core.error_handlers import install_error_handlers
from app.keys import endpoints as keys_endpoints
from app.keys.keyring import KeyRing
from app.oauth import endpoints as oauth_endpoints


def keys_app(keyring: KeyRing, settings: Settings) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(keys_endpoints.router)
    app.include_router(oauth_endpoints.discovery_router)
    app.state.keyring = keyring
    app.state.settings = settings
    return app
