"""Prints, as JSON, what the running API is configured with where it matters to `make bench`: its worker
count, each worker's pool and hashing threads, and the argon2id cost. `bench/run.sh` runs it inside the
API container (`python3 - < bench/api_settings.py`) and hands the numbers to the ceilings, so that they
run with the API's own settings."""

import json

from app.core.config import get_settings
from app.passwords.hashing import PasswordHasher

settings = get_settings()
hasher = PasswordHasher(settings)
hasher.shutdown()
print(
    json.dumps(
        {
            "api_workers": settings.api_workers,
            "db_pool_size": settings.DB_POOL_SIZE,
            "db_max_overflow": settings.DB_MAX_OVERFLOW,
            "db_pool_pre_ping": settings.DB_POOL_PRE_PING,
            "hash_threads_per_worker": hasher.max_workers,
            "hash_threads_nice": settings.PASSWORD_HASH_NICE,
            "argon2_memory_kib": settings.ARGON2_MEMORY_KIB,
            "argon2_time_cost": settings.ARGON2_TIME_COST,
            "argon2_parallelism": settings.ARGON2_PARALLELISM,
        }
    )
)
