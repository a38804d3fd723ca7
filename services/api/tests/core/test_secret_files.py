"""Secrets from files (`*_FILE`: Docker and Swarm secrets mounted under /run/secrets): each read from a real
file, a password set into its database URL, both forms at once refused, and production taking them only
from files."""

import base64
import os
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.core.database import build_engine
from tests.conftest import PRODUCTION_KEY_ENCRYPTION_KEY, make_settings, with_overrides

PRODUCTION: dict[str, object] = {
    "ENVIRONMENT": "production",
    "PUBLIC_BASE_URL": "https://auth.example",
    "MAIL_BACKEND": "smtp",
}


def secret(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_each_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        DATABASE_URL="postgresql+asyncpg://pyauth@db:5432/pyauth",
        DATABASE_PASSWORD_FILE=secret(tmp_path, "db", "p@ss/w:rd%\n"),
        MIGRATION_DATABASE_URL="postgresql+asyncpg://pyauth_owner@db:5432/pyauth",
        MIGRATION_DATABASE_PASSWORD_FILE=secret(tmp_path, "owner", "owner secret\r\n"),
        KEY_ENCRYPTION_KEY_FILE=secret(tmp_path, "kek", PRODUCTION_KEY_ENCRYPTION_KEY + "\n"),
        SMTP_PASSWORD_FILE=secret(tmp_path, "smtp", "smtp-secret"),
    )
    assert settings.KEY_ENCRYPTION_KEY.get_secret_value() == PRODUCTION_KEY_ENCRYPTION_KEY
    assert settings.SMTP_PASSWORD is not None
    assert settings.SMTP_PASSWORD.get_secret_value() == "smtp-secret"
    # The password is quoted into the URL and comes back out whole, special characters included.
    assert settings.database_url.password == "p@ss/w:rd%"
    assert settings.database_url.host == "db"
    assert settings.database_url.username == "pyauth"
    assert settings.migration_database_url.password == "owner secret"
    assert settings.database_target == "db:5432/pyauth"


def test_the_database_chain_uses_the_password_from_the_file(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        DATABASE_URL="postgresql+asyncpg://pyauth@db:5432/pyauth",
        DATABASE_PASSWORD_FILE=secret(tmp_path, "db", "from-the-file\n"),
        KEY_ENCRYPTION_KEY="k" * 32,
    )
    engine = build_engine(settings)  # creating an engine opens no connection
    assert engine.url.password == "from-the-file"


def test_the_files_are_read_from_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://pyauth@db:5432/pyauth")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", secret(tmp_path, "db", "from-env-file\n"))
    monkeypatch.setenv("KEY_ENCRYPTION_KEY_FILE", secret(tmp_path, "kek", PRODUCTION_KEY_ENCRYPTION_KEY))
    monkeypatch.delenv("KEY_ENCRYPTION_KEY", raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url.password == "from-env-file"
    assert settings.KEY_ENCRYPTION_KEY.get_secret_value() == PRODUCTION_KEY_ENCRYPTION_KEY


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (
            {"KEY_ENCRYPTION_KEY": "k" * 32, "KEY_ENCRYPTION_KEY_FILE": "kek"},
            "KEY_ENCRYPTION_KEY and KEY_ENCRYPTION_KEY_FILE are both set",
        ),
        (
            {"DATABASE_URL": "postgresql+asyncpg://pyauth:inline@db/pyauth", "DATABASE_PASSWORD_FILE": "db"},
            "DATABASE_URL holds a password and DATABASE_PASSWORD_FILE is set",
        ),
        ({"SMTP_PASSWORD": "inline", "SMTP_PASSWORD_FILE": "smtp"}, "SMTP_PASSWORD and SMTP_PASSWORD_FILE"),
        ({"MIGRATION_DATABASE_PASSWORD_FILE": "db"}, "MIGRATION_DATABASE_PASSWORD_FILE is set but"),
    ],
)
def test_a_secret_set_both_ways_is_refused(tmp_path: Path, values: dict[str, str], problem: str) -> None:
    for name in ("kek", "db", "smtp"):
        (tmp_path / name).write_text("a-secret-from-a-file-0123456789abcdef\n")
    values = {
        name: str(tmp_path / value) if name.endswith("_FILE") else value for name, value in values.items()
    }
    with pytest.raises(ValidationError, match=problem) as refused:
        make_settings(**values)
    assert "a-secret-from-a-file" not in str(refused.value)
    assert "inline" not in str(refused.value).replace(problem, "")


