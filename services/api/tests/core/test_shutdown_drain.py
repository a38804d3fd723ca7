"""SHUTDOWN_DRAIN_SECONDS: on SIGTERM the server served as `python -m app` serves it (one worker) answers its
health checks 503 `draining` and goes on serving every other request, on connections it had and on new
ones, for that long; only then does uvicorn's graceful shutdown close its socket, and the process ends.
A load balancer polling the checks has taken it out by then (the Swarm stack's edge proxy)."""

import asyncio
import signal
import socket
import time
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from tests.servers import ApiProcess

DRAIN_SECONDS = 2.0


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


async def test_sigterm_drains_with_503_health_checks_while_serving_then_shuts_down(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    """`engine` has migrated the test database the server starts on."""
    await asyncio.to_thread(_serve_and_drain, settings, tmp_path)


def _serve_and_drain(settings: Settings, metrics_dir: Path) -> None:
    server = ApiProcess(
        settings, metrics_dir, workers=1, METRICS_ENABLED="false", SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS)
    )
    process, port = server.process, server.public_port
    try:
        server.wait_until_started(workers=1)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as kept_alive:
            assert kept_alive.get("/health/live").status_code == 200
            assert kept_alive.get("/health/ready").status_code == 200

            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            while (live := kept_alive.get("/health/live")).status_code == 200:
                assert time.monotonic() - signalled < 1, "still live 1 s after SIGTERM"
                time.sleep(0.02)
            assert live.status_code == 503
            assert live.json() == {"status": "draining"}
            ready = kept_alive.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "draining"
            # Everything else is served as before, on the kept-alive connection and on a new one.
            assert kept_alive.get("/.well-known/jwks.json").status_code == 200
            with httpx.Client(base_url=base, timeout=10, headers={"Connection": "close"}) as fresh:
                assert fresh.get("/.well-known/openid-configuration").status_code == 200
            assert time.monotonic() - signalled < DRAIN_SECONDS - 0.5, "too slow to show the drain"

        # The socket closes only once the drain is over, and the process then ends.
        while not _refused(port):
            assert time.monotonic() - signalled < DRAIN_SECONDS + 15, "".join(server.log)
            time.sleep(0.05)
        closed_after = time.monotonic() - signalled
        process.wait(timeout=30)
    finally:
        server.stop()  # a second SIGTERM if it still runs; its log read to the end
    assert closed_after >= DRAIN_SECONDS - 0.1, f"closed {closed_after:.2f} s after SIGTERM"
    assert any(f"draining for {DRAIN_SECONDS:.1f} s" in line for line in server.log), "".join(server.log)
