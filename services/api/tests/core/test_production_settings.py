"""Fail closed: the development secrets are refused whenever PUBLIC_BASE_URL is not loopback, whatever
ENVIRONMENT says, and ENVIRONMENT=production refuses mail without TLS, open docs, a leftover
FIRST_ADMIN_PASSWORD and a key-encryption key that is not 32+ random bytes."""

import base64
import os
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings, is_loopback_url, random_key_problem
from tests.conftest import (
    PRODUCTION_DATABASE_PASSWORD,
    PRODUCTION_KEY_ENCRYPTION_KEY,
    make_settings,
    with_overrides,
)

DEVELOPMENT_KEY = "dev-only-key-encryption-key-change-me-in-production"
DEVELOPMENT_DATABASE_URL = "postgresql+asyncpg://pyauth:pyauth@db:5432/pyauth"
# Production's plain settings; its secrets come from files (the production_secrets fixture, `_production`).
PRODUCTION: dict[str, object] = {
    "ENVIRONMENT": "production",
    "PUBLIC_BASE_URL": "https://auth.example",
    "MAIL_BACKEND": "smtp",
    "SMTP_SECURITY": "starttls",
}


@pytest.fixture
def production(production_secrets: dict[str, object]) -> dict[str, object]:
    return {**PRODUCTION, **production_secrets}


REPOSITORY = Path(__file__).resolve().parents[4]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8000",
        "http://LOCALHOST",
        "http://127.0.0.1:8000/",
        "http://127.10.20.30",
        "http://[::1]:8000",
        "https://localhost/pyauth",
    ],
)
def test_loopback_urls(url: str) -> None:
    assert is_loopback_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://auth.example",
        "http://localhost.auth.example",
        "http://localhost@auth.example",  # userinfo, host auth.example
        "http://127.0.0.1.nip.io",
        "http://0.0.0.0:8000",
        "http://10.0.0.5",
        "http://[::ffff:7f00:1]",  # IPv4-mapped: not counted as loopback, so refused (fail closed)
        "http://[::1",
        "localhost:8000",  # no scheme: no host that can be told apart
        "",
    ],
)
def test_anything_else_counts_as_public(url: str) -> None:
    assert not is_loopback_url(url)


@pytest.mark.parametrize("environment", ["development", "test"])
@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"KEY_ENCRYPTION_KEY": DEVELOPMENT_KEY}, "KEY_ENCRYPTION_KEY is the development default"),
        ({"DATABASE_URL": DEVELOPMENT_DATABASE_URL}, "database password in DATABASE_URL"),
    ],
)
def test_development_secrets_are_refused_on_a_public_host_whatever_the_environment(
    environment: str, overrides: dict[str, object], problem: str
) -> None:
    public: dict[str, object] = {
        "ENVIRONMENT": environment,
        "PUBLIC_BASE_URL": "https://auth.example",
        "DATABASE_URL": f"postgresql+asyncpg://pyauth:{PRODUCTION_DATABASE_PASSWORD}@db:5432/pyauth",
        "KEY_ENCRYPTION_KEY": PRODUCTION_KEY_ENCRYPTION_KEY,
    }
    make_settings(**public)  # real secrets on a public host: starts
    with pytest.raises(ValidationError, match="not a loopback address") as refused:
        make_settings(**{**public, **overrides})
    assert problem in str(refused.value)
    # The same development secrets on a loopback URL are what a developer runs: accepted.
    make_settings(**{**public, **overrides, "PUBLIC_BASE_URL": "http://127.0.0.1:8000"})


def test_the_committed_env_file_starts_only_on_its_loopback_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # `make test` mounts the repository's .env into the test container and names it here.
    env_file = Path(os.environ.get("PYAUTH_REPOSITORY_ENV_FILE", REPOSITORY / ".env"))
    assert env_file.is_file(), f"the repository's .env is not at {env_file}"
    for name in ("PUBLIC_BASE_URL", "KEY_ENCRYPTION_KEY", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=env_file)  # as `make up` and the faults and bench stacks run it
    assert is_loopback_url(settings.PUBLIC_BASE_URL)
    with pytest.raises(ValidationError, match="KEY_ENCRYPTION_KEY is the development default"):
        Settings(_env_file=env_file, PUBLIC_BASE_URL="https://auth.example")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"MAIL_BACKEND": "console"}, "MAIL_BACKEND=console"),
        ({"SMTP_SECURITY": "none"}, "SMTP_SECURITY=none"),
        ({"DOCS_ENABLED": True}, "DOCS_ENABLED is on"),
        ({"FIRST_ADMIN_PASSWORD": "a leftover bootstrap password"}, "FIRST_ADMIN_PASSWORD is set"),
        ({"KEY_ENCRYPTION_KEY": DEVELOPMENT_KEY}, "KEY_ENCRYPTION_KEY is the development default"),
        ({"KEY_ENCRYPTION_KEY": "a-long-random-production-key-0123456789abcdef"}, "not valid hex or base64"),
        ({"KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(31)).decode()}, "decodes to 31 bytes"),
    ],
)
def test_production_refuses_mail_without_tls_open_docs_a_leftover_admin_password_and_a_weak_key(
    production: dict[str, object], overrides: dict[str, object], problem: str
) -> None:
    make_settings(**production)  # the safe baseline starts
    with pytest.raises(ValidationError, match="ENVIRONMENT=production refuses to start") as refused:
        make_settings(**with_overrides(production, overrides))
    assert problem in str(refused.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"SMTP_SECURITY": "tls"},
        {"DOCS_ENABLED": False},
        {"FIRST_ADMIN_PASSWORD": ""},  # compose passes an unset variable as empty
        {"FIRST_ADMIN_EMAIL": "admin@auth.example"},
    ],
)
def test_production_accepts_what_is_safe(production: dict[str, object], overrides: dict[str, object]) -> None:
    make_settings(**with_overrides(production, overrides))


