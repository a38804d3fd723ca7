"""Settings: the process environment wins over `.env`, and a bad DATABASE_URL is refused."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings

FROM_FILE = "postgresql+asyncpg://file:secret@filehost:5432/from_file"
FROM_ENV = "postgresql+asyncpg://env:secret@envhost:6543/from_env"


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(f"DATABASE_URL={FROM_FILE}\nKEY_ENCRYPTION_KEY={'k' * 40}\nLOG_LEVEL=DEBUG\n")
    return path


def test_env_file_is_read(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    settings = Settings(_env_file=env_file)
    assert settings.DATABASE_URL == FROM_FILE
    assert settings.LOG_LEVEL == "DEBUG"
    assert settings.database_target == "filehost:5432/from_file"


def test_process_environment_overrides_env_file(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", FROM_ENV)
    settings = Settings(_env_file=env_file)
    assert settings.DATABASE_URL == FROM_ENV
    assert settings.database_url.host == "envhost"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "DATABASE_URL"),
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://"),
        ("mysql+aiomysql://u:p@h:3306/db", "postgresql+asyncpg://"),
        ("postgresql+asyncpg://u:p@h:5432", "name a host and a database"),
    ],
)
def test_a_bad_database_url_is_refused(
    url: str, message: str, env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=env_file)
    assert message in str(raised.value)


def test_the_migration_url_defaults_to_the_database_url_and_blank_means_unset(env_file: Path) -> None:
    """Compose blanks MIGRATION_DATABASE_URL for the api and worker: they never hold the owner's password."""
    owner = "postgresql+asyncpg://pyauth_owner:s3cret-owner@db:5432/pyauth"
    assert Settings(_env_file=env_file, MIGRATION_DATABASE_URL=owner).migration_database_url.username == (
        "pyauth_owner"
    )
    blank = Settings(_env_file=env_file, MIGRATION_DATABASE_URL="")
    assert blank.MIGRATION_DATABASE_URL is None
    assert blank.migration_database_url.username == blank.database_url.username


@pytest.mark.parametrize("password", ["pyauth", "pyauth_owner", "postgres"])
def test_production_refuses_a_development_migrator_password(env_file: Path, password: str) -> None:
    with pytest.raises(ValidationError, match="MIGRATION_DATABASE_URL is a development default"):
        Settings(
            _env_file=env_file,
            ENVIRONMENT="production",
            MIGRATION_DATABASE_URL=f"postgresql+asyncpg://pyauth_owner:{password}@db:5432/pyauth",
        )


def test_a_bad_migration_url_is_refused(env_file: Path) -> None:
    with pytest.raises(ValidationError, match="MIGRATION_DATABASE_URL"):
        Settings(_env_file=env_file, MIGRATION_DATABASE_URL="postgresql://owner:pw@db:5432/pyauth")


def test_database_url_is_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(_env_file=tmp_path / "missing.env", KEY_ENCRYPTION_KEY="k" * 40)


def test_database_target_never_contains_the_password(env_file: Path) -> None:
    settings = Settings(_env_file=env_file, DATABASE_URL=FROM_FILE)
    assert "secret" not in settings.database_target