def test_a_missing_or_empty_file_is_refused_by_name(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent")
    with pytest.raises(ValidationError, match=f"KEY_ENCRYPTION_KEY_FILE: cannot read {missing}"):
        make_settings(KEY_ENCRYPTION_KEY_FILE=missing)
    empty = secret(tmp_path, "empty", "\n")
    with pytest.raises(ValidationError, match=r"DATABASE_PASSWORD_FILE: .* is empty"):
        make_settings(DATABASE_URL="postgresql+asyncpg://pyauth@db/pyauth", DATABASE_PASSWORD_FILE=empty)


def test_production_starts_on_secrets_from_files(tmp_path: Path) -> None:
    # Each key's file is named by its number, not by the key: base64 may hold "/".
    for number, key in enumerate(
        (
            PRODUCTION_KEY_ENCRYPTION_KEY,
            secrets.token_hex(32),
            secrets.token_urlsafe(32),
            base64.b64encode(os.urandom(48)).decode(),
        )
    ):
        settings = make_settings(
            **PRODUCTION,
            DATABASE_URL="postgresql+asyncpg://pyauth@db:5432/pyauth",
            DATABASE_PASSWORD_FILE=secret(tmp_path, "db", "a-long-random-password\n"),
            KEY_ENCRYPTION_KEY_FILE=secret(tmp_path, f"kek-{number}", key + "\n"),
            SMTP_USERNAME="pyauth",
            SMTP_PASSWORD_FILE=secret(tmp_path, "smtp", "an-smtp-password\n"),
        )
        assert settings.KEY_ENCRYPTION_KEY.get_secret_value() == key


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"KEY_ENCRYPTION_KEY": PRODUCTION_KEY_ENCRYPTION_KEY},
            "KEY_ENCRYPTION_KEY must come from KEY_ENCRYPTION_KEY_FILE",
        ),
        (
            {"DATABASE_URL": "postgresql+asyncpg://pyauth:a-long-random-password@db:5432/pyauth"},
            "the database password must come from DATABASE_PASSWORD_FILE",
        ),
        ({"SMTP_PASSWORD": "an-smtp-password"}, "SMTP_PASSWORD must come from SMTP_PASSWORD_FILE"),
        (
            {"MIGRATION_DATABASE_URL": "postgresql+asyncpg://pyauth_owner:a-long-owner-password@db/pyauth"},
            "MIGRATION_DATABASE_URL's password must come from MIGRATION_DATABASE_PASSWORD_FILE",
        ),
    ],
)
def test_production_refuses_secrets_as_plain_values(
    production_secrets: dict[str, object], overrides: dict[str, object], problem: str
) -> None:
    safe = {**PRODUCTION, **production_secrets}
    make_settings(**safe)  # the baseline, every secret from a file, starts
    with pytest.raises(ValidationError, match="ENVIRONMENT=production refuses to start") as refused:
        make_settings(**with_overrides(safe, overrides))
    message = str(refused.value)
    assert problem in message
    assert "a-long-random-password" not in message
    assert PRODUCTION_KEY_ENCRYPTION_KEY not in message


def test_development_still_takes_plain_values() -> None:
    # The committed .env and compose's environment: plain values, as before.
    settings = make_settings(ENVIRONMENT="development", SMTP_PASSWORD="dev-smtp")
    assert settings.KEY_ENCRYPTION_KEY_FILE is None
    assert settings.database_url.password
