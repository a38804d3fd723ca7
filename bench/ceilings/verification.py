"""Token verification in a resource server, for `make bench`: pyauth-resource's verifier and its ceiling,
PyJWT alone, on one real access token, in one process pinned to one core. Runs in the API image with the
API's settings (its issuer and audience) and the library's source mounted (compose.bench.yaml).

The library is configured as a resource server would be, with the issuer URL only: it reads the stack's
discovery document and JWKS once, then verifies the same token in a loop. The ceiling is `jwt.decode` with
the same public key (parsed from the same JWKS, fetched apart from the library) and the same checks
(signature, `iss`, `aud`, `exp`, the required claims), without the library around it: the ratio is what
the library's own checks cost. The two loops alternate in rounds, so both see the machine in the same
state. Around the measured loops the library's own counter (`verifier.fetches`) says how many HTTP
requests it sent to pyauth: verification must cost none once the keys are cached.

It serves one request at a time on port 8000: `POST /measure` with `{"token": "<access token>",
"seconds": 10}` answers the figures as JSON (422 with `{"error": …}` when the token does not verify). The
issuer's URL (PUBLIC_BASE_URL) may name a host that is not this network's API: requests to it go to
VERIFY_API_URL (the API under test) instead, path and query unchanged, as through a reverse proxy.
"""

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from http.server import HTTPServer
from typing import Any

import httpx
import jwt
from json_http import JsonHandler
from pyauth_resource import AccessTokenVerifier, ResourceError

from app.core.config import get_settings

API_URL = os.environ.get("VERIFY_API_URL", "http://bench-api:8000")
WARM_UP_SECONDS = 1.0
ROUNDS = 5  # ceiling, library, ceiling, library, …: each side gets `seconds / ROUNDS` per round
BATCH = 50  # verifications between two looks at the clock
MAX_BODY_BYTES = 16 * 1024
# What the library requires of pyauth's access tokens (RFC 9068 §2.2), so that PyJWT checks as much.
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "client_id"]


class ToTheApiUnderTest(httpx.AsyncBaseTransport):
    """Sends requests for the issuer's origin to the API under test: the issuer's public URL may not be
    reachable from inside the compose network (`http://localhost:8000` names this container)."""

    def __init__(self, issuer: str, api_url: str) -> None:
        self.issuer = httpx.URL(issuer)
        self.api = httpx.URL(api_url)
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if (url.scheme, url.host, url.port) == (self.issuer.scheme, self.issuer.host, self.issuer.port):
            request.url = url.copy_with(scheme=self.api.scheme, host=self.api.host, port=self.api.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def pinned_to_one_core() -> tuple[int, set[int]]:
    """Pin this thread (which runs the event loop and both loops) to the last core it may use; returns that
    core and the cores it was allowed before, to restore afterwards."""
    allowed = os.sched_getaffinity(0)
    core = max(allowed)
    os.sched_setaffinity(0, {core})
    return core, allowed


async def timed(run_batch: Callable[[], Awaitable[None]], seconds: float) -> tuple[int, float, float]:
    """Batches of BATCH verifications for `seconds`: how many, wall seconds, and this thread's CPU seconds
    (the loop, the library's and PyJWT's code all run on this one thread)."""
    done = 0
    started, cpu_started = time.perf_counter(), time.thread_time()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        await run_batch()
        done += BATCH
    return done, time.perf_counter() - started, time.thread_time() - cpu_started


async def measure(token: str, seconds: float) -> dict[str, Any]:
    settings = get_settings()
    issuer, audience = settings.issuer, settings.JWT_AUDIENCE
    transport = ToTheApiUnderTest(issuer, API_URL)
    async with httpx.AsyncClient(transport=transport, timeout=10) as http:
        # The ceiling's key: the same JWKS, fetched here, not through the library.
        discovery = (await http.get(issuer + "/.well-known/openid-configuration")).raise_for_status().json()
        jwks = (await http.get(discovery["jwks_uri"])).raise_for_status().json()
        kid = jwt.get_unverified_header(token)["kid"]
        public = next(jwt.PyJWK(entry) for entry in jwks["keys"] if entry.get("kid") == kid)

        # A resource server's verifier: issuer URL only (plain http is fine inside the compose network).
        verifier = AccessTokenVerifier(issuer, audience=audience, http_client=http, allow_insecure_http=True)
        claims = await verifier.verify(token)  # reads discovery and the JWKS: the only fetches
        loaded = verifier.fetches

        def ceiling_once() -> None:
            jwt.decode(
                token,
                public.key,
                algorithms=[public.algorithm_name],
                audience=audience,
                issuer=issuer,
                options={"require": REQUIRED_CLAIMS},
            )

        async def library_batch() -> None:
            for _ in range(BATCH):
                await verifier.verify(token)

        async def ceiling_batch() -> None:
            for _ in range(BATCH):
                ceiling_once()

        core, allowed = pinned_to_one_core()
        try:
            await timed(ceiling_batch, WARM_UP_SECONDS)
            await timed(library_batch, WARM_UP_SECONDS)
            before = verifier.fetches
            totals = {"ceiling": [0, 0.0, 0.0], "library": [0, 0.0, 0.0]}
            for _ in range(ROUNDS):
                for side, batch in (("ceiling", ceiling_batch), ("library", library_batch)):
                    for index, value in enumerate(await timed(batch, seconds / ROUNDS)):
                        totals[side][index] += value
            during = verifier.fetches - before
        finally:
            os.sched_setaffinity(0, allowed)

    def figures(side: str) -> dict[str, Any]:
        count, wall, cpu = totals[side]
        return {
            "verifications": int(count),
            "seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 3),
            # Per second of the pinned core's time given to this thread: verifications per second per
            # core, whatever else the machine runs. On an idle machine it equals `per_second`.
            "per_core_second": round(count / cpu, 1) if cpu else 0.0,
            "per_second": round(count / wall, 1) if wall else 0.0,
            "microseconds_each": round(cpu / count * 1e6, 2) if count else None,
            # How much of the pinned core the loop got: below 1, something else ran on that core.
            "core_share": round(cpu / wall, 3) if wall else None,
        }

    library, ceiling = figures("library"), figures("ceiling")
    ratio = library["per_core_second"] / ceiling["per_core_second"] if ceiling["per_core_second"] else 0.0
    return {
        "core": core,
        "rounds": ROUNDS,
        "algorithm": public.algorithm_name,
        "token_bytes": len(token),
        "client_id": claims.client_id,
        "library": library,
        "ceiling": ceiling,
        "ratio": round(ratio, 3),
        "fetches_to_load": {"discovery": loaded.discovery, "jwks": loaded.jwks},
        "fetches_during_loop": during.total,
    }


class Handler(JsonHandler):
    def do_POST(self) -> None:
        if self.path != "/measure":
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            self.send_error(413 if length else 400)
            return
        request = json.loads(self.rfile.read(length))
        seconds = min(float(request.get("seconds", 10)), 60.0)
        try:
            answer, status = asyncio.run(measure(str(request["token"]), seconds)), 200
        except (ResourceError, jwt.PyJWTError, httpx.HTTPError, KeyError, StopIteration, ValueError) as exc:
            # The bench's gate reports why (an InvalidToken says only that); the token is never echoed.
            answer, status = {"error": f"{type(exc).__name__}: {getattr(exc, 'description', exc)}"}, 422
        self.send_json(answer, status)


def main() -> None:
    HTTPServer(("0.0.0.0", 8000), Handler).serve_forever()  # noqa: S104 - inside its container


if __name__ == "__main__":
    main()
