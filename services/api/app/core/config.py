"""Settings: every knob pyauth has, read from the process environment and then `.env`.

Process environment wins over `.env`, as pydantic-settings does. `DATABASE_URL` is required and validated.
"""

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    ENVIRONMENT: Literal["development", "test", "production"] = "development"

    # The database chain: this URL is the only place the database is named.
    DATABASE_URL: str
    DB_POOL_SIZE: int = Field(10, ge=1, le=200)
    DB_MAX_OVERFLOW: int = Field(5, ge=0, le=200)
    DB_POOL_TIMEOUT: float = Field(5.0, gt=0, le=120, description="Seconds to wait for a pooled connection.")
    DB_POOL_PRE_PING: bool = True
    DB_POOL_RECYCLE: int = Field(1800, ge=-1, description="Seconds after which a connection is replaced.")
    DB_STARTUP_TIMEOUT: float = Field(30.0, ge=0, le=600, description="How long startup retries SELECT 1.")
    DB_APPLICATION_NAME: str = Field("pyauth", description="Shown in pg_stat_activity.")
    DB_READY_TIMEOUT: float = Field(2.0, gt=0, le=30, description="Bound on the readiness check's query.")

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
    PASSWORD_HASH_WORKERS: int = Field(0, ge=0, le=64, description="Hashing threads; 0 means one per core.")

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

    @property
    def issuer(self) -> str:
        return self.PUBLIC_BASE_URL.rstrip("/")

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
