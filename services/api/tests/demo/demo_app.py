"""A small FastAPI app that signs its users in with pyauth and whose API accepts pyauth's access tokens: the
example to copy for "Sign in with pyauth" (README, "The demo app").

- Sign-in is the authorization code flow with PKCE (S256), as a confidential client (with a secret) or a
  public one (without): `state` ties the answer to this browser, `nonce` ties the ID token to this sign-in,
  the RFC 9207 `iss` parameter names the issuer that answered, and the ID token is checked against pyauth's
  published keys (signature, `iss`, `aud`, `exp`, `iat`, `nonce`, `azp`).
- `/api/me` is the resource-server half: `pyauth-resource` verifies the bearer access token (RFC 9068).
  The home page calls it over HTTP with the signed-in user's access token, as a separate service would be.
- Sign-out ends the app's session and sends the browser to pyauth's `end_session_endpoint` (OpenID Connect
  RP-Initiated Logout 1.0) with the ID token as `id_token_hint`, so that pyauth's SSO session ends too.

Only the standard endpoints from pyauth's discovery document are used: any OpenID Connect provider would
do. Sessions live in this process's memory (the cookie holds a random id, never a token); a real app keeps
them in its own session store. Run it with `python -m tests.demo` (see `tests/demo/__main__.py`).
"""

import base64
import hashlib
import html
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pyauth_resource import AccessTokenClaims, AccessTokenVerifier
from pyauth_resource.fastapi import BearerAuth

SESSION_COOKIE = "demo_session"
ID_TOKEN_LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class DemoSettings:
    """`issuer`: pyauth's issuer (its PUBLIC_BASE_URL). `client_secret`: None for a public client.
    `base_url`: where this app is served; its redirect URI is `<base_url>/callback` and its post-logout
    redirect URI `<base_url>/signed-out`, both registered with the client. `audience`: the `aud` this
    app's API accepts in access tokens (pyauth's JWT_AUDIENCE, or the client's `access_token_audience`)."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    base_url: str = "http://127.0.0.1:8001"
    audience: str = "pyauth"
    scope: str = "openid email"

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"{self.base_url}/signed-out"

    @classmethod
    def from_environment(cls) -> "DemoSettings":
        return cls(
            issuer=os.environ["DEMO_ISSUER"],
            client_id=os.environ["DEMO_CLIENT_ID"],
            client_secret=os.environ.get("DEMO_CLIENT_SECRET") or None,
            base_url=os.environ.get("DEMO_BASE_URL", cls.base_url),
            audience=os.environ.get("DEMO_AUDIENCE", cls.audience),
        )


@dataclass
class Session:
    """What the app keeps about one browser: the sign-in under way, then the user's tokens."""

    state: str | None = None  # the pending sign-in's: state, nonce and PKCE verifier
    nonce: str | None = None
    verifier: str | None = None
    id_token: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)  # the validated ID token's
    access_token: str | None = None
    logout_state: str | None = None  # the pending sign-out's `state`


class SignInFailed(Exception):
    """The sign-in's answer did not pass a check; the message says which (no token in it)."""


