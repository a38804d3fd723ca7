"""`python -m tests.metrics.server_process PORT`: pyauth served as `python -m app` serves it (the same
`serve()`: its workers, its public and metrics sockets), on 127.0.0.1:PORT instead of 0.0.0.0:8000, so
that a test can run it next to a development stack. Settings come from the environment, as in the
container."""

import sys

from app.__main__ import serve
from app.core.config import get_settings


def main() -> None:
    serve(get_settings(), host="127.0.0.1", port=int(sys.argv[1]))


if __name__ == "__main__":
    main()