def test_production_refuses_the_test_suites_cheap_argon2_setting(production: dict[str, object]) -> None:
    """The setting that lets the test suite hash fast is refused in production, even with the cost at
    the OWASP floor, and below the floor the cost is refused in any environment without it."""
    floor = {"ARGON2_MEMORY_KIB": 19456, "ARGON2_TIME_COST": 2}
    with pytest.raises(ValidationError, match="ENVIRONMENT=production refuses to start") as refused:
        make_settings(**production, **floor, ARGON2_BELOW_FLOOR_FOR_TESTS=True)
    assert "ARGON2_BELOW_FLOOR_FOR_TESTS" in str(refused.value)
    with pytest.raises(ValidationError, match="ENVIRONMENT=production refuses to start"):
        make_settings(
            **production, ARGON2_MEMORY_KIB=64, ARGON2_TIME_COST=1, ARGON2_BELOW_FLOOR_FOR_TESTS=True
        )
    for environment in ("production", "development", "test"):
        for below in ({"ARGON2_MEMORY_KIB": 19455}, {"ARGON2_TIME_COST": 1}):
            settings = {**production, "ENVIRONMENT": environment, "ARGON2_BELOW_FLOOR_FOR_TESTS": False}
            with pytest.raises(ValidationError, match="OWASP's argon2id minimum"):
                make_settings(**settings, **below)
    assert make_settings(ENVIRONMENT="test").ARGON2_BELOW_FLOOR_FOR_TESTS  # what the suite runs with


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("x" * 64, "does not look random"),  # base64 alphabet, one case
        ("Aa" * 40, "does not look random"),  # both cases, a repeated pattern
        ("0" * 64, "does not look random"),  # hex without letters
        ("0123456789abcdef" * 4, "does not look random"),  # hex, repeated
        ("secret-key-" * 4, "does not look random"),  # reads as base64url: 33 bytes
        ("pyauth key encryption key for production!", "must be hex or base64"),
        # Random values get fixed ids: pytest-xdist workers must collect the same test names.
        pytest.param(secrets.token_hex(31), "decodes to 31 bytes", id="random-hex-31-bytes"),
        pytest.param(secrets.token_urlsafe(31), "decodes to 31 bytes", id="random-base64url-31-bytes"),
    ],
)
def test_a_key_encryption_key_must_be_32_random_bytes_in_hex_or_base64(key: str, problem: str) -> None:
    refusal = random_key_problem(key)
    assert refusal is not None
    assert problem in refusal


def test_random_keys_in_every_accepted_encoding_pass_the_key_rule() -> None:
    for _ in range(2000):
        raw = os.urandom(32)
        for key in (
            base64.b64encode(raw).decode(),  # openssl rand -base64 32
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode(),
            raw.hex(),  # openssl rand -hex 32
            raw.hex().upper(),
        ):
            assert random_key_problem(key) is None, key


def test_a_refusal_names_the_problems_but_no_secret() -> None:
    key = base64.b64encode(os.urandom(31)).decode()  # refused: too short
    # The key is the last setting given: pydantic's error would show the start and the end of its input.
    values = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": f"postgresql+asyncpg://pyauth:{PRODUCTION_DATABASE_PASSWORD}@db:5432/pyauth",
        "PUBLIC_BASE_URL": "https://auth.example",
    }
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, **values, KEY_ENCRYPTION_KEY=key)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "decodes to 31 bytes" in message
    assert "MAIL_BACKEND=console" in message
    assert key[-8:] not in message
    assert PRODUCTION_DATABASE_PASSWORD not in message
