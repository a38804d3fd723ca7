"""Authorization codes: handed out by the authorization endpoint, exchanged once at the token endpoint.

A code lives CODE_TTL (60 s, RFC 9700 §4.2 and the issue's bound) and is checked against what its request
bound it to: the client, the exact redirect URI and the PKCE verifier (RFC 7636 §4.6, S256 only). The
grant (`app.auth.grants.authorization_code`) claims it here and, on a second use, ends the session the
first use started.
"""

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.opaque_tokens import digest, new_token
from app.oidc import repository
from app.oidc.models import AuthorizationCode

CODE_TTL: Final = timedelta(seconds=60)
# RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# An S256 challenge is the base64url of a SHA-256 digest without padding: exactly 43 characters.
S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def verifier_matches(verifier: str, challenge: str) -> bool:
    if not VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)


async def issue(
    db: AsyncSession,
    *,
    client_id: str,
    user_id: uuid.UUID,
    browser_session_id: uuid.UUID,
    redirect_uri: str,
    code_challenge: str,
    nonce: str | None,
    scopes: Sequence[str],
    auth_time: datetime,
    amr: Sequence[str],
    now: datetime,
) -> str:
    """A new code for the authorization response; only its digest is stored."""
    code, code_hash = new_token()
    await repository.add(
        db,
        AuthorizationCode(
            code_hash=code_hash,
            client_id=client_id,
            user_id=user_id,
            browser_session_id=browser_session_id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            nonce=nonce,
            scopes=list(scopes),
            auth_time=auth_time,
            amr=list(amr),
            created_at=now,
            expires_at=now + CODE_TTL,
        ),
    )
    return code


async def claim(db: AsyncSession, code: str, now: datetime) -> AuthorizationCode | None:
    """The unused code `code`, now marked used; None for an unknown or spent one."""
    if len(code) > 512:
        return None
    return await repository.claim(db, digest(code), now)


async def spent(db: AsyncSession, code: str) -> AuthorizationCode | None:
    """The code `code` if it exists and was used before: a replay."""
    if len(code) > 512:
        return None
    found = await repository.find(db, digest(code))
    return found if found is not None and found.used_at is not None else None


async def bind_session(db: AsyncSession, code: AuthorizationCode, session_id: uuid.UUID) -> None:
    await repository.set_session(db, code.id, session_id)
