"""Serve the side-by-side app (`tutorial_app.py`) with pyauth's own server options
(`app.__main__.server_options`: the same workers, event loop and HTTP parser) and pyauth's database and
pool size per worker, from the API image: `python3 /bench/sidebyside/serve.py`. The JWT secret comes from
SIDEBYSIDE_JWT_SECRET (bench/run.sh makes one per run, and hands it to the driver, which signs the
tokens)."""

import os

import uvicorn

from app.__main__ import server_options
from app.core.config import get_settings


def main() -> None:
    if not os.environ.get("SIDEBYSIDE_JWT_SECRET"):
        raise SystemExit("serve.py: SIDEBYSIDE_JWT_SECRET is not set")
    settings = get_settings()
    # Read by tutorial_app in each worker, which inherits this environment.
    os.environ["SIDEBYSIDE_DATABASE_URL"] = settings.database_url.render_as_string(hide_password=False)
    os.environ["SIDEBYSIDE_POOL_SIZE"] = str(settings.DB_POOL_SIZE)
    os.environ["SIDEBYSIDE_MAX_OVERFLOW"] = str(settings.DB_MAX_OVERFLOW)
    uvicorn.run("tutorial_app:app", **server_options(settings))


if __name__ == "__main__":
    main()
