"""Real HTTP servers for tests: an ASGI app served by uvicorn on a loopback socket of its own, so that a
client (a resource-server library, a browser, PyJWT's JWKS client) reaches it over a real connection."""

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

# httpx builds a TLS context for every client it makes unless given one: it loads the CA bundle, 30-110 ms
# of CPU a client (the resource tests make about a hundred). The servers here speak plain HTTP on loopback,
# so their clients share this one (`httpx.AsyncClient(verify=LOOPBACK_TLS, ...)`).
LOOPBACK_TLS = ssl.create_default_context()


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"http://{host}:{port}"


@asynccontextmanager
async def serving(app: ASGIApp, sock: socket.socket) -> AsyncIterator[str]:
    """`app` served by uvicorn on `sock` (its lifespan, if any, run by the caller); yields its URL."""
    # Keep-alive well past any test's length: a connection the server closes just as the library reuses it
    # costs a retried GET, which would count as a second fetch in the tests that count them.
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, timeout_keep_alive=300)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
