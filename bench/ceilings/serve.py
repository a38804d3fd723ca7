"""Serve a ceiling app (`apps.py`, `rotation.py`) as pyauth is served: `app.__main__.run` with pyauth's
server options (`app.__main__.server_options`), so the same worker count, each worker on a socket of its
own, event loop and HTTP parser as the API. Runs in the API image:
`python3 /bench/ceilings/serve.py constant_json|primary_key_select|refresh_rotation`."""

import sys

import uvicorn

from app.__main__ import run, server_options
from app.core.config import get_settings

APPS = {
    "constant_json": "apps:constant_json",
    "primary_key_select": "apps:primary_key_select",
    "refresh_rotation": "rotation:refresh_rotation",
}


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in APPS:
        raise SystemExit(f"usage: serve.py {'|'.join(APPS)}")
    run(uvicorn.Config(APPS[sys.argv[1]], **server_options(get_settings())))


if __name__ == "__main__":
    main()
