"""`python -m app`: serve the API with uvicorn, logging configured from settings."""

import uvicorn

from app.core.config import get_settings
from app.core.logging import logging_config


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host="0.0.0.0",  # noqa: S104 - inside its container; compose publishes it on 127.0.0.1 only
        port=8000,
        log_config=logging_config(settings),
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
