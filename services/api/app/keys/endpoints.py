"""The JWKS that resource servers verify access tokens with, served from the in-memory key ring. The
discovery documents that point at it are the authorization server's (`app.oauth.discovery`)."""

import functools
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.core.exact_routes import PreparedResponse
from app.core.requests import first_header
from app.core.security import Header
from app.keys.keyring import KeyRing, PublishedJwks

router = APIRouter(tags=["keys"])

JWKS_PATH = "/.well-known/jwks.json"


@router.get(
    JWKS_PATH,
    summary="Public keys that verify access and ID tokens (RFC 7517)",
    response_class=JSONResponse,
)
async def jwks(request: Request) -> Response:
    """The body and both answers' headers were made when the key set last changed (`_answers`); a
    client that sends the ETag back in `If-None-Match` gets 304 Not Modified without the body (RFC 9110
    §13.1.2). Served by the exact-route dispatch (`app.main`) too."""
    state = request.app.state
    keyring: KeyRing = state.keyring
    if keyring.refresh_due():
        await keyring.maybe_refresh()
    # Relying parties may cache it for JWKS_CACHE_MAX_AGE_SECONDS: a rotated-in key is published at
    # least that long before it signs (KEY_PUBLICATION_LEAD_SECONDS), so a cached set always holds it.
    answers = _answers(keyring.jwks_document(), state.settings.JWKS_CACHE_MAX_AGE_SECONDS)
    if_none_match = first_header(request.scope, b"if-none-match")
    if if_none_match is not None and _matches(if_none_match, answers.document.etag):
        return PreparedResponse(304, b"", answers.not_modified)
    return PreparedResponse(200, answers.document.body, answers.ok)


@dataclass(frozen=True, slots=True)
class _Answers:
    document: PublishedJwks
    ok: tuple[Header, ...]
    not_modified: tuple[Header, ...]  # RFC 9110 §15.4.5: the validators and Cache-Control, no body


@functools.lru_cache(maxsize=8)
def _answers(document: PublishedJwks, max_age: int) -> _Answers:
    """The headers of the key set's two answers, made once per key set (and cache lifetime)."""
    cache_control = f"public, max-age={max_age}".encode()
    validators = ((b"cache-control", cache_control), (b"etag", document.etag.encode()))
    content = ((b"content-length", str(len(document.body)).encode()), (b"content-type", b"application/json"))
    return _Answers(document, validators + content, validators)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: `*`, or a list of entity tags compared weakly (a W/ prefix is ignored)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
