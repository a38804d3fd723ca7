"""Request guards and response headers, as the request edge (`app.core.edge`) applies them to every request
(no buffering beyond the small bodies pyauth accepts, no extra task per request).

- `RequestGuard`: bodies over MAX_BODY_BYTES get 413 (by Content-Length, or while streaming), media types
  other than JSON and form get 415, and so does a non-empty body without a media type (some FastAPI
  versions parse it as JSON), JSON nested deeper than MAX_JSON_DEPTH gets 400 before any parser runs.
- `SecurityHeaders`: `X-Content-Type-Options: nosniff` everywhere, `Cache-Control: no-store` unless the
  endpoint chose a policy, a restrictive CSP except on the API docs, HSTS when configured.
- `docs_csp`: the API docs pages' own CSP: their assets from pyauth only, their inline code by hash.
"""

import base64
import hashlib
import json
import re
from collections.abc import Iterable

from starlette.types import Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.requests import first_header

ACCEPTED_MEDIA_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"})
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
# Methods whose body pyauth never reads: their requests pass the guard unread.
UNGUARDED_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
DOCS_ASSETS_PATH = "/docs/assets"  # Swagger UI's and ReDoc's scripts, styles and icon, served by pyauth
Header = tuple[bytes, bytes]
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def _hashes(pattern: re.Pattern[str], html: str) -> str:
    return "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()}'"
        for code in pattern.findall(html)
    )


def docs_csp(html: str, *, generated_styles: bool = False) -> str:
    """The CSP of a docs page (Swagger UI, ReDoc): scripts, styles, the icon and the OpenAPI document come
    from pyauth's own origin, which serves them (DOCS_ASSETS_PATH), and nothing from anywhere else; the
    page's inline script and style are allowed by their hash, no other inline script. `data:` images are
    the icons inside Swagger UI's stylesheet; ReDoc builds its search worker from a `blob:` URL and writes
    its styles into `<style>` elements at run time (`generated_styles`: inline styles, never scripts).
    Swagger UI's Authorize posts to the token endpoint with fetch (`connect-src 'self'`)."""
    styles = " 'unsafe-inline'" if generated_styles else _hashes(_INLINE_STYLE, html)
    return (
        "default-src 'none'; "
        f"script-src 'self'{_hashes(_INLINE_SCRIPT, html)}; "
        f"style-src 'self'{styles}; "
        "img-src 'self' data:; connect-src 'self'; worker-src blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True if arrays/objects nest deeper than `limit`. A byte scan that skips strings: linear and cheap,
    run before any JSON parser can recurse."""
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


async def _reject(send: Send, status: int, code: str, detail: str) -> None:
    body = json.dumps({"error": code, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, settings: Settings) -> None:
        self.max_body = settings.MAX_BODY_BYTES
        self.max_depth = settings.MAX_JSON_DEPTH

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The request's `receive`, replaying the body the guard read, if the request may go on; None once
        the refusal was sent. Call it only for methods outside UNGUARDED_METHODS."""
        length = first_header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reject(send, 413, "request_too_large", f"The body is larger than {self.max_body} bytes.")
            return None
        media_type = (first_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
        if length != "0" and media_type and media_type not in ACCEPTED_MEDIA_TYPES:
            await _reject(
                send,
                415,
                "unsupported_media_type",
                "Send application/json, or a form for the token endpoints.",
            )
            return None
        body = await self._read_body(receive)
        if body is None:
            await _reject(send, 413, "request_too_large", f"The body is larger than {self.max_body} bytes.")
            return None
        if body and not media_type:
            # FastAPI (before its strict_content_type) parses such a body as JSON, past the depth check
            # below; refusing it here holds whatever version parses the body afterwards.
            await _reject(
                send,
                415,
                "unsupported_media_type",
                "A body needs a Content-Type: application/json, or a form for the token endpoints.",
            )
            return None
        if media_type == "application/json" and json_depth_exceeds(body, self.max_depth):
            await _reject(send, 400, "json_too_deep", f"JSON may nest at most {self.max_depth} levels.")
            return None
        return _replay(body, receive)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# The headers an endpoint may set itself; where it set none of them (nearly every answer), the defaults
# below are added as one prepared list.
_CHOSEN_BY_ENDPOINTS = frozenset(
    {b"cache-control", b"content-security-policy", b"x-frame-options", b"referrer-policy"}
)


class SecurityHeaders:
    def __init__(self, settings: Settings) -> None:
        self.hsts = (
            f"max-age={settings.HSTS_SECONDS}; includeSubDomains".encode()
            if settings.HSTS_SECONDS > 0
            else None
        )
        self._api_defaults = list(self._missing(set(), is_docs=False))
        # What `_missing` adds, by the endpoint-chosen headers present (few combinations: one per kind of
        # answer) and `is_docs`.
        self._added: dict[tuple[frozenset[bytes], bool], list[Header]] = {}

    def completed(self, headers: Iterable[Header], *, is_docs: bool) -> list[Header]:
        """A response's headers with the security headers it lacks added after its own."""
        completed = list(headers)
        chosen = _CHOSEN_BY_ENDPOINTS.intersection([name.lower() for name, _ in completed])
        if not is_docs and not chosen:
            completed += self._api_defaults
            return completed
        key = (chosen, is_docs)
        added = self._added.get(key)
        if added is None:
            added = self._added[key] = list(self._missing(set(chosen), is_docs))
        completed += added
        return completed

    def _missing(self, present: set[bytes], is_docs: bool) -> Iterable[Header]:
        yield b"x-content-type-options", b"nosniff"
        if b"cache-control" not in present and not is_docs:
            yield b"cache-control", b"no-store"
        if b"content-security-policy" not in present and not is_docs:
            yield b"content-security-policy", API_CSP
        if b"x-frame-options" not in present:
            yield b"x-frame-options", b"DENY"
        if b"referrer-policy" not in present:
            yield b"referrer-policy", b"no-referrer"
        if self.hsts is not None:
            yield b"strict-transport-security", self.hsts
