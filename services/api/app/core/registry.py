"""Imports every domain's models so that `Base.metadata` knows all tables (for Alembic and tests)."""

from app.auth import models as auth_models
from app.core.models import Base
from app.keys import models as keys_models
from app.users import models as users_models

__all__ = ["Base", "auth_models", "keys_models", "users_models"]
