"""Settings for the password tests: no database or keys are used, but `Settings` requires them."""

from typing import Any

from app.core.config import Settings
from tests.conftest import cached_settings


def make_settings(**overrides: Any) -> Settings:
    # Every knob these tests read is explicit, so that a developer's environment or .env cannot change them.
    values: dict[str, Any] = {
        "DATABASE_URL": "postgresql+asyncpg://u:p@localhost:5432/x",
        "KEY_ENCRYPTION_KEY": "k" * 32,
        "SERVICE_NAME": "pyauth",
        "PASSWORD_MIN_LENGTH": 15,
        "PASSWORD_MAX_LENGTH": 128,
        "ARGON2_MEMORY_KIB": 19456,
        "ARGON2_TIME_COST": 2,
        "ARGON2_PARALLELISM": 1,
        "PASSWORD_HASH_WORKERS": 2,
    }
    return cached_settings(values | overrides)