class Provider:
    """pyauth as this app sees it: the discovery document and the JWKS, fetched once and cached."""

    def __init__(self, settings: DemoSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            response = await self.http.get(f"{self.settings.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            metadata: dict[str, Any] = response.json()
            if metadata.get("issuer") != self.settings.issuer:  # OpenID Connect Discovery §4.3
                raise SignInFailed("the discovery document names another issuer")
            self._metadata = metadata
        return self._metadata

    async def key(self, kid: str) -> jwt.PyJWK:
        """The signing key `kid`, fetching the JWKS again when it is new (pyauth rotates its keys)."""
        if kid not in self._keys:
            response = await self.http.get((await self.metadata())["jwks_uri"])
            response.raise_for_status()
            self._keys = {
                key.key_id: key for key in jwt.PyJWKSet.from_dict(response.json()).keys if key.key_id
            }
        if kid not in self._keys:
            raise SignInFailed("the ID token is signed with a key pyauth does not publish")
        return self._keys[kid]

    async def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """The token endpoint's answer for `code` (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "code_verifier": verifier,
        }
        headers = {}
        if self.settings.client_secret is None:
            form["client_id"] = self.settings.client_id  # a public client names itself, no secret
        else:  # client_secret_basic: each part form-urlencoded first (RFC 6749 §2.3.1)
            pair = f"{quote(self.settings.client_id, safe='')}:{quote(self.settings.client_secret, safe='')}"
            headers["Authorization"] = f"Basic {base64.b64encode(pair.encode()).decode()}"
        token_endpoint = (await self.metadata())["token_endpoint"]
        response = await self.http.post(token_endpoint, data=form, headers=headers)
        if response.status_code != 200:
            raise SignInFailed(f"the token endpoint answered {response.status_code}")
        tokens: dict[str, Any] = response.json()
        return tokens

    async def validated_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims once OpenID Connect Core §3.1.3.7's checks pass."""
        try:
            key = await self.key(jwt.get_unverified_header(id_token).get("kid", ""))
            allowed = (await self.metadata())["id_token_signing_alg_values_supported"]
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=[key.algorithm_name] if key.algorithm_name in allowed else [],
                audience=self.settings.client_id,
                issuer=self.settings.issuer,
                leeway=ID_TOKEN_LEEWAY_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as error:
            raise SignInFailed(f"the ID token is not valid: {error}") from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SignInFailed("the ID token's nonce is not this sign-in's")
        if claims.get("azp", self.settings.client_id) != self.settings.client_id:
            raise SignInFailed("the ID token was issued to another client")
        return claims


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · pyauth demo</title></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>",
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def create_demo_app(settings: DemoSettings, http: httpx.AsyncClient | None = None) -> FastAPI:
    """The app; `http` (optional) is the client it reaches pyauth and its own API with, closed by whoever
    made it (tests pass one that speaks to the apps in process)."""
    own_http = http is None
    http = http or httpx.AsyncClient(timeout=10)
    provider = Provider(settings, http)
    verifier = AccessTokenVerifier(settings.issuer, audience=settings.audience, http_client=http)
    auth = BearerAuth(verifier, realm="demo")
    sessions: dict[str, Session] = {}
    secure = settings.base_url.startswith("https://")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await verifier.aclose()
        if own_http:
            await http.aclose()

    app = FastAPI(title="pyauth demo", lifespan=lifespan)

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(SESSION_COOKIE, ""))

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        session = session_of(request)
        if session is None or session.access_token is None:
            return page("Welcome", '<p><a href="/login">Sign in with pyauth</a></p>')
        # The API, called as any client of it would: over HTTP, with the access token.
        answer = await http.get(
            f"{settings.base_url}/api/me", headers={"Authorization": f"Bearer {session.access_token}"}
        )
        email = html.escape(str(session.claims.get("email", session.claims["sub"])))
        return page(
            "Signed in",
            f'<p>Signed in as <strong id="email">{email}</strong>.</p>'
            f'<p>The API answered <span id="api-status">{answer.status_code}</span>: '
            f'<code id="api-answer">{html.escape(answer.text)}</code></p>'
            '<form method="post" action="/logout"><button type="submit">Sign out</button></form>',
        )

    @app.get("/login")
    async def login(request: Request) -> Response:
        sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)  # a new sign-in, a new session id
        code_verifier, challenge = pkce_pair()
        session = Session(
            state=secrets.token_urlsafe(16), nonce=secrets.token_urlsafe(16), verifier=code_verifier
        )
        session_id = secrets.token_urlsafe(32)
        sessions[session_id] = session
        query = urlencode(
            {
                "response_type": "code",
                "client_id": settings.client_id,
                "redirect_uri": settings.redirect_uri,
                "scope": settings.scope,
                "state": session.state,
                "nonce": session.nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        response = RedirectResponse(f"{(await provider.metadata())['authorization_endpoint']}?{query}", 303)
        # SameSite=Lax: sent on pyauth's top-level redirect back to /callback, not on a foreign site's POST.
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax", secure=secure)
        return response

    @app.get("/callback")
    async def callback(request: Request) -> Response:
        session, params = session_of(request), request.query_params
        try:
            if session is None or session.state is None or session.nonce is None or session.verifier is None:
                raise SignInFailed("no sign-in is under way in this browser")
            if not secrets.compare_digest(params.get("state", ""), session.state):
                raise SignInFailed("the answer's state is not this sign-in's")
            if params.get("iss") != settings.issuer:  # RFC 9207 §2.4: the issuer that answered
                raise SignInFailed("the answer comes from another issuer")
            if "error" in params:
                raise SignInFailed(f"pyauth answered {params['error']}")
            tokens = await provider.exchange(params.get("code", ""), session.verifier)
            claims = await provider.validated_id_token(tokens.get("id_token", ""), session.nonce)
        except SignInFailed as error:
            return page("Sign-in failed", f"<p>{html.escape(str(error))}</p>", 400)
        finally:
            if session is not None:  # a state, nonce and verifier serve one answer only
                session.state = session.nonce = session.verifier = None
        session.id_token, session.access_token = tokens["id_token"], tokens["access_token"]
        session.claims = claims
        return RedirectResponse("/", 303)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        """Ends this app's session, then pyauth's: a POST (a form's button), so that another site cannot
        sign the user out with a link; the Lax cookie is not sent on a foreign site's POST."""
        session = session_of(request)
        end_session = (await provider.metadata()).get("end_session_endpoint")
        if session is None or session.id_token is None or end_session is None:
            sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
            return RedirectResponse("/", 303)
        session.logout_state = secrets.token_urlsafe(16)
        query = urlencode(
            {
                "id_token_hint": session.id_token,
                "post_logout_redirect_uri": settings.post_logout_redirect_uri,
                "state": session.logout_state,
            }
        )
        session.id_token, session.claims, session.access_token = None, {}, None
        return RedirectResponse(f"{end_session}?{query}", 303)

    @app.get("/signed-out")
    async def signed_out(request: Request) -> Response:
        session = session_of(request)
        expected = session.logout_state if session else None
        if expected is None or not secrets.compare_digest(request.query_params.get("state", ""), expected):
            return page("Sign-out failed", "<p>This browser was not signing out.</p>", 400)
        sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = page("Signed out", '<p>You are signed out.</p><p><a href="/login">Sign in again</a></p>')
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/api/me")
    async def me(
        claims: Annotated[AccessTokenClaims, Depends(auth.require(scopes=["email"]))],
    ) -> dict[str, Any]:
        """The API: pyauth-resource has verified the access token (signature, typ, iss, aud, exp, scope)."""
        return {"sub": claims.sub, "client_id": claims.client_id, "scope": claims.scope}

    return app
