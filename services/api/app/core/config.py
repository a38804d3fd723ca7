"""Settings: every knob pyauth has, read from the process environment and then `.env`.

Process environment wins over `.env`, as pydantic-settings does. `DATABASE_URL` is required and validated.
Secrets may instead come from files (`KEY_ENCRYPTION_KEY_FILE`, `DATABASE_PASSWORD_FILE`, ...: a Docker or
Swarm secret mounted under /run/secrets); ENVIRONMENT=production takes them only from files.
"""

import base64
import binascii
import ipaddress
import os
import re
import zlib
from functools import lru_cache
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# The committed development values (.env, the tests' key): refused whenever PUBLIC_BASE_URL is not loopback.
DEVELOPMENT_SECRETS = frozenset(
    {
        "dev-only-key-encryption-key-change-me-in-production",
        "test-only-key-encryption-key-0123456789",
        "pyauth",
        "postgres",
        "password",
        "",
    }
)
# A production KEY_ENCRYPTION_KEY is 32+ random bytes, written in hex or base64 (standard or URL-safe,
# padding optional): `openssl rand -base64 32`. See `random_key_problem`.
KEY_ENCRYPTION_KEY_MIN_BYTES = 32
# How often each process re-reads `signing_keys` (app.keys.keyring): a key made elsewhere reaches its JWKS
# this much later, which KEY_PUBLICATION_LEAD_SECONDS must cover on top of the JWKS cache max-age.
KEY_RING_REFRESH_SECONDS = 30
# OWASP Password Storage cheat sheet's argon2id minimum: 19 MiB of memory, 2 passes, 1 lane.
ARGON2_FLOOR_MEMORY_KIB = 19456
ARGON2_FLOOR_TIME_COST = 2
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")


