"""Settings: every knob pyauth has, read from the process environment and then `.env`.

Process environment wins over `.env`, as pydantic-settings does. `DATABASE_URL` is required and validated.
"""

import os
from functools import lru_cache
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# The committed development values (.env): production mode refuses every one of them.
DEVELOPMENT_SECRETS = frozenset(
    {"dev-only-key-encryption-key-change-me-in-production", "pyauth", "postgres", "password", ""}
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    ENVIRONMENT: Literal["development", "test", "production"] = "development"

    # The database chain: this URL is the only place the database is named.
    DATABASE_URL: str
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
    DB_MAX_CONNECTIONS: int = Field(
        40, ge=1, le=1000, description="All workers' pools together; keep under Postgres max_connections."
    )
    PASSWORD_HASH_NICE: int = Field(
        0, ge=0, le=19, description="Hashing threads' niceness; >0: token checks go first in a login flood."
    )

    # Identity of this service: the `iss` of its tokens, and a context word refused in passwords.
    SERVICE_NAME: str = "pyauth"
    PUBLIC_BASE_URL: str = Field(
        "http://localhost:8000", description="Where clients reach pyauth; the issuer."
    )

    # Passwords (NIST SP 800-63B-4; OWASP Password Storage cheat sheet)
    PASSWORD_MIN_LENGTH: int = Field(15, ge=8, le=64)
    PASSWORD_MAX_LENGTH: int = Field(128, ge=64, le=1024, description="Code points after NFC.")
    ARGON2_MEMORY_KIB: int = Field(19456, ge=19456, description="OWASP minimum: 19 MiB.")
    ARGON2_TIME_COST: int = Field(2, ge=2)
    ARGON2_PARALLELISM: int = Field(1, ge=1)
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
        min_length=32, description="Encrypts signing keys at rest. Any string of 32+ characters."
    )

    # Sessions and refresh tokens
    SESSION_ABSOLUTE_TTL_SECONDS: int = Field(30 * 86400, ge=300)
    SESSION_IDLE_TTL_SECONDS: int = Field(7 * 86400, ge=60)
    REFRESH_REUSE_GRACE_SECONDS: float = Field(10.0, ge=0, le=300)

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
    SMTP_TIMEOUT: float = Field(15.0, gt=0, le=30, description="Bound on one delivery, in seconds.")
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
    RATE_LIMIT_REVOKE: int = Field(60, ge=1)
    RATE_LIMIT_REGISTER: int = Field(10, ge=1)
    RATE_LIMIT_FORGOT_PASSWORD: int = Field(5, ge=1)
    RATE_LIMIT_VERIFICATION: int = Field(
        10, ge=1, description="Verification and email-change requests and links."
    )
    RATE_LIMIT_RESET_PASSWORD: int = Field(10, ge=1)
    RATE_LIMIT_CURRENT_PASSWORD: int = Field(
        10, ge=1, description="POST /users/me/password and /users/me/email: current-password checks."
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

    # HTTP hardening
    MAX_BODY_BYTES: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024, description="Larger bodies get 413.")
    MAX_JSON_DEPTH: int = Field(32, ge=2, le=512)
    HSTS_SECONDS: int = Field(0, ge=0, description="Strict-Transport-Security max-age; 0 = not sent (HTTP).")
    CORS_ORIGINS: list[str] = Field(
        default_factory=list, description="Allowed browser origins; empty = none."
    )
    DOCS_ENABLED: bool | None = Field(
        None, description="Swagger UI at /docs; default: on except in production."
    )
    DEBUG: bool = False

    # Metrics: GET /metrics in the Prometheus text format, open or behind a bearer token
    METRICS_ENABLED: bool = Field(True, description="Off: no /metrics route (404) and no request timing.")
    METRICS_TOKEN: SecretStr | None = Field(
        None, description="When set (non-empty), /metrics answers 401 unless this bearer token is sent."
    )

    # First administrator: created at startup while no admin exists, then ignored (or `make admin EMAIL=...`)
    FIRST_ADMIN_EMAIL: str | None = None
    FIRST_ADMIN_PASSWORD: SecretStr | None = None

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"

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

    @model_validator(mode="after")
    def _share_the_connections_among_the_workers(self) -> Self:
        if "DB_POOL_SIZE" not in self.model_fields_set:
            self.DB_POOL_SIZE = max(1, min(10, self.DB_MAX_CONNECTIONS // self.api_workers))
        return self

    @model_validator(mode="after")
    def _refuse_development_defaults_in_production(self) -> Self:
        if self.ENVIRONMENT != "production":
            return self
        problems = []
        if self.KEY_ENCRYPTION_KEY.get_secret_value() in DEVELOPMENT_SECRETS:
            problems.append("KEY_ENCRYPTION_KEY is the development default")
        if (self.database_url.password or "") in DEVELOPMENT_SECRETS:
            problems.append("the database password in DATABASE_URL is a development default")
        if self.DEBUG:
            problems.append("DEBUG is on")
        if not self.PUBLIC_BASE_URL.startswith("https://"):
            problems.append("PUBLIC_BASE_URL must be an https:// URL")
        if problems:
            raise ValueError("ENVIRONMENT=production refuses to start: " + "; ".join(problems))
        return self

    @property
    def docs_enabled(self) -> bool:
        return self.DOCS_ENABLED if self.DOCS_ENABLED is not None else self.ENVIRONMENT != "production"

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
    def database_target(self) -> str:
        """Host, port and database, for log lines: never the password."""
        url = self.database_url
        return f"{url.host}:{url.port or 5432}/{url.database}"


@lru_cache
def get_settings() -> Settings:
    return Settings()  # DATABASE_URL and KEY_ENCRYPTION_KEY come from the environment or .env
