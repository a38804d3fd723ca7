"""`python -m app.mail.healthcheck [FILE] [--max-age SECONDS]`: the worker container's healthcheck.

The worker touches its heartbeat file after every poll that reached the database and after every mail it
handled. Healthy means the file was touched within `--max-age` seconds: a stuck loop, or a database
unreachable for that long, makes the worker unhealthy. Kept free of heavy imports, as it runs every few
seconds.
"""

import argparse
import sys
import time
from pathlib import Path

# Inside the container /tmp is the worker's own; tests and host runs pass a path of their own.
HEARTBEAT_FILE = Path("/tmp/pyauth-mail-worker.heartbeat")  # noqa: S108
# Well above the longest healthy gap between beats: one delivery (SMTP_TIMEOUT ≤ 30 s) plus a poll.
STALE_AFTER_SECONDS = 60.0


def touch(path: Path) -> None:
    path.touch()


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the worker last touched `path`, or None if it never did."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - modified


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.mail.healthcheck", description=__doc__.splitlines()[0]
    )
    parser.add_argument("file", nargs="?", type=Path, default=HEARTBEAT_FILE)
    parser.add_argument("--max-age", type=float, default=STALE_AFTER_SECONDS)
    args = parser.parse_args(argv)
    age = heartbeat_age(args.file)
    if age is None:
        print(f"unhealthy: no heartbeat at {args.file}")
        return 1
    if age > args.max_age:
        print(f"unhealthy: last heartbeat {age:.0f}s ago (limit {args.max_age:.0f}s)")
        return 1
    print(f"healthy: last heartbeat {age:.1f}s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