def is_loopback_url(url: str) -> bool:
    """True if the URL's host is `localhost` or a loopback address (127.0.0.0/8, ::1): a service only
    this machine can reach. Anything else, an unparsable URL included, counts as public."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # An IPv4-mapped IPv6 address counts as public (fail closed): Python 3.13 calls ::ffff:127.0.0.1
    # loopback, 3.11 does not, and the rule must not depend on the interpreter.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False
    return address.is_loopback


def random_key_problem(key: str) -> str | None:
    """Why `key` is not 32+ random bytes in hex or base64, or None if it looks like such a key.

    Decoding proves the length only: a passphrase of lower-case words and hyphens also reads as base64url.
    So the text must also look random (hex mixes digits and letters, base64 mixes upper- and lower-case
    letters) and the decoded bytes must not compress (no repeated pattern). A random key passes always
    (deflate cannot shorten 32 random bytes); a passphrase or a pattern fails.
    """
    if _HEX.fullmatch(key) and len(key) % 2 == 0:
        decoded = bytes.fromhex(key)
        mixed = any(c.isdigit() for c in key) and any(c.isalpha() for c in key)
    elif _BASE64.fullmatch(key):
        data = key.rstrip("=")
        try:
            decoded = base64.urlsafe_b64decode(
                data.replace("+", "-").replace("/", "_") + "=" * (-len(data) % 4)
            )
        except (binascii.Error, ValueError):
            return "KEY_ENCRYPTION_KEY is not valid hex or base64"
        mixed = any(c.isupper() for c in data) and any(c.islower() for c in data)
    else:
        return "KEY_ENCRYPTION_KEY must be hex or base64 (e.g. `openssl rand -base64 32`)"
    if len(decoded) < KEY_ENCRYPTION_KEY_MIN_BYTES:
        return (
            f"KEY_ENCRYPTION_KEY decodes to {len(decoded)} bytes, fewer than {KEY_ENCRYPTION_KEY_MIN_BYTES} "
            "(e.g. `openssl rand -base64 32`)"
        )
    if not mixed or len(zlib.compress(decoded, 9)) <= len(decoded):
        return "KEY_ENCRYPTION_KEY does not look random (e.g. `openssl rand -base64 32`)"
    return None


# Secrets read from a file named by NAME_FILE (a mounted Docker or Swarm secret) instead of NAME itself: the
# file's content, less its trailing newline, is the value. Production refuses them as plain values.
SECRET_FILES = {
    "KEY_ENCRYPTION_KEY": "KEY_ENCRYPTION_KEY_FILE",
    "SMTP_PASSWORD": "SMTP_PASSWORD_FILE",
}
# A database URL names no secret but its password, which comes from its own file: the URL (host, role,
# database) stays plain configuration, and the file's password is set into it.
URL_PASSWORD_FILES = {
    "DATABASE_URL": "DATABASE_PASSWORD_FILE",
    "MIGRATION_DATABASE_URL": "MIGRATION_DATABASE_PASSWORD_FILE",
}


def read_secret_file(setting: str, path: str) -> str:
    """The secret in the file `path` that the setting `setting` names, without its trailing newline.
    A refusal names the setting and the path, never the content."""
    try:
        with open(path, encoding="utf-8") as file:
            value = file.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ValueError(f"{setting}: cannot read {path} ({reason})") from None
    if not value:
        raise ValueError(f"{setting}: {path} is empty")
    return value


# Where `python -m app` serves the API inside its container; compose publishes it (API_PORT on the host).
PUBLIC_PORT = 8000


class Settings(BaseSettings):
    # hide_input_in_errors: a refusal names the problem; pydantic would also print part of the input, secrets
    # included.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    ENVIRONMENT: Literal["development", "test", "production"] = "development"

    # The database chain: this URL is the only place the database is named.
    DATABASE_URL: str
    # The schema owner's connection, used only by `alembic upgrade` (the compose migrate service); the api
    # and worker never get it. Migration 0010 grants DATABASE_URL's role the application's rights.
    MIGRATION_DATABASE_URL: str | None = Field(
        None, description="The schema owner's URL, for migrations only; unset: DATABASE_URL (one role)."
    )
    DATABASE_PASSWORD_FILE: str | None = Field(
        None, description="A file holding DATABASE_URL's password (a mounted secret); the URL then has none."
    )
    MIGRATION_DATABASE_PASSWORD_FILE: str | None = Field(
        None, description="A file holding MIGRATION_DATABASE_URL's password; the URL then has none."
    )
    DB_PGBOUNCER: bool = Field(
        False,
        description="DATABASE_URL points at PgBouncer in transaction mode: no prepared statement outlives "
        "its transaction's server connection (asyncpg's statement caches off, unique statement names).",
    )
    DB_POOL_SIZE: int = Field(
        10, ge=1, le=200, description="Per worker. Unset: 10, fewer if workers x 10 > DB_MAX_CONNECTIONS."
    )
    # 0: overflow connections get opened and closed over and over under load (a fork and a SCRAM handshake).
    DB_MAX_OVERFLOW: int = Field(0, ge=0, le=200)
    DB_POOL_TIMEOUT: float = Field(5.0, gt=0, le=120, description="Seconds to wait for a pooled connection.")
    DB_POOL_PRE_PING: bool = Field(
        False, description="Ping each connection before use (3 round trips with asyncpg); see database.py."
    )
    DB_POOL_RECYCLE: int = Field(1800, ge=-1, description="Seconds after which a connection is replaced.")
    DB_STARTUP_TIMEOUT: float = Field(30.0, ge=0, le=600, description="How long startup retries SELECT 1.")
    DB_APPLICATION_NAME: str = Field("pyauth", description="Shown in pg_stat_activity.")
    DB_READY_TIMEOUT: float = Field(2.0, gt=0, le=30, description="Bound on the readiness check's query.")

    # The server (`python -m app`): worker processes, each with its own DB pool, hashing threads and keys
    API_WORKERS: int = Field(0, ge=0, le=64, description="uvicorn worker processes; 0 means one per core.")
    SHUTDOWN_DRAIN_SECONDS: float = Field(
        0,
        ge=0,
        le=60,
        description="On SIGTERM, answer /health/live and /health/ready 503 and go on serving this long "
        "before shutting down, so that a load balancer polling them stops sending requests first (one "
        "worker per process, API_WORKERS=1, as the Swarm stack runs).",
    )
    DB_MAX_CONNECTIONS: int = Field(
        40, ge=1, le=1000, description="All workers' pools together; keep under Postgres max_connections."
    )
    PASSWORD_HASH_NICE: int = Field(
        0, ge=0, le=19, description="Hashing threads' niceness: >0, event loops go first in a login flood."
    )

    # Identity of this service: the `iss` of its tokens, and a context word refused in passwords.
    SERVICE_NAME: str = "pyauth"
    PUBLIC_BASE_URL: str = Field(
        "http://localhost:8000", description="Where clients reach pyauth; the issuer."
    )

    # Passwords (NIST SP 800-63B-4; OWASP Password Storage cheat sheet)
    PASSWORD_MIN_LENGTH: int = Field(15, ge=8, le=64)
    PASSWORD_MAX_LENGTH: int = Field(128, ge=64, le=1024, description="Code points after NFC.")
    PASSWORD_MIN_SCORE: int = Field(
        4, ge=0, le=4, description="zxcvbn score (0-4) a new password must reach; 0 turns the estimate off."
    )
    # Have I Been Pwned's range API (k-anonymity: only the first 5 hex digits of the SHA-1 leave pyauth)
    HIBP_ENABLED: bool = Field(False, description="Also refuse passwords that the range API knows.")
    HIBP_API_URL: str = Field("https://api.pwnedpasswords.com", description="GET {url}/range/{prefix}.")
    HIBP_TIMEOUT_SECONDS: float = Field(
        2.0, gt=0, le=30, description="Whole-call bound; on timeout or error the check is skipped."
    )
    HIBP_MIN_COUNT: int = Field(1, ge=1, description="Refuse when breaches hold the password this often.")
    # The OWASP floor holds unless ARGON2_BELOW_FLOOR_FOR_TESTS is set, which ENVIRONMENT=production refuses.
    ARGON2_MEMORY_KIB: int = Field(19456, ge=8, description="OWASP minimum: 19 MiB.")
    ARGON2_TIME_COST: int = Field(2, ge=1)
    ARGON2_PARALLELISM: int = Field(1, ge=1)
    ARGON2_BELOW_FLOOR_FOR_TESTS: bool = Field(
        False,
        description="Allow argon2 cost below the OWASP floor: only so a test suite hashes fast; production "
        "refuses it.",
    )
    PASSWORD_HASH_WORKERS: int = Field(
        0, ge=0, le=64, description="Hashing threads per worker; 0: the cores divided among the workers."
    )
    PASSWORD_HASH_QUEUE_MAX: int = Field(
        64, ge=1, le=10000, description="Hashes running or waiting per worker; more: 503 with Retry-After."
    )

    # Access tokens (RFC 9068 JWTs) and their signing keys
    JWT_ALGORITHM: Literal["ES256", "EdDSA"] = "ES256"
    JWT_AUDIENCE: str = "pyauth"
    ACCESS_TOKEN_TTL_SECONDS: int = Field(900, ge=60, le=86400)
    KEY_ENCRYPTION_KEY: SecretStr = Field(
        min_length=32,
        description="Encrypts signing keys at rest. 32+ characters; in production 32+ random bytes in hex or "
        "base64: `openssl rand -base64 32`.",
    )
    KEY_ENCRYPTION_KEY_FILE: str | None = Field(
        None, description="A file holding KEY_ENCRYPTION_KEY (a mounted secret); production requires it."
    )
    JWKS_CACHE_MAX_AGE_SECONDS: int = Field(
        300,
        ge=0,
        le=86400,
        description="`Cache-Control: max-age` of /.well-known/jwks.json: relying parties may hold the key "
        "set this long.",
    )
    KEY_PUBLICATION_LEAD_SECONDS: int = Field(
        600,
        ge=0,
        le=7 * 86400,
        description="A key made by `make rotate-keys` is in the JWKS this long before it signs anything, so "
        "that a relying party's cached key set already holds it. At least JWKS_CACHE_MAX_AGE_SECONDS plus "
        f"the key ring's {KEY_RING_REFRESH_SECONDS} s refresh.",
    )

    # Sessions and refresh tokens
    SESSION_ABSOLUTE_TTL_SECONDS: int = Field(30 * 86400, ge=300)
    SESSION_IDLE_TTL_SECONDS: int = Field(7 * 86400, ge=60)
    REFRESH_REUSE_GRACE_SECONDS: float = Field(10.0, ge=0, le=300)
    # The browser SSO session of the hosted pages (app.sso, app.web): one sign-in serves every client
    SSO_SESSION_ABSOLUTE_TTL_SECONDS: int = Field(
        7 * 86400, ge=300, description="A browser session ends this long after its sign-in, whatever happens."
    )
    SSO_SESSION_IDLE_TTL_SECONDS: int = Field(
        24 * 3600, ge=60, description="A browser session ends after this long without a request to pyauth."
    )

    # Passkeys (app.passkeys, W3C WebAuthn Level 3): the relying party the browser binds each passkey to
    WEBAUTHN_RP_ID: str | None = Field(
        None,
        max_length=253,
        description="The relying-party id, a domain: each origin's host is it or a subdomain of it. A "
        "passkey works only for this id, so changing it strands every enrolled passkey. Unset: "
        "PUBLIC_BASE_URL's host.",
    )
    WEBAUTHN_RP_NAME: str | None = Field(
        None, min_length=1, max_length=80, description="Shown by the authenticator. Unset: the brand name."
    )
    WEBAUTHN_ORIGINS: list[str] = Field(
        default_factory=list,
        description='The origins a ceremony may come from, e.g. ["https://id.example.com"]. Empty: '
        "PUBLIC_BASE_URL's origin.",
    )
    WEBAUTHN_CHALLENGE_TTL_SECONDS: int = Field(
        300, ge=30, le=900, description="How long a registration or sign-in challenge can be answered."
    )
    WEBAUTHN_USER_VERIFICATION: Literal["preferred", "required"] = Field(
        "preferred",
        description="User verification (PIN, biometrics) asked of a passkey used as a second factor; "
        "required refuses an assertion without it. A passwordless sign-in always requires it.",
    )

    # OAuth clients (app.clients): the password grant, and the overlap of two secrets during a rotation
    PASSWORD_GRANT_ENABLED: bool | None = Field(
        None,
        description="Serve the password grant to clients allowed it (the built-in client is); off: 400 "
        "unsupported_grant_type for everyone. Default: on except in production, where the hosted sign-in "
        "and the code flow replace it (RFC 9700 §2.4: it must not be used); true turns it on there.",
    )
    CLIENT_SECRET_ROTATION_OVERLAP_SECONDS: int = Field(
        86400,
        ge=0,
        le=30 * 86400,
        description="After a secret rotation, how long the previous secret keeps working.",
    )

    # Account lifecycle: emailed single-use tokens and the links that carry them
    ALLOW_UNVERIFIED_LOGIN: bool = True
    VERIFICATION_TOKEN_TTL_SECONDS: int = Field(24 * 3600, ge=300)
    RESET_TOKEN_TTL_SECONDS: int = Field(30 * 60, ge=60, le=24 * 3600)
    EMAIL_CHANGE_TOKEN_TTL_SECONDS: int = Field(24 * 3600, ge=300)
    ENUMERATION_SAFE_RESPONSE_SECONDS: float = Field(
        0.1, ge=0, le=5, description="Forgot-password and verification requests answer no sooner than this."
    )
    VERIFY_EMAIL_URL: str = Field(
        "{base}/auth/verify?token={token}",
        description="Link in verification mails; {base} = PUBLIC_BASE_URL.",
    )
    RESET_PASSWORD_URL: str = Field("{base}/auth/password/reset?token={token}")
    CONFIRM_EMAIL_CHANGE_URL: str = Field("{base}/auth/email/confirm?token={token}")
    CANCEL_EMAIL_CHANGE_URL: str = Field(
        "{base}/auth/email/cancel?token={token}",
        description="Link in the warning mailed to the old address; it cancels every pending email change.",
    )
    MAIL_RECIPIENT_COOLDOWN_SECONDS: int = Field(
        300,
        ge=0,
        le=24 * 3600,
        description="Forgot-password and verification requests within this time of the last link of the"
        " same kind mail nothing and issue no new link; the earlier link stays valid. 0: off.",
    )

    # Templates and languages: the words of mails and pages (app.core.templating)
    TEMPLATES_DIR: str | None = Field(
        None,
        description="A folder of templates (e.g. mail/verify_email.html, pages/base.html) that replace the"
        " shipped ones of the same name; the others stay. Unset: the shipped templates only.",
    )
    # Branding of the hosted pages (app.web) and the mailed-link pages: the templates' base layout uses them
    BRAND_NAME: str | None = Field(
        None,
        min_length=1,
        max_length=80,
        description="The name in page titles and headers. Unset: SERVICE_NAME.",
    )
    BRAND_LOGO_URL: str | None = Field(
        None,
        max_length=2048,
        description="A logo above every page: a path on this server (/static/...) or an https:// URL, whose"
        " origin the pages' CSP then allows for images. Unset: the name only.",
    )
    BRAND_PRIMARY_COLOR: str = Field(
        "#1f5fbf",
        description="Buttons and links, as #rrggbb. Button text is black or white, whichever contrasts more.",
    )

    # Outgoing mail: the outbox worker's backend, the SMTP server it delivers to, and its retry schedule
    MAIL_BACKEND: Literal["console", "smtp"] = Field(
        "console", description="console prints each mail to the worker's stdout (development only)."
    )
    MAIL_FROM: str = Field("pyauth <no-reply@localhost>", description="From header and envelope sender.")
    SMTP_HOST: str = "localhost"
    SMTP_PORT: int = Field(587, ge=1, le=65535)
    SMTP_SECURITY: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="starttls requires the upgrade; tls is implicit TLS (usually port 465)."
    )
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_PASSWORD_FILE: str | None = Field(
        None, description="A file holding SMTP_PASSWORD (a mounted secret); production requires it."
    )
    SMTP_TIMEOUT: float = Field(15.0, gt=0, le=30, description="Bound on one delivery, in seconds.")
    SMTP_TLS_CA_FILE: str | None = Field(
        None, description="PEM file of the CAs trusted for SMTP's TLS instead of the system's (a private CA)."
    )
    MAIL_MAX_ATTEMPTS: int = Field(20, ge=1, le=100, description="Then the mail is marked failed, kept.")
    MAIL_RETRY_BASE_SECONDS: float = Field(10.0, gt=0, description="First retry delay; doubles each time.")
    MAIL_RETRY_MAX_SECONDS: float = Field(3600.0, gt=0, description="Cap on the retry delay.")
    MAIL_POLL_INTERVAL_SECONDS: float = Field(1.0, gt=0, le=60, description="How often the worker looks.")
    MAIL_BATCH_SIZE: int = Field(20, ge=1, le=1000, description="Mails handled per poll at most.")

    # Abuse protection: per-client-IP limits per endpoint (requests per RATE_LIMIT_WINDOW_SECONDS), and
    # per-account login throttling (free attempts, then a delay that doubles up to a ceiling)
    RATE_LIMITS_ENABLED: bool = True
    RATE_LIMIT_WINDOW_SECONDS: int = Field(60, ge=1, le=3600)
    RATE_LIMIT_TOKEN: int = Field(60, ge=1, description="POST /auth/token, both grants.")
    RATE_LIMIT_REVOKE: int = Field(60, ge=1, description="POST /oauth2/revoke and /auth/revoke.")
    RATE_LIMIT_INTROSPECT: int = Field(
        600, ge=1, description="POST /oauth2/introspect (resource servers ask for many tokens)."
    )
    RATE_LIMIT_REGISTER: int = Field(10, ge=1)
    RATE_LIMIT_FORGOT_PASSWORD: int = Field(5, ge=1)
    RATE_LIMIT_VERIFICATION: int = Field(
        10, ge=1, description="Verification and email-change requests and links."
    )
    RATE_LIMIT_RESET_PASSWORD: int = Field(10, ge=1)
    RATE_LIMIT_CURRENT_PASSWORD: int = Field(
        10, ge=1, description="POST /users/me/password and /users/me/email: current-password checks."
    )
    RATE_LIMIT_PASSKEY_OPTIONS: int = Field(
        30,
        ge=1,
        description="The hosted pages' passkey options (POST /signin/passkey/options and "
        "/signin/second-factor/passkey-options): each writes a WebAuthn challenge row.",
    )
    TRUSTED_PROXIES: list[str] = Field(
        default_factory=list, description='CIDRs whose X-Forwarded-For is believed, e.g. ["10.0.0.0/8"].'
    )
    LOGIN_FREE_ATTEMPTS: int = Field(5, ge=1, le=100)
    LOGIN_DELAY_BASE_SECONDS: float = Field(1.0, gt=0, le=60)
    LOGIN_DELAY_MAX_SECONDS: float = Field(900.0, gt=0, le=86400)
    LOGIN_MAX_FAILURES: int = Field(
        100, ge=10, le=100, description="Then untrusted clients are refused until a reset or a known device."
    )
    DEVICE_TOKEN_TTL_SECONDS: int = Field(
        90 * 86400, ge=3600, le=400 * 86400, description="How long a login's device token is trusted."
    )

    # Multi-factor authentication (TOTP, recovery codes): app/mfa. Second-factor failures are throttled on
    # the same schedule as logins (LOGIN_*), on a counter of their own per account.
    MFA_REAUTH_SECONDS: int = Field(
        300,
        ge=30,
        le=86400,
        description="Enrolling or removing a factor or a passkey, or new recovery codes, needs a sign-in "
        "this recent (the access token's auth_time).",
    )
    MFA_TOKEN_TTL_SECONDS: int = Field(
        300,
        ge=30,
        le=3600,
        description="How long the mfa_token of a password login that needs a second factor is valid.",
    )
    MFA_TOTP_ISSUER: str | None = Field(
        None,
        max_length=100,
        description="The issuer an authenticator app shows for the TOTP entry; None: SERVICE_NAME.",
    )
    MFA_REQUIRED_FOR_ADMINS: bool | None = Field(
        None,
        description="Admin routes refuse an access token whose amr lacks mfa (403 mfa_required_for_admins); "
        "default: on in production, off otherwise.",
    )

    # Retention: the worker deletes rows nobody can use any more, every RETENTION_INTERVAL_SECONDS, in
    # batches of RETENTION_BATCH_SIZE rows (one short transaction each). Each period counts from the moment
    # the row stopped being usable; rate-limit windows go one hour after they start.
    RETENTION_INTERVAL_SECONDS: float = Field(
        3600.0, ge=1, le=86400, description="How often the worker prunes."
    )
    RETENTION_BATCH_SIZE: int = Field(1000, ge=1, le=100_000, description="Rows deleted per statement.")
    RETENTION_SESSIONS_SECONDS: int = Field(
        7 * 86400, ge=0, description="Sessions and their refresh tokens, after expiry or revocation."
    )
    RETENTION_ACCOUNT_TOKENS_SECONDS: int = Field(
        7 * 86400, ge=0, description="Verification, reset and email-change tokens, after they expire."
    )
    RETENTION_AUTHORIZATION_CODES_SECONDS: int = Field(
        86400,
        ge=0,
        description="Authorization codes, after they expire; a used one also outlives the session its "
        "exchange started (a replay must still end it, RFC 6749 §4.1.2).",
    )
    RETENTION_CLIENT_SECRETS_SECONDS: int = Field(
        7 * 86400, ge=0, description="Client secrets, after their rotation overlap ends."
    )
    RETENTION_LOGIN_THROTTLES_SECONDS: int = Field(
        86400, ge=0, description="Failure counters, after the last failure; never while they delay or lock."
    )
    RETENTION_MAIL_SECONDS: int = Field(
        7 * 86400, ge=0, description="Sent or failed outbox rows (bodies already blanked), after queueing."
    )

    # HTTP hardening
    MAX_BODY_BYTES: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024, description="Larger bodies get 413.")
    MAX_JSON_DEPTH: int = Field(32, ge=2, le=512)
    HSTS_SECONDS: int = Field(0, ge=0, description="Strict-Transport-Security max-age; 0 = not sent (HTTP).")
    CORS_ORIGINS: list[str] = Field(
        default_factory=list, description="Allowed browser origins; empty = none."
    )
    DOCS_ENABLED: bool | None = Field(
        None, description="Swagger UI at /docs; default: on except in production, which refuses true."
    )
    DEBUG: bool = False
    HOT_PATHS_ENABLED: bool = Field(
        True,
        description="Answer GET /users/me, POST /auth/token and the JWKS without FastAPI's routing (the "
        "same answers, faster); off: every request goes through FastAPI.",
    )

    # Metrics: GET /metrics in the Prometheus text format, on a port of its own that compose does not
    # publish (as Keycloak's management port), open or behind a bearer token
    METRICS_ENABLED: bool = Field(True, description="Off: no /metrics route (404) and no request timing.")
    METRICS_TOKEN: SecretStr | None = Field(
        None, description="When set (non-empty), /metrics answers 401 unless this bearer token is sent."
    )
    METRICS_PORT: int = Field(
        9000, ge=1, le=65535, description="`python -m app` serves /metrics on this port, and only there."
    )
    METRICS_ON_PUBLIC_PORT: bool = Field(
        False,
        description="Serve /metrics on the public port, not METRICS_PORT; production requires METRICS_TOKEN.",
    )

    # First administrator: created at startup while no admin exists, then ignored (or `make admin EMAIL=...`).
    # Production refuses a FIRST_ADMIN_PASSWORD: a password left in the environment outlives its use.
    FIRST_ADMIN_EMAIL: str | None = None
    FIRST_ADMIN_PASSWORD: SecretStr | None = None

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        """Fill each secret from the file its NAME_FILE setting names. Setting both NAME and NAME_FILE
        (or a password in the URL and its password file) is refused: which one is meant is not clear."""
        if not isinstance(data, dict):
            return data
        values = dict(data)
        for name, file_setting in SECRET_FILES.items():
            if not (path := values.get(file_setting)):
                continue
            if values.get(name):
                raise ValueError(f"{name} and {file_setting} are both set: set only one")
            values[name] = read_secret_file(file_setting, str(path))
        for name, file_setting in URL_PASSWORD_FILES.items():
            if not (path := values.get(file_setting)):
                continue
            if not values.get(name):
                raise ValueError(f"{file_setting} is set but {name} is not")
            try:
                url = make_url(str(values[name]))
            except ArgumentError:
                raise ValueError(f"{name} is not a URL") from None
            if url.password:
                raise ValueError(f"{name} holds a password and {file_setting} is set: set only one")
            password = read_secret_file(file_setting, str(path))
            values[name] = url.set(password=password).render_as_string(hide_password=False)
        return values

    @field_validator("DATABASE_URL")
    @classmethod
    def _require_asyncpg_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "DATABASE_URL is not a URL: expected postgresql+asyncpg://user:password@host:port/db"
            ) from None
        if url.drivername != "postgresql+asyncpg":
            raise ValueError("DATABASE_URL must start with postgresql+asyncpg:// (the async driver)")
        if not url.host or not url.database:
            raise ValueError("DATABASE_URL must name a host and a database, e.g. ...@db:5432/pyauth")
        return value

    @field_validator("SMTP_TLS_CA_FILE")
    @classmethod
    def _unset_when_empty(cls, value: str | None) -> str | None:
        # compose passes `${SMTP_TLS_CA_FILE:-}`: empty means "the system's CAs", not a file named "".
        return value or None

    @field_validator("TEMPLATES_DIR")
    @classmethod
    def _templates_dir_exists(cls, value: str | None) -> str | None:
        # Empty means unset (as compose passes it). A mistyped mount fails at start, not at the first mail.
        if value and not os.path.isdir(value):
            raise ValueError(f"TEMPLATES_DIR {value!r} is not a directory")
        return value or None

    @field_validator("BRAND_PRIMARY_COLOR")
    @classmethod
    def _hex_colour(cls, value: str) -> str:
        # It is written into the stylesheet: only a colour may get there, never CSS.
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError("BRAND_PRIMARY_COLOR must be a colour as #rrggbb, e.g. #1f5fbf")
        return value.lower()

    @field_validator("BRAND_LOGO_URL")
    @classmethod
    def _logo_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        local = value.startswith("/") and not value.startswith(("//", "/\\")) and not parts.netloc
        remote = parts.scheme == "https" and bool(parts.hostname)
        if not (local or remote) or any(ch in value for ch in "\"\\ '<>"):
            raise ValueError("BRAND_LOGO_URL must be a path on this server (/...) or an https:// URL")
        return value

    @field_validator("MIGRATION_DATABASE_URL")
    @classmethod
    def _require_asyncpg_migration_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # compose blanks it for the api and worker
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("MIGRATION_DATABASE_URL is not a URL") from None
        if url.drivername != "postgresql+asyncpg" or not url.host or not url.database:
            raise ValueError(
                "MIGRATION_DATABASE_URL must look like postgresql+asyncpg://owner:password@host/db"
            )
        return value

    @model_validator(mode="after")
    def _refuse_a_development_migration_password_in_production(self) -> Self:
        development = DEVELOPMENT_SECRETS | {"pyauth_owner"}  # .env's POSTGRES_OWNER_PASSWORD
        migration_url = self.MIGRATION_DATABASE_URL
        if (
            self.ENVIRONMENT == "production"
            and migration_url
            and (make_url(migration_url).password or "") in development
        ):
            raise ValueError(
                "ENVIRONMENT=production refuses to start: "
                "the database password in MIGRATION_DATABASE_URL is a development default"
            )
        if self.ENVIRONMENT == "production" and migration_url and not self.MIGRATION_DATABASE_PASSWORD_FILE:
            raise ValueError(
                "ENVIRONMENT=production refuses to start: MIGRATION_DATABASE_URL's password must come "
                "from MIGRATION_DATABASE_PASSWORD_FILE (a mounted secret), not the URL"
            )
        return self

    @model_validator(mode="after")
    def _keep_argon2_at_the_owasp_floor(self) -> Self:
        """OWASP's argon2id minimum (19 MiB, 2 passes) unless ARGON2_BELOW_FLOOR_FOR_TESTS says otherwise,
        and never in production: a test suite may trade the cost for speed, a deployment may not."""
        below = (
            self.ARGON2_MEMORY_KIB < ARGON2_FLOOR_MEMORY_KIB or self.ARGON2_TIME_COST < ARGON2_FLOOR_TIME_COST
        )
        if self.ENVIRONMENT == "production" and self.ARGON2_BELOW_FLOOR_FOR_TESTS:
            raise ValueError(
                "ENVIRONMENT=production refuses to start: "
                "ARGON2_BELOW_FLOOR_FOR_TESTS is for test suites only"
            )
        if below and not self.ARGON2_BELOW_FLOOR_FOR_TESTS:
            raise ValueError(
                f"ARGON2_MEMORY_KIB must be at least {ARGON2_FLOOR_MEMORY_KIB} and ARGON2_TIME_COST at least "
                f"{ARGON2_FLOOR_TIME_COST} (OWASP's argon2id minimum)"
            )
        return self

    @model_validator(mode="after")
    def _share_the_connections_among_the_workers(self) -> Self:
        if "DB_POOL_SIZE" not in self.model_fields_set:
            self.DB_POOL_SIZE = max(1, min(10, self.DB_MAX_CONNECTIONS // self.api_workers))
        return self

    @model_validator(mode="after")
    def _publish_keys_before_they_sign(self) -> Self:
        # Shorter, and a relying party holding a cached JWKS could meet a token naming a key it lacks.
        lead_needed = self.JWKS_CACHE_MAX_AGE_SECONDS + KEY_RING_REFRESH_SECONDS
        if lead_needed > self.KEY_PUBLICATION_LEAD_SECONDS:
            raise ValueError(
                f"KEY_PUBLICATION_LEAD_SECONDS must be at least JWKS_CACHE_MAX_AGE_SECONDS plus "
                f"{KEY_RING_REFRESH_SECONDS} s (the key ring's refresh): {lead_needed}"
            )
        return self

    @model_validator(mode="after")
    def _keep_the_metrics_off_the_public_port(self) -> Self:
        if self.METRICS_PORT == PUBLIC_PORT:
            raise ValueError(
                f"METRICS_PORT must not be the public port {PUBLIC_PORT}; "
                "to serve /metrics there, set METRICS_ON_PUBLIC_PORT=true"
            )
        token = self.METRICS_TOKEN.get_secret_value() if self.METRICS_TOKEN else ""
        if self.ENVIRONMENT == "production" and self.metrics_on_public_port and not token:
            raise ValueError(
                "ENVIRONMENT=production refuses to start: METRICS_ON_PUBLIC_PORT=true without METRICS_TOKEN "
                "would serve /metrics to anyone who reaches the API"
            )
        return self

    @model_validator(mode="after")
    def _refuse_development_defaults_in_production(self) -> Self:
        """Fail closed. The committed development secrets are refused whenever PUBLIC_BASE_URL is not
        loopback, whatever ENVIRONMENT says (forgetting ENVIRONMENT=production must not be enough to run
        a public host on them); ENVIRONMENT=production refuses more."""
        problems = []
        public = not is_loopback_url(self.PUBLIC_BASE_URL)
        if public or self.ENVIRONMENT == "production":
            if self.KEY_ENCRYPTION_KEY.get_secret_value() in DEVELOPMENT_SECRETS:
                problems.append("KEY_ENCRYPTION_KEY is the development default")
            if (self.database_url.password or "") in DEVELOPMENT_SECRETS:
                problems.append("the database password in DATABASE_URL is a development default")
        if self.ENVIRONMENT == "production":
            if self.DEBUG:
                problems.append("DEBUG is on")
            if not self.PUBLIC_BASE_URL.startswith("https://"):
                problems.append("PUBLIC_BASE_URL must be an https:// URL")
            if self.MAIL_BACKEND == "console":
                problems.append("MAIL_BACKEND=console would print mailed links to a log: use smtp")
            elif self.SMTP_SECURITY == "none":
                problems.append("SMTP_SECURITY=none would send mailed links in clear: use starttls or tls")
            if self.DOCS_ENABLED:
                problems.append("DOCS_ENABLED is on")
            if self.FIRST_ADMIN_PASSWORD is not None and self.FIRST_ADMIN_PASSWORD.get_secret_value():
                problems.append("FIRST_ADMIN_PASSWORD is set: remove it once the first admin exists")
            if self.KEY_ENCRYPTION_KEY.get_secret_value() not in DEVELOPMENT_SECRETS and (
                key_problem := random_key_problem(self.KEY_ENCRYPTION_KEY.get_secret_value())
            ):
                problems.append(key_problem)
            problems.extend(self._plain_secrets())
        if problems:
            why = (
                "ENVIRONMENT=production refuses to start"
                if self.ENVIRONMENT == "production"
                else "PUBLIC_BASE_URL is not a loopback address, so development secrets are refused"
            )
            raise ValueError(f"{why}: " + "; ".join(problems))
        return self

    def _plain_secrets(self) -> list[str]:
        """The secrets set as plain values rather than read from their files: an environment value shows
        in `docker inspect`, in /proc/PID/environ and in every child process; a mounted secret does not."""
        problems = []
        if not self.KEY_ENCRYPTION_KEY_FILE:
            problems.append(
                "KEY_ENCRYPTION_KEY must come from KEY_ENCRYPTION_KEY_FILE (a mounted secret), "
                "not a plain value"
            )
        if not self.DATABASE_PASSWORD_FILE:
            problems.append(
                "the database password must come from DATABASE_PASSWORD_FILE (a mounted secret), "
                "not DATABASE_URL"
            )
        smtp_password = self.SMTP_PASSWORD.get_secret_value() if self.SMTP_PASSWORD else ""
        if smtp_password and not self.SMTP_PASSWORD_FILE:
            problems.append(
                "SMTP_PASSWORD must come from SMTP_PASSWORD_FILE (a mounted secret), not a plain value"
            )
        return problems

    @model_validator(mode="after")
    def _origins_belong_to_the_rp_id(self) -> Self:
        # A browser refuses a ceremony whose origin is not the RP id or below it (WebAuthn §5.1.3 step 8):
        # such a setting would fail every enrolment, so it fails at start instead.
        rp_id = self.webauthn_rp_id
        for origin in self.webauthn_origins:
            parts = urlsplit(origin)
            host = parts.hostname or ""
            if parts.scheme not in {"http", "https"} or parts.path not in {"", "/"} or not host:
                raise ValueError(f"WEBAUTHN_ORIGINS: {origin!r} is not an origin (scheme://host[:port])")
            if host != rp_id and not host.endswith("." + rp_id):
                raise ValueError(f"WEBAUTHN_ORIGINS: {origin!r} is not on WEBAUTHN_RP_ID {rp_id!r}")
        return self

    @property
    def webauthn_rp_id(self) -> str:
        """The WebAuthn relying-party id: WEBAUTHN_RP_ID, or PUBLIC_BASE_URL's host."""
        return (self.WEBAUTHN_RP_ID or urlsplit(self.PUBLIC_BASE_URL).hostname or "localhost").lower()

    @property
    def webauthn_rp_name(self) -> str:
        return self.WEBAUTHN_RP_NAME or self.BRAND_NAME or self.SERVICE_NAME

    @property
    def webauthn_origins(self) -> list[str]:
        """Where ceremonies may come from: WEBAUTHN_ORIGINS, or PUBLIC_BASE_URL's origin."""
        if self.WEBAUTHN_ORIGINS:
            return [origin.rstrip("/") for origin in self.WEBAUTHN_ORIGINS]
        parts = urlsplit(self.PUBLIC_BASE_URL)
        return [f"{parts.scheme}://{parts.netloc}"]

    @property
    def mfa_required_for_admins(self) -> bool:
        if self.MFA_REQUIRED_FOR_ADMINS is not None:
            return self.MFA_REQUIRED_FOR_ADMINS
        return self.ENVIRONMENT == "production"

    @property
    def password_grant_enabled(self) -> bool:
        if self.PASSWORD_GRANT_ENABLED is not None:
            return self.PASSWORD_GRANT_ENABLED
        return self.ENVIRONMENT != "production"

    @property
    def docs_enabled(self) -> bool:
        return self.DOCS_ENABLED if self.DOCS_ENABLED is not None else self.ENVIRONMENT != "production"

    @property
    def metrics_on_public_port(self) -> bool:
        """/metrics answers on the public port (METRICS_ON_PUBLIC_PORT), rather than on METRICS_PORT."""
        return self.METRICS_ENABLED and self.METRICS_ON_PUBLIC_PORT

    @property
    def metrics_port(self) -> int | None:
        """The port of the metrics listener, or None when there is none."""
        return self.METRICS_PORT if self.METRICS_ENABLED and not self.METRICS_ON_PUBLIC_PORT else None

    @property
    def issuer(self) -> str:
        return self.PUBLIC_BASE_URL.rstrip("/")

    @property
    def api_workers(self) -> int:
        """How many uvicorn worker processes serve the API."""
        return self.API_WORKERS or os.cpu_count() or 1

    @property
    def password_hash_threads(self) -> int:
        """Hashing threads of one worker: PASSWORD_HASH_WORKERS, or the cores shared among the workers,
        so that all workers together hash on one thread per core."""
        return self.PASSWORD_HASH_WORKERS or max(1, (os.cpu_count() or 1) // self.api_workers)

    @property
    def database_url(self) -> URL:
        """The URL as SQLAlchemy parses it."""
        return make_url(self.DATABASE_URL)

    @property
    def migration_database_url(self) -> URL:
        """Where migrations run: the schema owner, or DATABASE_URL's role when no owner is configured."""
        return make_url(self.MIGRATION_DATABASE_URL or self.DATABASE_URL)

    @property
    def database_target(self) -> str:
        """Host, port and database, for log lines: never the password."""
        url = self.database_url
        return f"{url.host}:{url.port or 5432}/{url.database}"


@lru_cache
def get_settings() -> Settings:
    return Settings()  # DATABASE_URL and KEY_ENCRYPTION_KEY come from the environment or .env
