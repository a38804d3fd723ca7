"""Settings: every knob pyauth has, read from the process environment and then `.env`.

Process environment wins over `.env`, as pydantic-settings does. `DATABASE_URL` is required and validated.
"""

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
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
    DB_READY_TIMEOUT: float = Field(2.0, gt=0, le=30, description="Bound on the readiness check's query.")

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"

    @field_validator("DATABASE_URL")
    @classmethod
    def _require_asyncpg_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("DATABASE_URL is not a URL: expected postgresql+asyncpg://user:password@host:port/db") from None
        if url.drivername != "postgresql+asyncpg":
            raise ValueError("DATABASE_URL must start with postgresql+asyncpg:// (the async driver)")
        if not url.host or not url.database:
            raise ValueError("DATABASE_URL must name a host and a database, e.g. ...@db:5432/pyauth")
        return value

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
    return Settings()  # type: ignore[call-arg]  # DATABASE_URL comes from the environment or .env

