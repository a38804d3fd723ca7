"""Whether this process is draining: it received SIGTERM and goes on serving for SHUTDOWN_DRAIN_SECONDS
before it shuts down (`app.__main__.DrainingServer`), while both health checks answer 503 so that a load
balancer that polls them stops sending it requests first. Set once, never cleared: the process ends."""

import threading

_draining = threading.Event()


def start_draining() -> None:
    _draining.set()


def is_draining() -> bool:
    return _draining.is_set()
