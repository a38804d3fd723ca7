"""`python -m app`: serve the API with uvicorn, logging configured from settings.

`server_options()` is the one description of how pyauth is served; `make bench` serves its ceiling apps
with the same options, so that they compare like with like.
"""

from typing import Any

import uvicorn

from app.core.config import Settings, get_settings
from app.core.logging import logging_config


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options: `API_WORKERS` processes (one per core by default) on uvloop and httptools.

    Named rather than left to "auto", so that an image without them fails at start instead of quietly
    serving on the slower pure-Python loop and parser."""
    return {
        "host": "0.0.0.0",  # noqa: S104 - inside its container; compose publishes it on 127.0.0.1 only
        "port": 8000,
        "workers": settings.api_workers,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": logging_config(settings),
        # app.core.requests logs one line per request instead (without query strings).
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": 20,
    }


def main() -> None:
    uvicorn.run("app.main:create_app", factory=True, **server_options(get_settings()))


if __name__ == "__main__":
    main()
